/* moe.cu — mixture-of-experts routing: softmax over the experts, then the top k.
 *
 * One warp per token. As in the CPU backend, the experts are chosen on the
 * logits (softmax is monotonic; NaN counts as -inf), ties go to the lower
 * expert index, and the k weights are the chosen experts' softmax
 * probabilities, renormalized to sum 1 when asked. Each of the k rounds is
 * a warp-wide argmax (shuffles) over the experts not taken yet; the taken
 * flags live in shared memory.
 */
#include "cuda/common.cuh"

__global__ void moe_topk_kernel(const float *logits, int E, int k, int renormalize, int32_t *idx,
                                float *weights)
{
    const int t = blockIdx.x, lane = threadIdx.x;
    const float *x = logits + (int64_t)t * E;
    unsigned char *taken = vrt_dyn_smem<unsigned char>(); /* [E] */
    float mx = -INFINITY;
    for (int e = lane; e < E; e += 32) {
        const float v = isnan(x[e]) ? -INFINITY : x[e];
        mx = fmaxf(mx, v);
        taken[e] = 0;
    }
    mx = vrt_warp_max(mx);
    float sum = 0.0f;
    for (int e = lane; e < E; e += 32)
        sum += isnan(x[e]) ? 0.0f : expf(x[e] - mx);
    sum = vrt_warp_sum(sum);
    __syncwarp();
    float sel = 0.0f;
    for (int j = 0; j < k; j++) {
        float bv = -INFINITY;
        int be = 0x7fffffff; /* none */
        for (int e = lane; e < E; e += 32) {
            const float v = isnan(x[e]) ? -INFINITY : x[e];
            if (!taken[e] && (v > bv || be == 0x7fffffff)) {
                bv = v;
                be = e;
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(VRT_FULL_MASK, bv, o);
            const int oe = __shfl_xor_sync(VRT_FULL_MASK, be, o);
            if (oe != 0x7fffffff && (be == 0x7fffffff || ov > bv || (ov == bv && oe < be))) {
                bv = ov;
                be = oe;
            }
        }
        const float w = expf(bv - mx) / sum;
        sel += w;
        if (lane == 0) {
            taken[be] = 1;
            idx[(int64_t)t * k + j] = be;
            weights[(int64_t)t * k + j] = w;
        }
        __syncwarp();
    }
    if (renormalize)
        for (int j = lane; j < k; j += 32)
            weights[(int64_t)t * k + j] /= sel;
}

extern "C" int vrt_cuda_moe_topk(const float *router_logits, int T, int E, int k, int renormalize,
                                 int32_t *idx, float *weights, void *stream)
{
    if (T <= 0)
        return 0;
    VRT_LAUNCH(moe_topk_kernel, (unsigned)T, 32, (size_t)E, (cudaStream_t)stream, router_logits, E,
               k, renormalize, idx, weights);
    return (int)cudaGetLastError();
}
