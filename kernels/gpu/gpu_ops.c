/* gpu_ops.c — the ops shared by the cuda and cuda-emu backends (gpu_ops.h).
 *
 * Each op checks its arguments with the cpu backend's checks (the same
 * messages on every backend), on a host-readable view of the index arrays,
 * and then calls the backend's launcher; a nonzero launch status becomes a
 * VRT_EDEVICE error through the backend's launch_error hook.
 */
#include "gpu/gpu_ops.h"

#include "core/err.h"
#include "cpu/cpu.h"
#include "cuda/kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GPU_MOE_MAX_K 64 /* as the cpu backend */

static vrt_gpu_kernels *K(vrt_backend *b)
{
    return (vrt_gpu_kernels *)b->ctx;
}

static int launched(vrt_backend *b, int rc, const char *op, vrt_err *err)
{
    if (rc == 0)
        return 0;
    return K(b)->launch_error(K(b)->owner, rc, op, err);
}

/* A host-readable view of n bytes of device memory at p: p itself where
 * device memory is host memory, else a malloc'd copy left in *copy (the
 * caller frees it). */
static int host_view(vrt_backend *b, const void *p, size_t n, const void **view, void **copy,
                     vrt_err *err)
{
    *copy = NULL;
    *view = p;
    if (!K(b)->read_back || !p || n == 0)
        return 0;
    void *h = malloc(n);
    if (!h)
        return vrt_err_set(err, VRT_ENOMEM, "%s: out of memory reading back %zu bytes",
                           K(b)->name, n);
    int rc = K(b)->read_back(K(b)->owner, h, p, n, err);
    if (rc) {
        free(h);
        return rc;
    }
    *copy = h;
    *view = h;
    return 0;
}

/* Whether the index arrays' contents are to be checked on the host. */
static int check_contents(vrt_backend *b)
{
    return !b->inputs_checked;
}

/* ---- ops ---- */

static int gpu_embed(vrt_backend *b, float *out, const vrt_weight *table, const int32_t *ids, int T,
                     vrt_err *err)
{
    int rc;
    if (check_contents(b)) {
        const void *v;
        void *copy;
        if ((rc = host_view(b, ids, T > 0 ? (size_t)T * sizeof *ids : 0, &v, &copy, err)) != 0)
            return rc;
        rc = vrt__cpu_check_embed(out, table, v, T, err);
        free(copy);
    } else {
        rc = vrt__cpu_check_weight(table, -1, "embed", "table", err);
        if (!rc && (T < 0 || (T > 0 && (!out || !ids))))
            rc = vrt_err_set(err, VRT_EINVAL, "embed: T = %d with a NULL array", T);
        if (!rc && T == 0)
            rc = 1;
    }
    if (rc)
        return rc < 0 ? rc : 0;
    if (table->cols > INT32_MAX)
        return vrt_err_set(err, VRT_EINVAL, "embed: row of %lld elements is too long",
                           (long long)table->cols);
    return launched(b,
                    K(b)->embed(out, table->data, table->dtype, (int)table->cols, ids, T,
                                K(b)->stream),
                    "embed", err);
}

static int gpu_rmsnorm(vrt_backend *b, float *out, const float *x, const vrt_weight *w, int T,
                       int D, float eps, float w_offset, vrt_err *err)
{
    int rc = vrt__cpu_check_rows("rmsnorm", out, x, T, D, eps, err);
    if (!rc)
        rc = vrt__cpu_check_weight(w, D, "rmsnorm", "w", err);
    if (rc || T == 0)
        return rc;
    return launched(b,
                    K(b)->rmsnorm(out, x, w->data, w->dtype, T, D, eps, w_offset, K(b)->stream),
                    "rmsnorm", err);
}

static int gpu_add_rmsnorm(vrt_backend *b, float *x, const float *a, float *out,
                           const vrt_weight *w, int T, int D, float eps, float w_offset,
                           vrt_err *err)
{
    int rc = vrt__cpu_check_rows("add_rmsnorm", out, x, T, D, eps, err);
    if (!rc && T > 0 && !a)
        rc = vrt_err_set(err, VRT_EINVAL, "add_rmsnorm: NULL a");
    if (!rc)
        rc = vrt__cpu_check_weight(w, D, "add_rmsnorm", "w", err);
    if (rc || T == 0)
        return rc;
    return launched(b,
                    K(b)->add_rmsnorm(x, a, out, w->data, w->dtype, T, D, eps, w_offset,
                                      K(b)->stream),
                    "add_rmsnorm", err);
}

static int gpu_layernorm(vrt_backend *b, float *out, const float *x, const vrt_weight *w,
                         const vrt_weight *bias, int T, int D, float eps, vrt_err *err)
{
    int rc = vrt__cpu_check_rows("layernorm", out, x, T, D, eps, err);
    if (!rc)
        rc = vrt__cpu_check_weight(w, D, "layernorm", "w", err);
    if (!rc && bias)
        rc = vrt__cpu_check_weight(bias, D, "layernorm", "bias", err);
    if (rc || T == 0)
        return rc;
    return launched(b,
                    K(b)->layernorm(out, x, w->data, w->dtype, bias ? bias->data : NULL,
                                    bias ? bias->dtype : 0, T, D, eps, K(b)->stream),
                    "layernorm", err);
}

static int gpu_rope(vrt_backend *b, float *x, const int32_t *pos, int T, int n_heads, int head_dim,
                    int rot_dim, int interleaved, const float *inv_freq, vrt_err *err)
{
    int rc;
    if (check_contents(b)) {
        const void *v;
        void *copy;
        if ((rc = host_view(b, pos, T > 0 ? (size_t)T * sizeof *pos : 0, &v, &copy, err)) != 0)
            return rc;
        rc = vrt__cpu_check_rope(x, v, T, n_heads, head_dim, rot_dim, inv_freq,
                                 VRT_CUDA_MAX_HEAD_DIM, err);
        free(copy);
    } else {
        /* The positions were checked by the caller: a 0 stands in for
         * them, so that only the shapes are checked. */
        static const int32_t zero[1] = {0};
        rc = T == 0 ? 1
                    : vrt__cpu_check_rope(x, pos ? zero : NULL, 1, n_heads, head_dim, rot_dim,
                                          inv_freq, VRT_CUDA_MAX_HEAD_DIM, err);
    }
    if (rc)
        return rc < 0 ? rc : 0;
    return launched(b,
                    K(b)->rope(x, pos, T, n_heads, head_dim, rot_dim, interleaved, inv_freq,
                               K(b)->stream),
                    "rope", err);
}

static int gpu_matmul(vrt_backend *b, float *y, const float *x, const vrt_weight *W,
                      const float *bias, int T, vrt_err *err)
{
    const int q4 = W && W->data && W->dtype == VRT_DT_Q4 && K(b)->matmul_q4;
    int rc = q4 ? vrt__cpu_check_q4(W, "matmul", "W", err)
                : vrt__cpu_check_weight(W, -1, "matmul", "W", err);
    if (rc)
        return rc;
    if (T < 0 || (T > 0 && (!y || !x)))
        return vrt_err_set(err, VRT_EINVAL, "matmul: T = %d with y=%p x=%p", T, (void *)y,
                           (const void *)x);
    if (q4) {
        if (W->rows > 65535LL * 16 || T > 65535 * 64)
            return vrt_err_set(err, VRT_EINVAL, "matmul: q4 W of %lld rows with T = %d is too large",
                               (long long)W->rows, T);
        if ((uintptr_t)W->q4->qweight % 16 != 0)
            return vrt_err_set(err, VRT_EINVAL,
                               "matmul: q4 qweight at %p is not 16-byte aligned (128-bit loads)",
                               (const void *)W->q4->qweight);
        if (T == 0)
            return 0;
        if (T > VRT_CUDA_GEMV_MAX_T && K(b)->matmul_q4_large)
            return K(b)->matmul_q4_large(K(b)->owner, y, x, W, bias, T, err);
        return launched(b,
                        K(b)->matmul_q4(y, x, *W->q4, (int)W->rows, (int)W->cols, bias, T,
                                        K(b)->stream),
                        "matmul", err);
    }
    if (W->rows > INT32_MAX || W->cols > INT32_MAX || W->rows > 65535LL * 16)
        return vrt_err_set(err, VRT_EINVAL, "matmul: W of [%lld][%lld] is too large",
                           (long long)W->rows, (long long)W->cols);
    if (T == 0)
        return 0;
    if (K(b)->gemv && T <= VRT_CUDA_GEMV_MAX_T && !(K(b)->no_custom && K(b)->matmul))
        return launched(b,
                        K(b)->gemv(y, x, W->data, W->dtype, (int)W->rows, (int)W->cols, bias, T,
                                   K(b)->stream),
                        "matmul", err);
    if (K(b)->matmul)
        return K(b)->matmul(K(b)->owner, y, x, W, bias, T, err);
    return launched(b,
                    K(b)->matmul_fma(y, x, W->data, W->dtype, (int)W->rows, (int)W->cols, bias, T,
                                     K(b)->stream),
                    "matmul", err);
}

static int gpu_matmul_group(vrt_backend *b, int n, float *const *y, const float *x,
                            const vrt_weight *const *W, const float *const *bias, int T,
                            vrt_err *err)
{
    if (n < 1 || !y || !W || !bias)
        return vrt_err_set(err, VRT_EINVAL, "matmul_group: n = %d or a NULL array", n);
    /* One launch when every weight is an f16/f32 matrix of the same dtype
     * and width and the GEMV takes the token count; else one call each. */
    /* Only from 3 tokens: on an H100 one launch for q/k/v and for gate/up
     * gained 6 % at 4 tokens and lost 8 % at 1 (examples/bench/RESULTS.md). */
    int one = K(b)->gemv_group && !K(b)->no_custom && T >= 3 && T <= VRT_CUDA_GEMV_MAX_T &&
              n <= VRT_CUDA_GEMV_GROUP && x;
    for (int i = 0; i < n && one; i++)
        one = W[i] && y[i] && (W[i]->dtype == VRT_DT_F16 || W[i]->dtype == VRT_DT_F32) &&
              W[i]->dtype == W[0]->dtype && W[i]->cols == W[0]->cols && W[i]->rows <= INT32_MAX &&
              W[i]->cols <= INT32_MAX;
    if (!one) {
        for (int i = 0; i < n; i++) {
            int rc = gpu_matmul(b, y[i], x, W[i], bias[i], T, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    vrt_gemv_group g = {.n = n};
    for (int i = 0; i < n; i++) {
        int rc = vrt__cpu_check_weight(W[i], -1, "matmul", "W", err);
        if (rc)
            return rc;
        g.W[i] = W[i]->data;
        g.y[i] = y[i];
        g.bias[i] = bias[i];
        g.N[i] = (int)W[i]->rows;
    }
    return launched(b, K(b)->gemv_group(g, x, W[0]->dtype, (int)W[0]->cols, T, K(b)->stream),
                    "matmul", err);
}

static int gpu_silu_mul(vrt_backend *b, float *out, const float *gate, const float *up, int64_t n,
                        vrt_err *err)
{
    int rc = vrt__cpu_check_elem("silu_mul", out, gate, up, n, err);
    if (rc || n == 0)
        return rc;
    return launched(b, K(b)->silu_mul(out, gate, up, n, K(b)->stream), "silu_mul", err);
}

static int gpu_gelu_mul(vrt_backend *b, float *out, const float *gate, const float *up, int64_t n,
                        int tanh_approx, vrt_err *err)
{
    int rc = vrt__cpu_check_elem("gelu_mul", out, gate, up, n, err);
    if (rc || n == 0)
        return rc;
    return launched(b, K(b)->gelu_mul(out, gate, up, n, tanh_approx, K(b)->stream), "gelu_mul",
                    err);
}

static int gpu_gelu(vrt_backend *b, float *out, const float *x, int64_t n, int tanh_approx,
                    vrt_err *err)
{
    int rc = vrt__cpu_check_elem("gelu", out, x, x, n, err);
    if (rc || n == 0)
        return rc;
    return launched(b, K(b)->gelu(out, x, n, tanh_approx, K(b)->stream), "gelu", err);
}

static int gpu_add(vrt_backend *b, float *out, const float *a, const float *c, int64_t n,
                   vrt_err *err)
{
    int rc = vrt__cpu_check_elem("add", out, a, c, n, err);
    if (rc || n == 0)
        return rc;
    return launched(b, K(b)->add(out, a, c, n, K(b)->stream), "add", err);
}

static int gpu_kv_store(vrt_backend *b, uint16_t *k_cache, uint16_t *v_cache, const float *k,
                        const float *v, const int32_t *slots, int T, int n_kv_heads, int head_dim,
                        int64_t num_slots, vrt_err *err)
{
    const void *view = slots;
    void *copy = NULL;
    int rc = 0;
    if (check_contents(b))
        rc = host_view(b, slots, T > 0 ? (size_t)T * sizeof *slots : 0, &view, &copy, err);
    else if (T > 0 && !slots)
        rc = vrt_err_set(err, VRT_EINVAL, "kv_store: NULL slots");
    if (!rc) {
        /* Without a view of the contents, every slot passes the range
         * check: a 0 stands in for them (the caller checked them). */
        static const int32_t zero[1] = {0};
        rc = vrt__cpu_check_kv_store(k_cache, v_cache, k, v, check_contents(b) ? view : zero,
                                     check_contents(b) ? T : (T > 0 ? 1 : 0), n_kv_heads, head_dim,
                                     num_slots, err);
    }
    free(copy);
    if (rc)
        return rc < 0 ? rc : 0;
    if (T == 0)
        return 0;
    return launched(b,
                    K(b)->kv_store(k_cache, v_cache, k, v, slots, T, n_kv_heads, head_dim,
                                   K(b)->stream),
                    "kv_store", err);
}

/* Checks an attention call on a host view of its batch; *T gets the
 * number of query tokens. */
static int check_attention(vrt_backend *b, const char *op, float *out, const float *q,
                           const uint16_t *kc, const uint16_t *vc, const vrt_attn_batch *a,
                           int decode, int *T, vrt_err *err)
{
    if (!a)
        return vrt_err_set(err, VRT_EINVAL, "%s: batch is NULL", op);
    if (a->n_seqs < 0)
        return vrt_err_set(err, VRT_EINVAL, "%s: n_seqs = %d", op, a->n_seqs);
    if (a->n_seqs == 0) {
        *T = 0;
        return 0;
    }
    if (a->max_blocks_per_seq <= 0)
        return vrt_err_set(err, VRT_EINVAL, "%s: max_blocks_per_seq = %d", op,
                           a->max_blocks_per_seq);
    if (!check_contents(b)) {
        /* The caller checked the arrays on the host and gives the token
         * count; only the scalars are checked here. */
        *T = a->n_tokens;
        if (a->n_heads <= 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads != 0)
            return vrt_err_set(err, VRT_EINVAL,
                               "%s: n_heads = %d must be a positive multiple of n_kv_heads = %d",
                               op, a->n_heads, a->n_kv_heads);
        if (a->head_dim <= 0 || a->block_size <= 0 || a->sliding_window < 0 ||
            a->num_blocks < 0)
            return vrt_err_set(err, VRT_EINVAL,
                               "%s: head_dim = %d, block_size = %d, sliding_window = %d, "
                               "num_blocks = %d",
                               op, a->head_dim, a->block_size, a->sliding_window, a->num_blocks);
        if (a->n_tokens < a->n_seqs || (decode && a->n_tokens != a->n_seqs))
            return vrt_err_set(err, VRT_EINVAL,
                               "%s: batch.n_tokens = %d for %d sequences (decode takes exactly "
                               "1 per sequence)",
                               op, a->n_tokens, a->n_seqs);
        if (!out || !q || !kc || !vc)
            return vrt_err_set(err, VRT_EINVAL, "%s: NULL out, q or KV cache", op);
        return 0;
    }
    const size_t n = (size_t)a->n_seqs;
    const void *vq, *vc_, *vt;
    void *cq = NULL, *cc = NULL, *ct = NULL;
    int rc = host_view(b, a->q_start, (n + 1) * 4, &vq, &cq, err);
    if (!rc)
        rc = host_view(b, a->ctx_len, n * 4, &vc_, &cc, err);
    if (!rc)
        rc = host_view(b, a->block_table, n * (size_t)a->max_blocks_per_seq * 4, &vt, &ct, err);
    if (!rc) {
        vrt_attn_batch h = *a;
        h.q_start = vq;
        h.ctx_len = vc_;
        h.block_table = vt;
        rc = vrt__cpu_check_attn_batch(op, out, q, kc, vc, &h, err);
        if (!rc && decode)
            rc = vrt__cpu_check_decode(&h, err);
        if (!rc)
            *T = h.q_start[h.n_seqs];
    }
    free(cq);
    free(cc);
    free(ct);
    return rc;
}

static int attention(vrt_backend *b, const char *op, float *out, const float *q,
                     const uint16_t *k_cache, const uint16_t *v_cache, const vrt_attn_batch *a,
                     int decode, vrt_err *err)
{
    int T = 0;
    int rc = check_attention(b, op, out, q, k_cache, v_cache, a, decode, &T, err);
    if (rc || a->n_seqs == 0 || T == 0)
        return rc;
    if (a->head_dim > VRT_CUDA_MAX_HEAD_DIM || a->n_heads > 65535)
        return vrt_err_set(err, VRT_EINVAL, "%s: head_dim = %d, n_heads = %d too large", op,
                           a->head_dim, a->n_heads);
    if (T > 65535)
        return vrt_err_set(err, VRT_EINVAL, "%s: %d query tokens in one call (at most 65535)", op,
                           T);
    if (decode && K(b)->attn_decode && !K(b)->no_custom &&
        K(b)->attn_decode_ok(a->head_dim, a->n_heads, a->n_kv_heads)) {
        size_t need = K(b)->attn_decode_scratch(a);
        if (need > K(b)->scratch_bytes) {
            if (K(b)->scratch)
                b->free(b, K(b)->scratch);
            K(b)->scratch = NULL;
            K(b)->scratch_bytes = 0;
            b->buffers_epoch++;
            size_t cap = need < ((size_t)1 << 20) ? ((size_t)1 << 20) : need;
            if (!(K(b)->scratch = b->alloc(b, cap, err)))
                return vrt_err_prefix(err, "%s: scratch of %zu bytes: ", op, cap);
            K(b)->scratch_bytes = cap;
        }
        return launched(b,
                        K(b)->attn_decode(out, q, k_cache, v_cache, *a, K(b)->scratch,
                                          K(b)->stream),
                        op, err);
    }
    if (!decode && K(b)->attn_prefill && !K(b)->no_custom && K(b)->attn_prefill_ok(a->head_dim))
        return launched(b, K(b)->attn_prefill(out, q, k_cache, v_cache, *a, T, K(b)->stream), op,
                        err);
    return launched(b, K(b)->attention(out, q, k_cache, v_cache, *a, T, K(b)->stream), op, err);
}

void vrt__gpu_ops_release(vrt_backend *b)
{
    if (K(b)->scratch)
        b->free(b, K(b)->scratch);
    K(b)->scratch = NULL;
    K(b)->scratch_bytes = 0;
}

static int gpu_attention_prefill(vrt_backend *b, float *out, const float *q,
                                 const uint16_t *k_cache, const uint16_t *v_cache,
                                 const vrt_attn_batch *batch, vrt_err *err)
{
    return attention(b, "attention_prefill", out, q, k_cache, v_cache, batch, 0, err);
}

static int gpu_attention_decode(vrt_backend *b, float *out, const float *q, const uint16_t *k_cache,
                                const uint16_t *v_cache, const vrt_attn_batch *batch, vrt_err *err)
{
    return attention(b, "attention_decode", out, q, k_cache, v_cache, batch, 1, err);
}

static int gpu_moe_topk(vrt_backend *b, const float *router_logits, int T, int E, int k,
                        int renormalize, int32_t *idx, float *weights, vrt_err *err)
{
    if (T < 0 || E <= 0 || E > 48 * 1024)
        return vrt_err_set(err, VRT_EINVAL, "moe_topk: bad shape T = %d, E = %d experts", T, E);
    if (k < 1 || k > E || k > GPU_MOE_MAX_K)
        return vrt_err_set(err, VRT_ERANGE,
                           "moe_topk: k = %d experts per token must be between 1 and the number "
                           "of experts (%d, at most %d)",
                           k, E, GPU_MOE_MAX_K);
    if (T == 0)
        return 0;
    if (!router_logits || !idx || !weights)
        return vrt_err_set(err, VRT_EINVAL, "moe_topk: NULL logits, idx or weights");
    return launched(b,
                    K(b)->moe_topk(router_logits, T, E, k, renormalize, idx, weights,
                                   K(b)->stream),
                    "moe_topk", err);
}

void vrt__gpu_ops_init(vrt_backend *b)
{
    /* V100RT_NO_FUSION=1 leaves the fused ops out (the forward pass then
     * makes separate calls), =group or =norm only one of them: for
     * comparing them in benchmarks. */
    const char *nf = getenv("V100RT_NO_FUSION");
    const int off = nf && *nf && strcmp(nf, "0") != 0;
    const int fuse_group = !(off && strcmp(nf, "norm") != 0);
    const int fuse = !(off && strcmp(nf, "group") != 0);
    b->supports_op = vrt__cpu_supports_op;
    b->embed = gpu_embed;
    b->rmsnorm = gpu_rmsnorm;
    b->add_rmsnorm = K(b)->no_custom || !fuse ? NULL : gpu_add_rmsnorm;
    b->layernorm = gpu_layernorm;
    b->rope = gpu_rope;
    b->matmul = gpu_matmul;
    b->matmul_group = fuse_group ? gpu_matmul_group : NULL;
    b->silu_mul = gpu_silu_mul;
    b->gelu_mul = gpu_gelu_mul;
    b->gelu = gpu_gelu;
    b->add = gpu_add;
    b->kv_store = gpu_kv_store;
    b->attention_prefill = gpu_attention_prefill;
    b->attention_decode = gpu_attention_decode;
    b->moe_topk = gpu_moe_topk;
}
