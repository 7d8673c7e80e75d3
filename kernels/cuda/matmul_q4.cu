/* matmul_q4.cu — W4A16-style y = x·Wᵀ + bias with W in the internal int4 layout (vrt_q4).
 *
 * W[n][k] = (q - z[n][g]) * s[n][g] with q the nibble of internal column k
 * (backend.h, README "Internal int4 layout"); internal column k multiplies
 * activation column perm[k]. Activations are f32 (the forward pass keeps
 * its residual stream in f32), scales and zeros fp16, accumulation f32.
 * Plain sm_70 CUDA: no bf16, cp.async, ldmatrix or mma shapes past Volta.
 *
 * Two paths, chosen by the launcher on T:
 *  - GEMV (T <= Q4_GEMV_MAXT, decode): memory-bound, so each row is read
 *    once with 128-bit loads: one warp owns Q4_GEMV_RPW output rows, lane l
 *    loads the uint4 (32 nibbles, one group) at columns k0 + 32l of a
 *    1024-column chunk. The block stages the chunk of x', gathered through
 *    perm (the activations are gathered, never the weights), in shared
 *    memory in a lane-major order (element e of lane l at e*33 + l: no bank
 *    conflicts when a warp reads one e for its 32 lanes, nor when
 *    consecutive threads write consecutive columns); each nibble is
 *    dequantized once and used for every token.
 *    The warp sum gives the output.
 *  - Tiled (larger T, prefill): a 16×16 block computes 64 tokens × 64 rows
 *    (4×4 per thread) in K steps of 32: each thread loads one packed word
 *    and writes its 8 dequantized values into a shared [64][33] f32 tile,
 *    the x' tile ([64][33], gathered through perm) is staged beside it, then
 *    plain FMA. Steps of 32 never cross a group (group sizes are multiples
 *    of 32), so each row needs one scale and zero per step.
 */
#include "cuda/common.cuh"

#define Q4_GEMV_MAXT 8  /* tokens the GEMV path takes */
#define Q4_GEMV_WARPS 8 /* warps per GEMV block */
#define Q4_GEMV_RPW 2   /* rows per warp */
#define Q4_CHUNK 1024   /* columns staged per step: 32 lanes × 32 */
#define Q4_XS (32 * 33) /* one token's staged chunk, padded against bank conflicts */
#define Q4_TILE 64      /* tokens and rows per tiled block */
#define Q4_BK 32        /* K step of the tiled path */

/* The activation column of internal column k, 0 past K (padding). */
__device__ __forceinline__ float q4_xload(const float *xr, const int32_t *perm, int k, int K)
{
    if (k >= K)
        return 0.0f;
    return xr[perm ? perm[k] : k];
}

__global__ void matmul_q4_gemv(float *y, const float *x, vrt_q4 q, int N, int K, int Kp,
                               const float *bias, int T)
{
    VRT_SHARED(float, xs, Q4_GEMV_MAXT *Q4_XS); /* [T][e*33 + lane] */
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int wpr = Kp / 8; /* words per row */
    const int G = q.group_size >= K ? Kp : q.group_size;
    const int n_first = (blockIdx.x * Q4_GEMV_WARPS + warp) * Q4_GEMV_RPW;
    float acc[Q4_GEMV_RPW][Q4_GEMV_MAXT];
    for (int r = 0; r < Q4_GEMV_RPW; r++)
        for (int t = 0; t < Q4_GEMV_MAXT; t++)
            acc[r][t] = 0.0f;
    for (int k0 = 0; k0 < Kp; k0 += Q4_CHUNK) {
        /* Stage x'[t][k0 .. k0 + 1024) lane-major: column k0 + 32l + e at
         * e*33 + l. Consecutive threads read consecutive columns. */
        __syncthreads();
        for (int i = threadIdx.x; i < T * Q4_CHUNK; i += blockDim.x) {
            const int t = i / Q4_CHUNK, c = i % Q4_CHUNK;
            xs[t * Q4_XS + (c % 32) * 33 + c / 32] =
                q4_xload(x + (int64_t)t * K, q.perm, k0 + c, K);
        }
        __syncthreads();
        const int kb = k0 + 32 * lane; /* this lane's 32 columns */
        if (kb >= Kp)
            continue;
        const int g = kb / G;
        for (int r = 0; r < Q4_GEMV_RPW; r++) {
            const int n = n_first + r;
            if (n >= N)
                break;
            const uint4 w = reinterpret_cast<const uint4 *>(q.qweight + (int64_t)n * wpr)[kb / 32];
            const float s = __half2float(__ushort_as_half(q.scales[(int64_t)n * q.n_groups + g]));
            const float z = __half2float(__ushort_as_half(q.zeros[(int64_t)n * q.n_groups + g]));
            const unsigned wv[4] = {w.x, w.y, w.z, w.w};
            float part[Q4_GEMV_MAXT];
            for (int t = 0; t < Q4_GEMV_MAXT; t++)
                part[t] = 0.0f;
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 8; j++) {
                    const float wq = (float)((wv[i] >> (4 * j)) & 15u) - z;
                    const int e = 8 * i + j;
                    for (int t = 0; t < Q4_GEMV_MAXT; t++)
                        if (t < T)
                            part[t] += wq * xs[t * Q4_XS + e * 33 + lane];
                }
            for (int t = 0; t < Q4_GEMV_MAXT; t++)
                acc[r][t] += s * part[t];
        }
    }
    for (int r = 0; r < Q4_GEMV_RPW; r++) {
        const int n = n_first + r;
        for (int t = 0; t < Q4_GEMV_MAXT; t++) {
            if (t >= T)
                break;
            const float v = vrt_warp_sum(acc[r][t]);
            if (lane == 0 && n < N)
                y[(int64_t)t * N + n] = bias ? v + bias[n] : v;
        }
    }
}

__global__ void matmul_q4_tiled(float *y, const float *x, vrt_q4 q, int N, int K, int Kp,
                                const float *bias, int T)
{
    VRT_SHARED(float, ws, Q4_TILE *(Q4_BK + 1)); /* [64 rows][33] dequantized */
    VRT_SHARED(float, xs, Q4_TILE *(Q4_BK + 1)); /* [64 tokens][33] */
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
    const int n0 = blockIdx.x * Q4_TILE, t0 = blockIdx.y * Q4_TILE;
    const int wpr = Kp / 8;
    const int G = q.group_size >= K ? Kp : q.group_size;
    float acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            acc[i][j] = 0.0f;
    for (int k0 = 0; k0 < Kp; k0 += Q4_BK) {
        { /* one packed word per thread: row tid / 4, word tid % 4 */
            const int r = tid / 4, wi = tid % 4, n = n0 + r;
            float *dst = ws + r * (Q4_BK + 1) + 8 * wi;
            if (n < N) {
                const int g = k0 / G;
                const unsigned w = q.qweight[(int64_t)n * wpr + k0 / 8 + wi];
                const float s =
                    __half2float(__ushort_as_half(q.scales[(int64_t)n * q.n_groups + g]));
                const float z =
                    __half2float(__ushort_as_half(q.zeros[(int64_t)n * q.n_groups + g]));
                for (int j = 0; j < 8; j++)
                    dst[j] = ((float)((w >> (4 * j)) & 15u) - z) * s;
            } else {
                for (int j = 0; j < 8; j++)
                    dst[j] = 0.0f;
            }
        }
        for (int e = tid; e < Q4_TILE * Q4_BK; e += 256) {
            const int r = e / Q4_BK, c = e % Q4_BK, t = t0 + r;
            xs[r * (Q4_BK + 1) + c] =
                t < T ? q4_xload(x + (int64_t)t * K, q.perm, k0 + c, K) : 0.0f;
        }
        __syncthreads();
        for (int c = 0; c < Q4_BK; c++) {
            float a[4], b[4];
            for (int i = 0; i < 4; i++)
                a[i] = xs[(ty + 16 * i) * (Q4_BK + 1) + c];
            for (int j = 0; j < 4; j++)
                b[j] = ws[(tx + 16 * j) * (Q4_BK + 1) + c];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++) {
        const int t = t0 + ty + 16 * i;
        if (t >= T)
            break;
        for (int j = 0; j < 4; j++) {
            const int n = n0 + tx + 16 * j;
            if (n < N)
                y[(int64_t)t * N + n] = bias ? acc[i][j] + bias[n] : acc[i][j];
        }
    }
}

extern "C" int vrt_cuda_matmul_q4(float *y, const float *x, vrt_q4 q, int N, int K,
                                  const float *bias, int T, void *stream)
{
    if (T <= 0 || N <= 0)
        return 0;
    const int Kp = (K + VRT_Q4_KBLOCK - 1) / VRT_Q4_KBLOCK * VRT_Q4_KBLOCK;
    if (T <= Q4_GEMV_MAXT) {
        const int rows_per_block = Q4_GEMV_WARPS * Q4_GEMV_RPW;
        const dim3 grid((unsigned)((N + rows_per_block - 1) / rows_per_block));
        VRT_LAUNCH(matmul_q4_gemv, grid, dim3(32 * Q4_GEMV_WARPS), 0, (cudaStream_t)stream, y, x, q,
                   N, K, Kp, bias, T);
    } else {
        const dim3 grid((unsigned)((N + Q4_TILE - 1) / Q4_TILE),
                        (unsigned)((T + Q4_TILE - 1) / Q4_TILE));
        VRT_LAUNCH(matmul_q4_tiled, grid, dim3(16, 16), 0, (cudaStream_t)stream, y, x, q, N, K, Kp,
                   bias, T);
    }
    return (int)cudaGetLastError();
}
