/* ops.c — the checked front of the backend ops (ops.h).
 *
 * Each op has a check_<name>() here with the op's parameters; it returns a
 * negative VRT_E* code with a message, 1 when there is nothing to do
 * (T == 0 ...), or 0 to go on. The fronts of the ops marked VRT_FRONT_GEN
 * in ops.def are generated from them; attention's are written out (they
 * hand the backend a copy of the batch with n_tokens filled in). Index
 * arrays are device pointers: on a backend whose memory is not host memory
 * they are copied back once per call for the check.
 */
#include "backend/ops.h"

#include "core/err.h"

#include <stdint.h>
#include <stdlib.h>

/* ---- the names of the ops ---- */

static const char *const op_names[VRT_OP_COUNT] = {
#define VRT_OP(name, ENUM, weights, front, params, args) [VRT_OP_##ENUM] = #name,
#include "backend/ops.def"
#undef VRT_OP
};

const char *vrt_op_name(vrt_op op)
{
    if ((int)op < 0 || op >= VRT_OP_COUNT || !op_names[op])
        return "unknown";
    return op_names[op];
}

/* ---- helpers ---- */

static const char *backend_name(const vrt_backend *b)
{
    return b->name ? b->name : "?";
}

/* The backend exists and has the op (slot is whether its entry is set). */
static int check_backend(vrt_backend *b, vrt_op op, int slot, vrt_err *err)
{
    if (!b)
        return vrt_err_set(err, VRT_EINVAL, "%s: backend is NULL", vrt_op_name(op));
    if (!slot)
        return vrt_err_set(err, VRT_EUNSUPPORTED, "%s: the %s backend does not have this op",
                           vrt_op_name(op), backend_name(b));
    return 0;
}

/* A host-readable view of n bytes of device memory at p: p itself where
 * device memory is host memory, else a malloc'd copy left in *copy (the
 * caller frees it). */
static int host_view(vrt_backend *b, const void *p, size_t n, const void **view, void **copy,
                     vrt_err *err)
{
    *copy = NULL;
    *view = p;
    if (b->host_memory || !p || n == 0)
        return 0;
    void *h = malloc(n);
    if (!h)
        return vrt_err_set(err, VRT_ENOMEM, "%s: out of memory reading back %zu bytes",
                           backend_name(b), n);
    int rc = b->copy_to_host(b, h, p, n, err);
    if (rc) {
        free(h);
        return rc;
    }
    *copy = h;
    *view = h;
    return 0;
}

/* w is a weight of dtype f32 or f16 with rows*cols == n (when n >= 0);
 * what names the tensor in the message. */
static int check_weight(const vrt_weight *w, int64_t n, const char *op, const char *what,
                        vrt_err *err)
{
    if (!w || !w->data)
        return vrt_err_set(err, VRT_EINVAL, "%s: weight %s is missing (NULL)", op, what);
    if (w->dtype == VRT_DT_Q4)
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "%s: weight %s has dtype q4, which only matmul takes (here f32 or "
                           "f16)",
                           op, what);
    if (w->dtype != VRT_DT_F32 && w->dtype != VRT_DT_F16)
        return vrt_err_set(err, VRT_EINVAL,
                           "%s: weight %s has unknown dtype %d (expected f32=0 or f16=1)", op, what,
                           w->dtype);
    if (w->rows <= 0 || w->cols <= 0)
        return vrt_err_set(err, VRT_EINVAL, "%s: weight %s has shape [%lld][%lld]", op, what,
                           (long long)w->rows, (long long)w->cols);
    if (n >= 0 && w->rows * w->cols != n)
        return vrt_err_set(err, VRT_EINVAL,
                           "%s: weight %s has shape [%lld][%lld] = %lld elements, expected %lld",
                           op, what, (long long)w->rows, (long long)w->cols,
                           (long long)(w->rows * w->cols), (long long)n);
    return 0;
}

/* A VRT_DT_Q4 weight's descriptor. */
static int check_q4(const vrt_weight *w, const char *op, const char *what, vrt_err *err)
{
    const vrt_q4 *q = w->q4;
    if (!q)
        return vrt_err_set(err, VRT_EINVAL, "%s: weight %s has dtype q4 but no int4 descriptor", op,
                           what);
    if (!q->qweight || !q->scales || !q->zeros)
        return vrt_err_set(err, VRT_EINVAL, "%s: q4 weight %s lacks qweight, scales or zeros", op,
                           what);
    if (w->rows <= 0 || w->cols <= 0 || w->rows > INT32_MAX || w->cols > INT32_MAX)
        return vrt_err_set(err, VRT_EINVAL, "%s: q4 weight %s has shape [%lld][%lld]", op, what,
                           (long long)w->rows, (long long)w->cols);
    int64_t K = w->cols, G = q->group_size;
    if (G <= 0 || (G % VRT_Q4_KBLOCK != 0 && G < K))
        return vrt_err_set(err, VRT_EINVAL,
                           "%s: q4 weight %s has group_size %d: it must be a multiple of %d or "
                           "cover all %lld input columns",
                           op, what, q->group_size, VRT_Q4_KBLOCK, (long long)K);
    int64_t ng = G >= K ? 1 : (K + G - 1) / G;
    if (q->n_groups != ng)
        return vrt_err_set(err, VRT_EINVAL,
                           "%s: q4 weight %s has %d groups, expected ceil(%lld / %d) = %lld", op,
                           what, q->n_groups, (long long)K, q->group_size, (long long)ng);
    return 0;
}

/* Norms over rows: T >= 0 rows of D > 0, no NULL array when T > 0, eps >= 0. */
static int check_rows(const char *op, const float *out, const float *x, int T, int D, float eps,
                      vrt_err *err)
{
    if (T < 0 || D <= 0)
        return vrt_err_set(err, VRT_EINVAL, "%s: bad shape T = %d, D = %d", op, T, D);
    if (T > 0 && (!out || !x))
        return vrt_err_set(err, VRT_EINVAL, "%s: NULL input or output", op);
    if (!(eps >= 0))
        return vrt_err_set(err, VRT_ERANGE, "%s: eps = %g must be >= 0", op, (double)eps);
    return T == 0;
}

/* Element-wise ops: n >= 0, and no NULL array when n > 0. */
static int check_elem(const char *op, const float *out, const float *a, const float *c, int64_t n,
                      vrt_err *err)
{
    if (n < 0)
        return vrt_err_set(err, VRT_EINVAL, "%s: n = %lld", op, (long long)n);
    if (n > 0 && (!out || !a || !c))
        return vrt_err_set(err, VRT_EINVAL, "%s: NULL input or output", op);
    return n == 0;
}

/* ---- the checks of the ops ---- */

static int check_embed(vrt_backend *b, float *out, const vrt_weight *table, const int32_t *ids,
                       int T, vrt_err *err)
{
    int rc = check_weight(table, -1, "embed", "table", err);
    if (rc)
        return rc;
    if (T < 0 || (T > 0 && (!out || !ids)))
        return vrt_err_set(err, VRT_EINVAL, "embed: T = %d with out=%p ids=%p", T, (void *)out,
                           (const void *)ids);
    if (table->cols > INT32_MAX)
        return vrt_err_set(err, VRT_EINVAL, "embed: row of %lld elements is too long",
                           (long long)table->cols);
    if (T == 0)
        return 1;
    const void *v;
    void *copy;
    if ((rc = host_view(b, ids, (size_t)T * sizeof *ids, &v, &copy, err)) != 0)
        return rc;
    const int32_t *h = v;
    for (int t = 0; t < T && !rc; t++)
        if (h[t] < 0 || h[t] >= table->rows)
            rc = vrt_err_set(err, VRT_ERANGE,
                             "embed: token id %d at position %d is out of range: the "
                             "embedding table has %lld rows (vocab size)",
                             (int)h[t], t, (long long)table->rows);
    free(copy);
    return rc;
}

static int check_rmsnorm(vrt_backend *b, float *out, const float *x, const vrt_weight *w, int T,
                         int D, float eps, float w_offset, vrt_err *err)
{
    int rc = check_rows("rmsnorm", out, x, T, D, eps, err);
    if (rc >= 0) {
        int rw = check_weight(w, D, "rmsnorm", "w", err);
        rc = rw ? rw : rc;
    }
    return rc;
}

static int check_layernorm(vrt_backend *b, float *out, const float *x, const vrt_weight *w,
                           const vrt_weight *bias, int T, int D, float eps, vrt_err *err)
{
    int rc = check_rows("layernorm", out, x, T, D, eps, err);
    if (rc >= 0) {
        int rw = check_weight(w, D, "layernorm", "w", err);
        if (!rw && bias)
            rw = check_weight(bias, D, "layernorm", "bias", err);
        rc = rw ? rw : rc;
    }
    return rc;
}

static int check_rope(vrt_backend *b, float *x, const int32_t *pos, int T, int n_heads,
                      int head_dim, int rot_dim, int interleaved, const float *inv_freq,
                      vrt_err *err)
{
    if (T < 0 || n_heads <= 0 || head_dim <= 0 || head_dim > VRT_MAX_HEAD_DIM)
        return vrt_err_set(err, VRT_EINVAL,
                           "rope: bad shape T = %d, n_heads = %d, head_dim = %d (max %d)", T,
                           n_heads, head_dim, VRT_MAX_HEAD_DIM);
    if (rot_dim < 0 || rot_dim > head_dim || rot_dim % 2 != 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "rope: rot_dim = %d must be even and between 0 and head_dim = %d",
                           rot_dim, head_dim);
    if (T == 0 || rot_dim == 0)
        return 1;
    if (!x || !pos || !inv_freq)
        return vrt_err_set(err, VRT_EINVAL, "rope: NULL x, pos or inv_freq");
    const void *v;
    void *copy;
    int rc = host_view(b, pos, (size_t)T * sizeof *pos, &v, &copy, err);
    if (rc)
        return rc;
    const int32_t *h = v;
    for (int t = 0; t < T && !rc; t++)
        if (h[t] < 0)
            rc = vrt_err_set(err, VRT_ERANGE, "rope: position %d of token %d is negative",
                             (int)h[t], t);
    free(copy);
    return rc;
}

static int check_matmul(vrt_backend *b, float *y, const float *x, const vrt_weight *W,
                        const float *bias, int T, vrt_err *err)
{
    const int q4 = W && W->data && W->dtype == VRT_DT_Q4;
    int rc = q4 ? check_q4(W, "matmul", "W", err) : check_weight(W, -1, "matmul", "W", err);
    if (rc)
        return rc;
    if (q4 && !b->supports_op(b, VRT_OP_MATMUL, VRT_DT_Q4))
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "matmul: weight W has dtype q4, which the %s backend does not take",
                           backend_name(b));
    if (T < 0 || (T > 0 && (!y || !x)))
        return vrt_err_set(err, VRT_EINVAL, "matmul: T = %d with y=%p x=%p", T, (void *)y,
                           (const void *)x);
    return T == 0;
}

static int check_silu_mul(vrt_backend *b, float *out, const float *gate, const float *up, int64_t n,
                          vrt_err *err)
{
    return check_elem("silu_mul", out, gate, up, n, err);
}

static int check_gelu_mul(vrt_backend *b, float *out, const float *gate, const float *up, int64_t n,
                          int tanh_approx, vrt_err *err)
{
    return check_elem("gelu_mul", out, gate, up, n, err);
}

static int check_gelu(vrt_backend *b, float *out, const float *x, int64_t n, int tanh_approx,
                      vrt_err *err)
{
    return check_elem("gelu", out, x, x, n, err);
}

static int check_add(vrt_backend *b, float *out, const float *a, const float *c, int64_t n,
                     vrt_err *err)
{
    return check_elem("add", out, a, c, n, err);
}

static int check_kv_store(vrt_backend *b, uint16_t *k_cache, uint16_t *v_cache, const float *k,
                          const float *v, const int32_t *slots, int T, int n_kv_heads, int head_dim,
                          int64_t num_slots, vrt_err *err)
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
    const void *view;
    void *copy;
    int rc = host_view(b, slots, (size_t)T * sizeof *slots, &view, &copy, err);
    if (rc)
        return rc;
    /* Every slot is checked before anything is written. */
    const int32_t *h = view;
    for (int t = 0; t < T && !rc; t++)
        if (h[t] >= num_slots)
            rc = vrt_err_set(err, VRT_ERANGE,
                             "kv_store: slot %d of token %d is out of range: the KV cache "
                             "has %lld slots (num_blocks × block_size)",
                             (int)h[t], t, (long long)num_slots);
    free(copy);
    return rc;
}

/* An attention batch whose arrays are host-readable: shapes, q_start and
 * ctx_len consistency, and every block the call reads against num_blocks. */
static int check_attn_batch(const char *op, const float *out, const float *q, const uint16_t *kc,
                            const uint16_t *vc, const vrt_attn_batch *a, vrt_err *err)
{
    if (a->n_heads <= 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads != 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "%s: n_heads = %d must be a positive multiple of n_kv_heads = %d", op,
                           a->n_heads, a->n_kv_heads);
    if (a->head_dim <= 0 || a->head_dim > VRT_MAX_HEAD_DIM)
        return vrt_err_set(err, VRT_EINVAL, "%s: head_dim = %d (the backends allow 1..%d)", op,
                           a->head_dim, VRT_MAX_HEAD_DIM);
    if (a->block_size <= 0 || a->sliding_window < 0 || a->num_blocks < 0)
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

/* Decode takes exactly one query token per sequence. */
static int check_decode(const vrt_attn_batch *a, vrt_err *err)
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

/* Checks an attention call on a host view of its batch; *T gets the
 * number of query tokens. */
static int check_attention(vrt_backend *b, const char *op, const float *out, const float *q,
                           const uint16_t *kc, const uint16_t *vc, const vrt_attn_batch *a,
                           int decode, int *T, vrt_err *err)
{
    *T = 0;
    if (!a)
        return vrt_err_set(err, VRT_EINVAL, "%s: batch is NULL", op);
    if (a->n_seqs < 0)
        return vrt_err_set(err, VRT_EINVAL, "%s: n_seqs = %d", op, a->n_seqs);
    if (a->n_seqs == 0)
        return 1;
    if (!a->q_start || !a->ctx_len || !a->block_table)
        return vrt_err_set(err, VRT_EINVAL, "%s: NULL q_start, ctx_len or block_table", op);
    if (a->max_blocks_per_seq <= 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "%s: block_size = %d, max_blocks_per_seq = %d, sliding_window = %d, "
                           "num_blocks = %d",
                           op, a->block_size, a->max_blocks_per_seq, a->sliding_window,
                           a->num_blocks);
    const size_t n = (size_t)a->n_seqs;
    const void *vq, *vl, *vt;
    void *cq = NULL, *cl = NULL, *ct = NULL;
    int rc = host_view(b, a->q_start, (n + 1) * sizeof *a->q_start, &vq, &cq, err);
    if (!rc)
        rc = host_view(b, a->ctx_len, n * sizeof *a->ctx_len, &vl, &cl, err);
    if (!rc)
        rc = host_view(b, a->block_table, n * (size_t)a->max_blocks_per_seq * sizeof(int32_t), &vt,
                       &ct, err);
    if (!rc) {
        vrt_attn_batch h = *a;
        h.q_start = vq;
        h.ctx_len = vl;
        h.block_table = vt;
        rc = check_attn_batch(op, out, q, kc, vc, &h, err);
        if (!rc && decode)
            rc = check_decode(&h, err);
        if (!rc) {
            *T = h.q_start[h.n_seqs];
            if (a->n_tokens != 0 && a->n_tokens != *T)
                rc = vrt_err_set(err, VRT_EINVAL,
                                 "%s: batch.n_tokens = %d but q_start[n_seqs] = %d (0 lets the "
                                 "front fill it in)",
                                 op, a->n_tokens, *T);
        }
    }
    free(cq);
    free(cl);
    free(ct);
    if (!rc && *T == 0)
        rc = 1;
    return rc;
}

static int check_moe_topk(vrt_backend *b, const float *router_logits, int T, int E, int k,
                          int renormalize, int32_t *idx, float *weights, vrt_err *err)
{
    if (T < 0 || E <= 0)
        return vrt_err_set(err, VRT_EINVAL, "moe_topk: bad shape T = %d, E = %d experts", T, E);
    if (k < 1 || k > E || k > VRT_MOE_MAX_K)
        return vrt_err_set(err, VRT_ERANGE,
                           "moe_topk: k = %d experts per token must be between 1 and the number "
                           "of experts (%d, at most %d)",
                           k, E, VRT_MOE_MAX_K);
    if (T == 0)
        return 1;
    if (!router_logits || !idx || !weights)
        return vrt_err_set(err, VRT_EINVAL, "moe_topk: NULL logits, idx or weights");
    return 0;
}

/* ---- the fronts ---- */

#define VRT_FRONT_GEN(name, ENUM, params, args)                                                    \
    int vrt_op_##name(vrt_backend *b, VRT_OP_UNPAREN params, vrt_err *err)                         \
    {                                                                                              \
        int rc = check_backend(b, VRT_OP_##ENUM, b && b->name, err);                               \
        if (!rc)                                                                                   \
            rc = check_##name(b, VRT_OP_UNPAREN args, err);                                        \
        if (rc)                                                                                    \
            return rc < 0 ? rc : 0;                                                                \
        return b->name(b, VRT_OP_UNPAREN args, err);                                               \
    }
#define VRT_FRONT_OWN(name, ENUM, params, args)
#define VRT_OP(name, ENUM, weights, front, params, args) front(name, ENUM, params, args)
#include "backend/ops.def"
#undef VRT_OP

int vrt_op_attention_prefill(vrt_backend *b, float *out, const float *q, const uint16_t *k_cache,
                             const uint16_t *v_cache, const vrt_attn_batch *batch, vrt_err *err)
{
    int T = 0;
    int rc = check_backend(b, VRT_OP_ATTN_PREFILL, b && b->attention_prefill, err);
    if (!rc)
        rc = check_attention(b, "attention_prefill", out, q, k_cache, v_cache, batch, 0, &T, err);
    if (rc)
        return rc < 0 ? rc : 0;
    vrt_attn_batch d = *batch;
    d.n_tokens = T;
    return b->attention_prefill(b, out, q, k_cache, v_cache, &d, err);
}

int vrt_op_attention_decode(vrt_backend *b, float *out, const float *q, const uint16_t *k_cache,
                            const uint16_t *v_cache, const vrt_attn_batch *batch, vrt_err *err)
{
    int T = 0;
    int rc = check_backend(b, VRT_OP_ATTN_DECODE, b && b->attention_decode, err);
    if (!rc)
        rc = check_attention(b, "attention_decode", out, q, k_cache, v_cache, batch, 1, &T, err);
    if (rc)
        return rc < 0 ? rc : 0;
    vrt_attn_batch d = *batch;
    d.n_tokens = T;
    return b->attention_decode(b, out, q, k_cache, v_cache, &d, err);
}

int vrt_op_add_rmsnorm(vrt_backend *b, float *x, const float *a, float *out, const vrt_weight *w,
                       int T, int D, float eps, float w_offset, vrt_err *err)
{
    int rc = check_backend(b, VRT_OP_RMSNORM, b && b->rmsnorm && b->add, err);
    if (!rc)
        rc = check_rows("add_rmsnorm", out, x, T, D, eps, err);
    if (!rc && !a)
        rc = vrt_err_set(err, VRT_EINVAL, "add_rmsnorm: NULL a");
    if (rc >= 0) {
        int rw = check_weight(w, D, "add_rmsnorm", "w", err);
        rc = rw ? rw : rc;
    }
    if (rc)
        return rc < 0 ? rc : 0;
    if (b->add_rmsnorm)
        return b->add_rmsnorm(b, x, a, out, w, T, D, eps, w_offset, err);
    rc = b->add(b, x, x, a, (int64_t)T * D, err);
    return rc ? rc : b->rmsnorm(b, out, x, w, T, D, eps, w_offset, err);
}

int vrt_op_matmul_group(vrt_backend *b, int n, float *const *y, const float *x,
                        const vrt_weight *const *W, const float *const *bias, int T, vrt_err *err)
{
    int rc = check_backend(b, VRT_OP_MATMUL, b && b->matmul, err);
    if (rc)
        return rc;
    if (n < 1 || !y || !W || !bias)
        return vrt_err_set(err, VRT_EINVAL, "matmul_group: n = %d or a NULL array", n);
    for (int i = 0; i < n; i++) {
        rc = check_matmul(b, y[i], x, W[i], bias[i], T, err);
        if (rc)
            return rc < 0 ? rc : 0;
    }
    if (b->matmul_group)
        return b->matmul_group(b, n, y, x, W, bias, T, err);
    for (int i = 0; i < n && !rc; i++)
        rc = b->matmul(b, y[i], x, W[i], bias[i], T, err);
    return rc;
}
