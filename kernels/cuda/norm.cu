/* norm.cu — RMSNorm and LayerNorm: one block per token (row), block reductions.
 *
 * Each thread sums a strided part of the row, the block combines the parts
 * (warp shuffles, then one value per warp through shared memory), and every
 * thread scales its elements. LayerNorm takes the mean first and then the
 * squared deviations (two passes, as the CPU backend: no E[x²]-E[x]²
 * cancellation). out may alias x: each element is read before it is
 * written, by the same thread.
 */
#include "cuda/common.cuh"

#define NORM_THREADS 256

__global__ void rmsnorm_kernel(float *out, const float *x, const void *w, int dtype, int D,
                               float eps, float w_offset)
{
    const float *xr = x + (int64_t)blockIdx.x * D;
    float *o = out + (int64_t)blockIdx.x * D;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        ss += xr[i] * xr[i];
    ss = vrt_block_sum(ss);
    const float inv = 1.0f / sqrtf(ss / (float)D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        o[i] = xr[i] * inv * (vrt_wload(w, dtype, i) + w_offset);
}

/* x += a, then out = rmsnorm(x): the residual add fused into the norm
 * that follows it. out may alias a: each element of a is read by the
 * thread that later writes out there. */
__global__ void add_rmsnorm_kernel(float *x, const float *a, float *out, const void *w, int dtype,
                                   int D, float eps, float w_offset)
{
    float *xr = x + (int64_t)blockIdx.x * D;
    const float *ar = a + (int64_t)blockIdx.x * D;
    float *o = out + (int64_t)blockIdx.x * D;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        const float v = xr[i] + ar[i];
        xr[i] = v;
        ss += v * v;
    }
    ss = vrt_block_sum(ss);
    const float inv = 1.0f / sqrtf(ss / (float)D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        o[i] = xr[i] * inv * (vrt_wload(w, dtype, i) + w_offset);
}

__global__ void layernorm_kernel(float *out, const float *x, const void *w, int w_dtype,
                                 const void *bias, int b_dtype, int D, float eps)
{
    const float *xr = x + (int64_t)blockIdx.x * D;
    float *o = out + (int64_t)blockIdx.x * D;
    float s = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        s += xr[i];
    const float mean = vrt_block_sum(s) / (float)D;
    float v = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        v += (xr[i] - mean) * (xr[i] - mean);
    const float inv = 1.0f / sqrtf(vrt_block_sum(v) / (float)D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float y = (xr[i] - mean) * inv * vrt_wload(w, w_dtype, i);
        o[i] = bias ? y + vrt_wload(bias, b_dtype, i) : y;
    }
}

/* Threads per row: enough warps for D, at most NORM_THREADS. */
static unsigned norm_threads(int D)
{
    unsigned n = (unsigned)((D + 31) / 32 * 32);
    return n > NORM_THREADS ? NORM_THREADS : n;
}

extern "C" int vrt_cuda_rmsnorm(float *out, const float *x, const void *w, int dtype, int T, int D,
                                float eps, float w_offset, void *stream)
{
    if (T <= 0)
        return 0;
    VRT_LAUNCH(rmsnorm_kernel, (unsigned)T, norm_threads(D), 0, (cudaStream_t)stream, out, x, w,
               dtype, D, eps, w_offset);
    return (int)cudaGetLastError();
}

extern "C" int vrt_cuda_add_rmsnorm(float *x, const float *a, float *out, const void *w, int dtype,
                                    int T, int D, float eps, float w_offset, void *stream)
{
    if (T <= 0)
        return 0;
    VRT_LAUNCH(add_rmsnorm_kernel, (unsigned)T, norm_threads(D), 0, (cudaStream_t)stream, x, a, out,
               w, dtype, D, eps, w_offset);
    return (int)cudaGetLastError();
}

extern "C" int vrt_cuda_layernorm(float *out, const float *x, const void *w, int w_dtype,
                                  const void *bias, int b_dtype, int T, int D, float eps,
                                  void *stream)
{
    if (T <= 0)
        return 0;
    VRT_LAUNCH(layernorm_kernel, (unsigned)T, norm_threads(D), 0, (cudaStream_t)stream, out, x, w,
               w_dtype, bias, b_dtype, D, eps);
    return (int)cudaGetLastError();
}
