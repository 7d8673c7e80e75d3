/* attn.cu — paged causal attention (prefill and decode), GQA, sliding window.
 *
 * One block per (query token, head), ATT_THREADS threads. The block walks
 * the visible keys of its sequence through the block table in chunks of
 * blockDim.x keys: each thread scores one key (q·k over head_dim, fp16 keys
 * widened to f32), the block takes the chunk's max and folds the chunk into
 * a streaming softmax (running max m, running sum l) in f32; each thread
 * owns head_dim/blockDim.x output dims and accumulates the chunk's
 * weighted fp16 values for them. Memory is O(head_dim + blockDim) per
 * block whatever the context. Arguments (block tables, ctx_len) were
 * checked by the caller.
 *
 * Written for correctness first: one block walks the whole context (no
 * split over it for long sequences), and keys and values are loaded one
 * fp16 element at a time (no 128-bit loads).
 */
#include "cuda/common.cuh"

#define ATT_THREADS 64

__global__ void attention_kernel(float *out, const float *q, const uint16_t *k_cache,
                                 const uint16_t *v_cache, vrt_attn_batch a)
{
    const int h = blockIdx.x, t = blockIdx.y, nt = blockDim.x, tid = threadIdx.x;
    const int hd = a.head_dim, bs = a.block_size;
    int64_t *offs = vrt_dyn_smem<int64_t>();          /* [nt] cache offset of each chunk key */
    float *qs = reinterpret_cast<float *>(offs + nt); /* [hd] q · scale */
    float *acc = qs + hd;                             /* [hd] */
    float *wts = acc + hd;                            /* [nt] softmax weights of the chunk */

    /* The sequence owning token t (q_start is non-decreasing). */
    int lo = 0, hi = a.n_seqs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (a.q_start[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    const int s = lo, q_len = a.q_start[s + 1] - a.q_start[s];
    const int p = a.ctx_len[s] - q_len + (t - a.q_start[s]); /* this query's position */
    const int kvh = h / (a.n_heads / a.n_kv_heads);
    const int64_t row = (int64_t)a.n_kv_heads * hd;
    const int32_t *table = a.block_table + (int64_t)s * a.max_blocks_per_seq;
    const float *qv = q + ((int64_t)t * a.n_heads + h) * hd;

    for (int d = tid; d < hd; d += nt) {
        qs[d] = qv[d] * a.scale;
        acc[d] = 0.0f;
    }
    __syncthreads();
    int k_first = 0;
    if (a.sliding_window > 0 && p - a.sliding_window + 1 > 0)
        k_first = p - a.sliding_window + 1;
    float m = -INFINITY, l = 0.0f;
    for (int k0 = k_first; k0 <= p; k0 += nt) {
        const int k = k0 + tid, n = p + 1 - k0 < nt ? p + 1 - k0 : nt;
        float sc = -INFINITY;
        if (k <= p) {
            const int64_t off = ((int64_t)table[k / bs] * bs + k % bs) * row + (int64_t)kvh * hd;
            const __half *kr = reinterpret_cast<const __half *>(k_cache) + off;
            float dot = 0.0f;
            for (int d = 0; d < hd; d++)
                dot += qs[d] * __half2float(kr[d]);
            sc = dot;
            offs[tid] = off;
        }
        const float m_new = fmaxf(m, vrt_block_max(sc)); /* finite: the chunk has a key */
        const float corr = expf(m - m_new);              /* exp(-inf) = 0 on the first chunk */
        const float w = k <= p ? expf(sc - m_new) : 0.0f;
        wts[tid] = w;
        l = l * corr + vrt_block_sum(w); /* its barriers publish wts and offs */
        for (int d = tid; d < hd; d += nt) {
            float o = acc[d] * corr;
            for (int i = 0; i < n; i++)
                o += wts[i] * __half2float(reinterpret_cast<const __half *>(v_cache)[offs[i] + d]);
            acc[d] = o;
        }
        m = m_new;
        __syncthreads(); /* wts and offs are rewritten by the next chunk */
    }
    float *o = out + ((int64_t)t * a.n_heads + h) * hd;
    const float inv = 1.0f / l;
    for (int d = tid; d < hd; d += nt)
        o[d] = acc[d] * inv;
}

extern "C" int vrt_cuda_attention(float *out, const float *q, const uint16_t *k_cache,
                                  const uint16_t *v_cache, vrt_attn_batch batch, int T,
                                  void *stream)
{
    if (T <= 0 || batch.n_seqs <= 0)
        return 0;
    const size_t smem =
        sizeof(int64_t) * ATT_THREADS + sizeof(float) * (2 * (size_t)batch.head_dim + ATT_THREADS);
    VRT_LAUNCH(attention_kernel, dim3((unsigned)batch.n_heads, (unsigned)T), ATT_THREADS, smem,
               (cudaStream_t)stream, out, q, k_cache, v_cache, batch);
    return (int)cudaGetLastError();
}
