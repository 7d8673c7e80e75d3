/* matmul_gemv.cu — y = x·Wᵀ + bias for a few tokens (decode), and the small
 * helpers of the cuBLAS path (activations to fp16, bias add).
 *
 * Decode is bound by reading the weights once: one warp owns one output
 * row n and walks K with 128-bit loads (8 fp16 weights per lane per step,
 * so a warp reads 512 contiguous bytes at a time), multiplying each weight
 * with the f32 activations of all TT tokens of the call (TT <= 8, a template
 * parameter so the partial sums live in registers); then a warp shuffle
 * reduction. Activations are read from L1/L2 (the same x for every row).
 * Rows that are not 16-byte aligned or a K that is not a multiple of 8 take
 * the scalar loop, which is also the path for f32 weights.
 */
#include "cuda/common.cuh"

#define GEMV_WARPS 8  /* rows per block */
#define GEMV_UNROLL 4 /* 128-bit weight loads in flight per lane */

/* Row n of y = x·Wᵀ + bias, by the calling warp. */
template <int TT>
__device__ __forceinline__ void gemv_row(float *y, const float *x, const void *W, int dtype, int N,
                                         int K, const float *bias, int T, int vec, int n)
{
    const int lane = threadIdx.x % 32;
    float acc[TT];
    for (int t = 0; t < TT; t++)
        acc[t] = 0.0f;
    int k0 = 0;
    if (vec) {
        /* GEMV_UNROLL 128-bit loads per lane in flight before their use:
         * one load at a time leaves the warp waiting on memory latency. */
        const uint4 *wr =
            reinterpret_cast<const uint4 *>(reinterpret_cast<const __half *>(W) + (int64_t)n * K);
        const int nv = K / 8;
        for (int i0 = lane; i0 < nv; i0 += 32 * GEMV_UNROLL) {
            uint4 u[GEMV_UNROLL];
            for (int j = 0; j < GEMV_UNROLL; j++) {
                const int i = i0 + 32 * j;
                if (i < nv)
                    u[j] = wr[i];
                else
                    u[j] = make_uint4(0u, 0u, 0u, 0u);
            }
            for (int j = 0; j < GEMV_UNROLL; j++) {
                const int i = i0 + 32 * j;
                if (i >= nv)
                    break;
                /* The halves taken out with shifts, not through a __half2
                 * pointer into u (g++ may drop such aliased reads under
                 * cuda-emu; nvcc emits the same register moves either
                 * way). */
                const unsigned wv[4] = {u[j].x, u[j].y, u[j].z, u[j].w};
                float w[8];
                for (int e = 0; e < 4; e++) {
                    w[2 * e] = __half2float(__ushort_as_half((unsigned short)(wv[e] & 0xffffu)));
                    w[2 * e + 1] = __half2float(__ushort_as_half((unsigned short)(wv[e] >> 16)));
                }
                for (int t = 0; t < TT; t++) {
                    if (t < T) {
                        const float4 *xv =
                            reinterpret_cast<const float4 *>(x + (int64_t)t * K + 8 * i);
                        const float4 a = xv[0], c = xv[1];
                        acc[t] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * c.x +
                                  w[5] * c.y + w[6] * c.z + w[7] * c.w;
                    }
                }
            }
        }
        k0 = nv * 8;
    }
    for (int k = k0 + lane; k < K; k += 32) {
        const float w = vrt_wload(W, dtype, (int64_t)n * K + k);
        for (int t = 0; t < TT; t++)
            if (t < T)
                acc[t] += w * x[(int64_t)t * K + k];
    }
    for (int t = 0; t < TT; t++) {
        const float s = vrt_warp_sum(acc[t]);
        if (lane == 0 && t < T)
            y[(int64_t)t * N + n] = bias ? s + bias[n] : s;
    }
}

/* Rows n and n + 1 (when < N) by the calling warp, 128-bit loads only
 * (K % 8 == 0, aligned): each activation load serves both rows. */
template <int TT>
__device__ __forceinline__ void gemv_rows2(float *y, const float *x, const void *W, int N, int K,
                                           const float *bias, int T, int n)
{
    const int lane = threadIdx.x % 32, nv = K / 8;
    const bool two = n + 1 < N;
    const uint4 *wr0 =
        reinterpret_cast<const uint4 *>(reinterpret_cast<const __half *>(W) + (int64_t)n * K);
    const uint4 *wr1 = two ? wr0 + nv : wr0;
    float acc[2][TT];
    for (int r = 0; r < 2; r++)
        for (int t = 0; t < TT; t++)
            acc[r][t] = 0.0f;
    for (int i0 = lane; i0 < nv; i0 += 32 * (GEMV_UNROLL / 2)) {
        uint4 u[2][GEMV_UNROLL / 2];
        for (int j = 0; j < GEMV_UNROLL / 2; j++) {
            const int i = i0 + 32 * j;
            u[0][j] = i < nv ? wr0[i] : make_uint4(0u, 0u, 0u, 0u);
            u[1][j] = i < nv ? wr1[i] : make_uint4(0u, 0u, 0u, 0u);
        }
        for (int j = 0; j < GEMV_UNROLL / 2; j++) {
            const int i = i0 + 32 * j;
            if (i >= nv)
                break;
            float w[2][8];
            for (int r = 0; r < 2; r++) {
                const unsigned wv[4] = {u[r][j].x, u[r][j].y, u[r][j].z, u[r][j].w};
                for (int e = 0; e < 4; e++) {
                    w[r][2 * e] = __half2float(__ushort_as_half((unsigned short)(wv[e] & 0xffffu)));
                    w[r][2 * e + 1] = __half2float(__ushort_as_half((unsigned short)(wv[e] >> 16)));
                }
            }
            for (int t = 0; t < TT; t++) {
                if (t >= T)
                    break;
                const float4 *xv = reinterpret_cast<const float4 *>(x + (int64_t)t * K + 8 * i);
                const float4 a = xv[0], c = xv[1];
                for (int r = 0; r < 2; r++)
                    acc[r][t] += w[r][0] * a.x + w[r][1] * a.y + w[r][2] * a.z + w[r][3] * a.w +
                                 w[r][4] * c.x + w[r][5] * c.y + w[r][6] * c.z + w[r][7] * c.w;
            }
        }
    }
    for (int r = 0; r < 2; r++)
        for (int t = 0; t < TT; t++) {
            const float v = vrt_warp_sum(acc[r][t]);
            if (lane == 0 && t < T && (r == 0 || two))
                y[(int64_t)t * N + n + r] = bias ? v + bias[n + r] : v;
        }
}

/* The vectorized path: two rows per warp. */
template <int TT>
__global__ void gemv2_kernel(float *y, const float *x, const void *W, int N, int K,
                             const float *bias, int T)
{
    const int n = (blockIdx.x * GEMV_WARPS + threadIdx.x / 32) * 2;
    if (n < N) /* a whole warp takes the same branch */
        gemv_rows2<TT>(y, x, W, N, K, bias, T, n);
}

template <int TT>
__global__ void gemv_kernel(float *y, const float *x, const void *W, int dtype, int N, int K,
                            const float *bias, int T, int vec)
{
    const int n = blockIdx.x * GEMV_WARPS + threadIdx.x / 32;
    if (n < N) /* a whole warp takes the same branch */
        gemv_row<TT>(y, x, W, dtype, N, K, bias, T, vec, n);
}

/* Several projections of the same x in one launch (q/k/v, gate/up): the
 * rows of all of them numbered one after another, a warp per row. */
template <int TT>
__global__ void gemv_group_kernel(vrt_gemv_group g, const float *x, int dtype, int K, int T,
                                  unsigned vec_mask)
{
    int n = blockIdx.x * GEMV_WARPS + threadIdx.x / 32, m = 0;
    while (m < g.n && n >= g.N[m]) {
        n -= g.N[m];
        m++;
    }
    if (m < g.n)
        gemv_row<TT>(g.y[m], x, g.W[m], dtype, g.N[m], K, g.bias[m], T, (vec_mask >> m) & 1, n);
}

extern "C" int vrt_cuda_gemv_group(vrt_gemv_group g, const float *x, int dtype, int K, int T,
                                   void *stream)
{
    if (T <= 0 || g.n <= 0)
        return 0;
    if (T > VRT_CUDA_GEMV_MAX_T || g.n > VRT_CUDA_GEMV_GROUP)
        return (int)cudaErrorInvalidConfiguration;
    int64_t rows = 0;
    unsigned vec = 0;
    for (int m = 0; m < g.n; m++) {
        rows += g.N[m];
        if (dtype == 1 && K % 8 == 0 && ((uintptr_t)g.W[m] % 16) == 0 && ((uintptr_t)x % 16) == 0)
            vec |= 1u << m;
    }
    const unsigned grid = (unsigned)((rows + GEMV_WARPS - 1) / GEMV_WARPS);
    const cudaStream_t s = (cudaStream_t)stream;
    if (T == 1)
        VRT_LAUNCH(gemv_group_kernel<1>, grid, 32 * GEMV_WARPS, 0, s, g, x, dtype, K, T, vec);
    else if (T == 2)
        VRT_LAUNCH(gemv_group_kernel<2>, grid, 32 * GEMV_WARPS, 0, s, g, x, dtype, K, T, vec);
    else
        VRT_LAUNCH(gemv_group_kernel<4>, grid, 32 * GEMV_WARPS, 0, s, g, x, dtype, K, T, vec);
    return (int)cudaGetLastError();
}

extern "C" int vrt_cuda_gemv(float *y, const float *x, const void *W, int dtype, int N, int K,
                             const float *bias, int T, void *stream)
{
    if (T <= 0 || N <= 0)
        return 0;
    if (T > VRT_CUDA_GEMV_MAX_T)
        return (int)cudaErrorInvalidConfiguration;
    /* 128-bit loads need 16-byte aligned rows (K % 8 == 0 and an aligned
     * base) and 16-byte aligned activation rows. */
    const int vec =
        dtype == 1 && K % 8 == 0 && ((uintptr_t)W % 16) == 0 && ((uintptr_t)x % 16) == 0;
    const cudaStream_t s = (cudaStream_t)stream;
    /* Two rows per warp only at two tokens: on an H100 it took a step from
     * 2.50 to 2.18 ms there, but from 2.07 to 2.52 ms at one token (half
     * the warps) and from 2.86 to 3.11 at four (examples/bench/RESULTS.md). */
    if (vec && T == 2) {
        const unsigned grid2 = (unsigned)((N + 2 * GEMV_WARPS - 1) / (2 * GEMV_WARPS));
        VRT_LAUNCH(gemv2_kernel<2>, grid2, 32 * GEMV_WARPS, 0, s, y, x, W, N, K, bias, T);
        return (int)cudaGetLastError();
    }
    const unsigned grid = (unsigned)((N + GEMV_WARPS - 1) / GEMV_WARPS);
    if (T == 1)
        VRT_LAUNCH(gemv_kernel<1>, grid, 32 * GEMV_WARPS, 0, s, y, x, W, dtype, N, K, bias, T, vec);
    else if (T == 2)
        VRT_LAUNCH(gemv_kernel<2>, grid, 32 * GEMV_WARPS, 0, s, y, x, W, dtype, N, K, bias, T, vec);
    else
        VRT_LAUNCH(gemv_kernel<4>, grid, 32 * GEMV_WARPS, 0, s, y, x, W, dtype, N, K, bias, T, vec);
    return (int)cudaGetLastError();
}

__global__ void to_half_kernel(__half *dst, const float *src, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __float2half_rn(src[i]);
}

extern "C" int vrt_cuda_to_half(uint16_t *dst, const float *src, int64_t n, void *stream)
{
    if (n <= 0)
        return 0;
    VRT_LAUNCH(to_half_kernel, vrt_grid_1d(n, 256), 256, 0, (cudaStream_t)stream,
               reinterpret_cast<__half *>(dst), src, n);
    return (int)cudaGetLastError();
}

__global__ void add_bias_kernel(float *y, const float *bias, int64_t n, int N)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] += bias[i % N];
}

extern "C" int vrt_cuda_add_bias(float *y, const float *bias, int T, int N, void *stream)
{
    const int64_t n = (int64_t)T * N;
    if (n <= 0)
        return 0;
    VRT_LAUNCH(add_bias_kernel, vrt_grid_1d(n, 256), 256, 0, (cudaStream_t)stream, y, bias, n, N);
    return (int)cudaGetLastError();
}
