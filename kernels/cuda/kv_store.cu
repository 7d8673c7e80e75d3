/* kv_store.cu — writes the new tokens' K/V into the paged fp16 cache.
 *
 * One block per token: its K and V rows ([n_kv_heads][head_dim] each) are
 * rounded to fp16 (round to nearest even) and stored at the token's slot;
 * slot < 0 skips the token. Slots were range-checked by the caller.
 */
#include "cuda/common.cuh"

#define KV_THREADS 128

__global__ void kv_store_kernel(uint16_t *k_cache, uint16_t *v_cache, const float *k,
                                const float *v, const int32_t *slots, int row)
{
    const int t = blockIdx.x;
    const int32_t slot = slots[t];
    if (slot < 0)
        return;
    const int64_t dst = (int64_t)slot * row, src = (int64_t)t * row;
    for (int i = threadIdx.x; i < row; i += blockDim.x) {
        k_cache[dst + i] = __half_as_ushort(__float2half_rn(k[src + i]));
        v_cache[dst + i] = __half_as_ushort(__float2half_rn(v[src + i]));
    }
}

extern "C" int vrt_cuda_kv_store(uint16_t *k_cache, uint16_t *v_cache, const float *k,
                                 const float *v, const int32_t *slots, int T, int n_kv_heads,
                                 int head_dim, void *stream)
{
    if (T <= 0)
        return 0;
    VRT_LAUNCH(kv_store_kernel, (unsigned)T, KV_THREADS, 0, (cudaStream_t)stream, k_cache, v_cache,
               k, v, slots, n_kv_heads * head_dim);
    return (int)cudaGetLastError();
}
