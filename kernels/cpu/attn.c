/* kv_attn.c — CPU paged KV store and paged causal attention (prefill and decode).
 *
 * kv_store rounds the new tokens' K/V to fp16 and writes them at their
 * slots. Attention works per (flattened query token, head), in parallel: it
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

int vrt__cpu_check_kv_store(const uint16_t *k_cache, const uint16_t *v_cache, const float *k,
                            const float *v, const int32_t *slots, int T, int n_kv_heads,
                            int head_dim, int64_t num_slots, vrt_err *err)
{
    if (T < 0 || n_kv_heads <= 0 || head_dim <= 0 || num_slots < 0 ||
        (int64_t)n_kv_heads * head_dim > INT32_MAX)
        return vrt_err_set(err, VRT_EINVAL,
                           "kv_store: bad shape T = %d, n_kv_heads = %d, head_dim = %d, "
                           "num_slots = %lld",
                           T, n_kv_heads, head_dim, (long long)num_slots);
    if (T == 0)
        return 1;
    if (!k_cache || !v_cache || !k || !v || !slots)
        return vrt_err_set(err, VRT_EINVAL, "kv_store: NULL cache, k, v or slots");
    /* Check every slot before writing anything. */
    for (int t = 0; t < T; t++)
        if (slots[t] >= num_slots)
            return vrt_err_set(err, VRT_ERANGE,
                               "kv_store: slot %d of token %d is out of range: the KV cache "
                               "has %lld slots (num_blocks × block_size)",
                               (int)slots[t], t, (long long)num_slots);
    return 0;
}

int vrt__cpu_kv_store(vrt_backend *b, uint16_t *k_cache, uint16_t *v_cache, const float *k,
                      const float *v, const int32_t *slots, int T, int n_kv_heads, int head_dim,
                      int64_t num_slots, vrt_err *err)
{
    int rc = vrt__cpu_check_kv_store(k_cache, v_cache, k, v, slots, T, n_kv_heads, head_dim,
                                     num_slots, err);
    if (rc)
        return rc < 0 ? rc : 0;
    const int64_t row = (int64_t)n_kv_heads * head_dim;
    const int nt = vrt__cpu_threads(b);
#pragma omp parallel for num_threads(nt) if (T * row > 65536) schedule(static)
    for (int t = 0; t < T; t++) {
        if (slots[t] < 0)
            continue;
        int64_t dst = (int64_t)slots[t] * row;
        vrt_f32_to_f16_n(k_cache + dst, k + t * row, (size_t)row);
        vrt_f32_to_f16_n(v_cache + dst, v + t * row, (size_t)row);
    }
    return 0;
}

int vrt__cpu_check_attn_batch(const char *op, const float *out, const float *q, const uint16_t *kc,
                              const uint16_t *vc, const vrt_attn_batch *a, vrt_err *err)
{
    if (!a)
        return vrt_err_set(err, VRT_EINVAL, "%s: batch is NULL", op);
    if (a->n_seqs < 0)
        return vrt_err_set(err, VRT_EINVAL, "%s: n_seqs = %d", op, a->n_seqs);
    if (a->n_seqs == 0)
        return 0;
    if (!a->q_start || !a->ctx_len || !a->block_table)
        return vrt_err_set(err, VRT_EINVAL, "%s: NULL q_start, ctx_len or block_table", op);
    if (a->n_heads <= 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads != 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "%s: n_heads = %d must be a positive multiple of n_kv_heads = %d", op,
                           a->n_heads, a->n_kv_heads);
    if (a->head_dim <= 0 || a->head_dim > VRT_CPU_MAX_HEAD_DIM)
        return vrt_err_set(err, VRT_EINVAL, "%s: head_dim = %d (the cpu backend allows 1..%d)", op,
                           a->head_dim, VRT_CPU_MAX_HEAD_DIM);
    if (a->block_size <= 0 || a->max_blocks_per_seq <= 0 || a->sliding_window < 0 ||
        a->num_blocks < 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "%s: block_size = %d, max_blocks_per_seq = %d, sliding_window = %d, "
                           "num_blocks = %d",
                           op, a->block_size, a->max_blocks_per_seq, a->sliding_window,
                           a->num_blocks);
    if (a->q_start[0] != 0)
        return vrt_err_set(err, VRT_EINVAL, "%s: q_start[0] = %d, must be 0", op,
                           (int)a->q_start[0]);
    const int64_t cap = (int64_t)a->max_blocks_per_seq * a->block_size;
    for (int s = 0; s < a->n_seqs; s++) {
        int q_len = a->q_start[s + 1] - a->q_start[s];
        int ctx = a->ctx_len[s];
        if (q_len < 0)
            return vrt_err_set(err, VRT_EINVAL, "%s: q_start decreases at sequence %d (%d -> %d)",
                               op, s, (int)a->q_start[s], (int)a->q_start[s + 1]);
        if (ctx < q_len || ctx > cap)
            return vrt_err_set(err, VRT_ERANGE,
                               "%s: sequence %d has ctx_len %d: it must be at least its %d new "
                               "tokens and at most max_blocks_per_seq × block_size = %lld",
                               op, s, ctx, q_len, (long long)cap);
        if (q_len == 0)
            continue;
        /* The blocks this call reads: from the first key the earliest query
         * sees to the last key. */
        int lo = 0, first_p = ctx - q_len;
        if (a->sliding_window > 0 && first_p - a->sliding_window + 1 > 0)
            lo = first_p - a->sliding_window + 1;
        for (int j = lo / a->block_size; j <= (ctx - 1) / a->block_size; j++) {
            int32_t blk = a->block_table[(int64_t)s * a->max_blocks_per_seq + j];
            if (blk < 0 || (a->num_blocks > 0 && blk >= a->num_blocks))
                return vrt_err_set(err, VRT_ERANGE,
                                   "%s: sequence %d, logical block %d maps to physical block "
                                   "%d, outside the KV cache (%d blocks)",
                                   op, s, j, (int)blk, a->num_blocks);
        }
    }
    if (a->q_start[a->n_seqs] > 0 && (!out || !q || !kc || !vc))
        return vrt_err_set(err, VRT_EINVAL, "%s: NULL out, q or KV cache", op);
    return 0;
}

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

static int attention(vrt_backend *b, float *out, const float *q, const uint16_t *k_cache,
                     const uint16_t *v_cache, const vrt_attn_batch *a)
{
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
    int rc = vrt__cpu_check_attn_batch("attention_prefill", out, q, k_cache, v_cache, batch, err);
    if (rc || batch->n_seqs == 0)
        return rc;
    return attention(b, out, q, k_cache, v_cache, batch);
}

int vrt__cpu_attention_decode(vrt_backend *b, float *out, const float *q, const uint16_t *k_cache,
                              const uint16_t *v_cache, const vrt_attn_batch *batch, vrt_err *err)
{
    int rc = vrt__cpu_check_attn_batch("attention_decode", out, q, k_cache, v_cache, batch, err);
    if (!rc)
        rc = vrt__cpu_check_decode(batch, err);
    if (rc || batch->n_seqs == 0)
        return rc;
    return attention(b, out, q, k_cache, v_cache, batch);
}

int vrt__cpu_check_decode(const vrt_attn_batch *a, vrt_err *err)
{
    for (int s = 0; s < a->n_seqs; s++) {
        int q_len = a->q_start[s + 1] - a->q_start[s];
        if (q_len != 1)
            return vrt_err_set(err, VRT_EINVAL,
                               "attention_decode: sequence %d has %d query tokens; decode takes "
                               "exactly 1 per sequence (use attention_prefill)",
                               s, q_len);
    }
    return 0;
}
