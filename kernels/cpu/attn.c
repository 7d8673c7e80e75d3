/* attn.c — CPU paged causal attention (prefill and decode).
 *
 * Attention works per (flattened query token, head), in parallel: it
 * walks the sequence's visible key positions through the block table in
 * chunks of ATT_CHUNK keys, computes the chunk's scores (fp16 keys converted
 * as they are read), and folds the chunk into a streaming softmax (running
 * max m, running sum l, accumulator acc[head_dim]) — so memory stays
 * O(head_dim) per worker whatever the context. Prefill and decode share the
 * kernel; decode only insists that every sequence has one query token.
 */
#include "cpu/cpu.h"

#include "backend/half.h"
#include "core/err.h"

#include <math.h>

#define ATT_CHUNK VRT_CPU_ATT_CHUNK

/* The sequence owning flattened token t (q_start is non-decreasing). */
static int seq_of(const int32_t *q_start, int n_seqs, int t)
{
    int lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (q_start[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static void attend_one(float *o, const float *qv, const uint16_t *k_cache, const uint16_t *v_cache,
                       const vrt_attn_batch *a, int s, int p, int kvh)
{
    const int hd = a->head_dim, bs = a->block_size;
    const int64_t row = (int64_t)a->n_kv_heads * hd;
    const int32_t *table = a->block_table + (int64_t)s * a->max_blocks_per_seq;
    float qs[VRT_CPU_MAX_HEAD_DIM], acc[VRT_CPU_MAX_HEAD_DIM], sc[ATT_CHUNK];
    int64_t off[ATT_CHUNK];
    for (int d = 0; d < hd; d++) {
        qs[d] = qv[d] * a->scale;
        acc[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    int lo = 0;
    if (a->sliding_window > 0 && p - a->sliding_window + 1 > 0)
        lo = p - a->sliding_window + 1;
    for (int k0 = lo; k0 <= p; k0 += ATT_CHUNK) {
        int n = p + 1 - k0 < ATT_CHUNK ? p + 1 - k0 : ATT_CHUNK;
        float cmax = -INFINITY;
        for (int i = 0; i < n; i++) {
            int k = k0 + i;
            int64_t slot = (int64_t)table[k / bs] * bs + k % bs;
            off[i] = slot * row + (int64_t)kvh * hd;
            const uint16_t *kr = k_cache + off[i];
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int d = 0; d < hd; d++)
                dot += qs[d] * vrt_f16_to_f32(kr[d]);
            sc[i] = dot;
            cmax = dot > cmax ? dot : cmax;
        }
        if (cmax > m) {                  /* rescale what was accumulated under the old max */
            float corr = expf(m - cmax); /* exp(-inf) = 0 on the first chunk */
            l *= corr;
            for (int d = 0; d < hd; d++)
                acc[d] *= corr;
            m = cmax;
        }
        for (int i = 0; i < n; i++) {
            float w = expf(sc[i] - m);
            const uint16_t *vr = v_cache + off[i];
            l += w;
#pragma omp simd
            for (int d = 0; d < hd; d++)
                acc[d] += w * vrt_f16_to_f32(vr[d]);
        }
    }
    float inv = 1.0f / l;
    for (int d = 0; d < hd; d++)
        o[d] = acc[d] * inv;
}

static int attention(vrt_backend *b, const char *op, float *out, const float *q,
                     const uint16_t *k_cache, const uint16_t *v_cache, const vrt_attn_batch *a,
                     vrt_err *err)
{
    /* Kept here although the front checks it: attend_one's scratch is stack
     * arrays of VRT_CPU_MAX_HEAD_DIM, and a model's head_dim is not bounded
     * before it reaches the kernel. */
    if (a->head_dim > VRT_CPU_MAX_HEAD_DIM)
        return vrt_err_set(err, VRT_EINVAL, "%s: head_dim = %d (the cpu backend allows 1..%d)", op,
                           a->head_dim, VRT_CPU_MAX_HEAD_DIM);
    const int T = a->q_start[a->n_seqs], H = a->n_heads, hd = a->head_dim;
    const int group = a->n_heads / a->n_kv_heads;
    const int64_t items = (int64_t)T * H;
    const int nt = vrt__cpu_threads(b);
    const int avx2 = ((vrt__cpu_ctx *)b->ctx)->isa == VRT_CPU_ISA_AVX2;
#pragma omp parallel for num_threads(nt) if (items > 1) schedule(dynamic, 4)
    for (int64_t it = 0; it < items; it++) {
        int t = (int)(it / H), h = (int)(it % H);
        int s = seq_of(a->q_start, a->n_seqs, t);
        int q_len = a->q_start[s + 1] - a->q_start[s];
        int p = a->ctx_len[s] - q_len + (t - a->q_start[s]);
        if (avx2)
            vrt__cpu_attend_one_avx2(out + it * hd, q + it * hd, k_cache, v_cache, a, s, p,
                                     h / group);
        else
            attend_one(out + it * hd, q + it * hd, k_cache, v_cache, a, s, p, h / group);
    }
    return 0;
}

int vrt__cpu_attention_prefill(vrt_backend *b, float *out, const float *q, const uint16_t *k_cache,
                               const uint16_t *v_cache, const vrt_attn_batch *batch, vrt_err *err)
{
    return attention(b, "attention_prefill", out, q, k_cache, v_cache, batch, err);
}

int vrt__cpu_attention_decode(vrt_backend *b, float *out, const float *q, const uint16_t *k_cache,
                              const uint16_t *v_cache, const vrt_attn_batch *batch, vrt_err *err)
{
    return attention(b, "attention_decode", out, q, k_cache, v_cache, batch, err);
}
