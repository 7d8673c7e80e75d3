/* matmul.cu — y = x·Wᵀ + bias with a simple shared-memory tiled FMA kernel.
 *
 * A 16×16 block computes a 16-token × 16-output tile, one output per
 * thread, walking K in steps of MM_BK: the block stages a [16][MM_BK] tile
 * of x and of W (widened from f16) in shared memory (W's rows padded by one
 * against bank conflicts), then each thread accumulates its dot product in
 * f32. The correctness baseline; the dense projections will go to cuBLAS
 * (fp16 tensor cores) in the cuda backend.
 */
#include "cuda/common.cuh"

#define MM_TILE 16
#define MM_BK 64

__global__ void matmul_kernel(float *y, const float *x, const void *W, int dtype, int N, int K,
                              const float *bias, int T)
{
    VRT_SHARED(float, xs, MM_TILE *MM_BK);       /* [16][MM_BK] */
    VRT_SHARED(float, ws, MM_TILE *(MM_BK + 1)); /* [16][MM_BK + 1] */
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * MM_TILE + tx;
    const int t0 = blockIdx.y * MM_TILE, n0 = blockIdx.x * MM_TILE;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += MM_BK) {
        for (int e = tid; e < MM_TILE * MM_BK; e += MM_TILE * MM_TILE) {
            const int r = e / MM_BK, c = e % MM_BK, kk = k0 + c;
            const int tt = t0 + r, nn = n0 + r;
            xs[r * MM_BK + c] = tt < T && kk < K ? x[(int64_t)tt * K + kk] : 0.0f;
            ws[r * (MM_BK + 1) + c] =
                nn < N && kk < K ? vrt_wload(W, dtype, (int64_t)nn * K + kk) : 0.0f;
        }
        __syncthreads();
        for (int c = 0; c < MM_BK; c++)
            acc += xs[ty * MM_BK + c] * ws[tx * (MM_BK + 1) + c];
        __syncthreads();
    }
    const int t = t0 + ty, n = n0 + tx;
    if (t < T && n < N)
        y[(int64_t)t * N + n] = bias ? acc + bias[n] : acc;
}

extern "C" int vrt_cuda_matmul(float *y, const float *x, const void *W, int dtype, int N, int K,
                               const float *bias, int T, void *stream)
{
    if (T <= 0 || N <= 0)
        return 0;
    const dim3 grid((unsigned)((N + MM_TILE - 1) / MM_TILE),
                    (unsigned)((T + MM_TILE - 1) / MM_TILE));
    VRT_LAUNCH(matmul_kernel, grid, dim3(MM_TILE, MM_TILE), 0, (cudaStream_t)stream, y, x, W, dtype,
               N, K, bias, T);
    return (int)cudaGetLastError();
}
