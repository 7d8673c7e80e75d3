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

/* Decode (T <= Q4D_MAXT): one warp per output row, no staging. Lane l
 * reads the uint4 words l, l + 32, ... of its row (32 columns each,
 * Q4D_UNROLL loads in flight) and the matching activations straight from
 * global memory (L1/L2: every row reads the same x), 4 floats at a time
 * where rows allow, through perm one by one otherwise. Per word it sums
 * q·x and x, and adds s·(Σqx − z·Σx): one scale and zero per 32 columns,
 * since groups are whole multiples of 32. */
/* A nibble (0..15) as a float without an int-to-float conversion (a slow
 * instruction on every GPU): 2^23 + u has u in its low mantissa bits. */
__device__ __forceinline__ float q4_nib(unsigned u)
{
    return __uint_as_float(0x4B000000u | u) - 8388608.0f;
}

#define Q4D_MAXT 4
#define Q4D_WARPS 8
#define Q4D_RPW 4 /* rows per warp: each activation load serves 4 rows */

template <int TT>
__global__ void matmul_q4_gemv_direct(float *y, const float *x, vrt_q4 q, int N, int K, int Kp,
                                      const float *bias, int T, int vec)
{
    const int lane = threadIdx.x % 32;
    const int n0 = (blockIdx.x * Q4D_WARPS + threadIdx.x / 32) * Q4D_RPW;
    if (n0 >= N) /* the whole warp leaves */
        return;
    const int nv = Kp / 32, wpr = Kp / 8;
    const int G = q.group_size >= K ? Kp : q.group_size;
    float acc[Q4D_RPW][TT];
    for (int r = 0; r < Q4D_RPW; r++)
        for (int t = 0; t < TT; t++)
            acc[r][t] = 0.0f;
    for (int i = lane; i < nv; i += 32) {
        /* The word i of each of the warp's rows: Q4D_RPW loads in flight. */
        uint4 u[Q4D_RPW];
        for (int r = 0; r < Q4D_RPW; r++)
            u[r] = n0 + r < N
                       ? reinterpret_cast<const uint4 *>(q.qweight + (int64_t)(n0 + r) * wpr)[i]
                       : make_uint4(0u, 0u, 0u, 0u);
        const int kb = 32 * i, g = kb / G;
        for (int t = 0; t < TT; t++) {
            if (t >= T)
                break;
            /* The 32 activations of these columns, once for all rows. */
            const float *xr = x + (int64_t)t * K;
            float xv[32], xs = 0.0f;
            if (vec && kb + 32 <= K) {
                const float4 *x4 = reinterpret_cast<const float4 *>(xr + kb);
                for (int e4 = 0; e4 < 8; e4++) {
                    const float4 a = x4[e4];
                    xv[4 * e4] = a.x;
                    xv[4 * e4 + 1] = a.y;
                    xv[4 * e4 + 2] = a.z;
                    xv[4 * e4 + 3] = a.w;
                }
            } else {
                for (int e = 0; e < 32; e++) {
                    const int k = kb + e;
                    xv[e] = k < K ? xr[q.perm ? q.perm[k] : k] : 0.0f;
                }
            }
            for (int e = 0; e < 32; e++)
                xs += xv[e];
            for (int r = 0; r < Q4D_RPW; r++) {
                if (n0 + r >= N)
                    break;
                const unsigned wv[4] = {u[r].x, u[r].y, u[r].z, u[r].w};
                float dot = 0.0f;
                for (int e = 0; e < 32; e++)
                    dot += q4_nib((wv[e / 8] >> (4 * (e % 8))) & 15u) * xv[e];
                const int64_t sg = (int64_t)(n0 + r) * q.n_groups + g;
                const float sc = __half2float(__ushort_as_half(q.scales[sg]));
                const float z = __half2float(__ushort_as_half(q.zeros[sg]));
                acc[r][t] += sc * (dot - z * xs);
            }
        }
    }
    for (int r = 0; r < Q4D_RPW; r++) {
        const int n = n0 + r;
        for (int t = 0; t < TT; t++) {
            if (t >= T)
                break;
            const float v = vrt_warp_sum(acc[r][t]);
            if (lane == 0 && n < N)
                y[(int64_t)t * N + n] = bias ? v + bias[n] : v;
        }
    }
}

/* dst[n][perm[k]] = fp16((q - z)·s): the whole matrix in its original
 * column order (so no activation gather is needed), for the prefill path
 * of the cuda backend (then an fp16 GEMM on tensor cores). One thread per
 * packed word. */
__global__ void q4_dequant_kernel(__half *dst, vrt_q4 q, int N, int K, int Kp)
{
    const int wpr = Kp / 8;
    const int G = q.group_size >= K ? Kp : q.group_size;
    const int64_t total = (int64_t)N * wpr;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int n = (int)(i / wpr), kb = 8 * (int)(i % wpr), g = kb / G;
        const float s = __half2float(__ushort_as_half(q.scales[(int64_t)n * q.n_groups + g]));
        const float z = __half2float(__ushort_as_half(q.zeros[(int64_t)n * q.n_groups + g]));
        const unsigned w = q.qweight[i];
        __half *row = dst + (int64_t)n * K;
        for (int j = 0; j < 8; j++) {
            const int k = kb + j;
            if (k < K)
                row[q.perm ? q.perm[k] : k] =
                    __float2half_rn((q4_nib((w >> (4 * j)) & 15u) - z) * s);
        }
    }
}

extern "C" int vrt_cuda_q4_dequant(uint16_t *dst, vrt_q4 q, int N, int K, void *stream)
{
    if (N <= 0 || K <= 0)
        return 0;
    const int Kp = (K + VRT_Q4_KBLOCK - 1) / VRT_Q4_KBLOCK * VRT_Q4_KBLOCK;
    VRT_LAUNCH(q4_dequant_kernel, vrt_grid_1d((int64_t)N * (Kp / 8), 256), 256, 0,
               (cudaStream_t)stream, reinterpret_cast<__half *>(dst), q, N, K, Kp);
    return (int)cudaGetLastError();
}

extern "C" int vrt_cuda_matmul_q4(float *y, const float *x, vrt_q4 q, int N, int K,
                                  const float *bias, int T, void *stream)
{
    if (T <= 0 || N <= 0)
        return 0;
    const int Kp = (K + VRT_Q4_KBLOCK - 1) / VRT_Q4_KBLOCK * VRT_Q4_KBLOCK;
    if (T <= Q4D_MAXT) {
        const int vec = !q.perm && K % 4 == 0 && ((uintptr_t)x % 16) == 0;
        const int rows_per_block = Q4D_WARPS * Q4D_RPW;
        const dim3 grid((unsigned)((N + rows_per_block - 1) / rows_per_block));
        const cudaStream_t st = (cudaStream_t)stream;
        if (T == 1)
            VRT_LAUNCH(matmul_q4_gemv_direct<1>, grid, 32 * Q4D_WARPS, 0, st, y, x, q, N, K, Kp,
                       bias, T, vec);
        else if (T == 2)
            VRT_LAUNCH(matmul_q4_gemv_direct<2>, grid, 32 * Q4D_WARPS, 0, st, y, x, q, N, K, Kp,
                       bias, T, vec);
        else
            VRT_LAUNCH(matmul_q4_gemv_direct<4>, grid, 32 * Q4D_WARPS, 0, st, y, x, q, N, K, Kp,
                       bias, T, vec);
    } else if (T <= Q4_GEMV_MAXT) {
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
