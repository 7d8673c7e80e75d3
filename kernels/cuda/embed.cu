/* embed.cu — embedding lookup: one block per token copies (or widens) its row.
 *
 * Token ids were range-checked by the caller; an f16 table is widened to
 * f32 exactly.
 */
#include "cuda/common.cuh"

#define EMBED_THREADS 128

__global__ void embed_kernel(float *out, const void *table, int dtype, int D, const int32_t *ids)
{
    const int t = blockIdx.x;
    const int64_t row = (int64_t)ids[t] * D;
    float *o = out + (int64_t)t * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        o[i] = vrt_wload(table, dtype, row + i);
}

extern "C" int vrt_cuda_embed(float *out, const void *table, int dtype, int D, const int32_t *ids,
                              int T, void *stream)
{
    if (T <= 0)
        return 0;
    VRT_LAUNCH(embed_kernel, (unsigned)T, EMBED_THREADS, 0, (cudaStream_t)stream, out, table, dtype,
               D, ids);
    return (int)cudaGetLastError();
}
