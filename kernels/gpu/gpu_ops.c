/* gpu_ops.c — the ops shared by the cuda and cuda-emu backends (gpu_ops.h).
 *
 * Each op picks a kernel and calls the backend's launcher; a nonzero launch
 * status becomes a VRT_EDEVICE error through the backend's launch_error
 * hook. The arguments were checked by the caller (the checked front,
 * backend/ops.h, or the forward pass), on the host: nothing is read back
 * from the device here. What is still checked is what the launch itself
 * needs (grid dimensions, alignment), cheap scalar tests.
 */
#include "gpu/gpu_ops.h"

#include "core/err.h"
#include "cuda/kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GPU_MOE_MAX_K VRT_MOE_MAX_K

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

/* ---- ops ---- */

static int gpu_embed(vrt_backend *b, float *out, const vrt_weight *table, const int32_t *ids, int T,
                     vrt_err *err)
{
    if (T == 0)
        return 0;
    return launched(
        b, K(b)->embed(out, table->data, table->dtype, (int)table->cols, ids, T, K(b)->stream),
        "embed", err);
}

static int gpu_rmsnorm(vrt_backend *b, float *out, const float *x, const vrt_weight *w, int T,
                       int D, float eps, float w_offset, vrt_err *err)
{
    if (T == 0)
        return 0;
    return launched(b, K(b)->rmsnorm(out, x, w->data, w->dtype, T, D, eps, w_offset, K(b)->stream),
                    "rmsnorm", err);
}

static int gpu_add_rmsnorm(vrt_backend *b, float *x, const float *a, float *out,
                           const vrt_weight *w, int T, int D, float eps, float w_offset,
                           vrt_err *err)
{
    if (T == 0)
        return 0;
    return launched(
        b, K(b)->add_rmsnorm(x, a, out, w->data, w->dtype, T, D, eps, w_offset, K(b)->stream),
        "add_rmsnorm", err);
}

static int gpu_layernorm(vrt_backend *b, float *out, const float *x, const vrt_weight *w,
                         const vrt_weight *bias, int T, int D, float eps, vrt_err *err)
{
    if (T == 0)
        return 0;
    return launched(b,
                    K(b)->layernorm(out, x, w->data, w->dtype, bias ? bias->data : NULL,
                                    bias ? bias->dtype : 0, T, D, eps, K(b)->stream),
                    "layernorm", err);
}

static int gpu_rope(vrt_backend *b, float *x, const int32_t *pos, int T, int n_heads, int head_dim,
                    int rot_dim, int interleaved, const float *inv_freq, vrt_err *err)
{
    if (T == 0 || rot_dim == 0)
        return 0;
    return launched(
        b, K(b)->rope(x, pos, T, n_heads, head_dim, rot_dim, interleaved, inv_freq, K(b)->stream),
        "rope", err);
}

/* Launch limits (grid dimensions, 128-bit loads), checked here because the
 * kernels would otherwise be launched with an invalid configuration or
 * misaligned loads; everything else was checked by the caller. */
static int gpu_matmul(vrt_backend *b, float *y, const float *x, const vrt_weight *W,
                      const float *bias, int T, vrt_err *err)
{
    const int q4 = W->dtype == VRT_DT_Q4;
    if (q4) {
        if (W->rows > 65535LL * 16 || T > 65535 * 64)
            return vrt_err_set(err, VRT_EINVAL,
                               "matmul: q4 W of %lld rows with T = %d is too large",
                               (long long)W->rows, T);
        if ((uintptr_t)W->q4->qweight % 16 != 0)
            return vrt_err_set(err, VRT_EINVAL,
                               "matmul: q4 qweight at %p is not 16-byte aligned (128-bit loads)",
                               (const void *)W->q4->qweight);
        if (T == 0)
            return 0;
        if (T > VRT_CUDA_GEMV_MAX_T && K(b)->matmul_q4_large)
            return K(b)->matmul_q4_large(K(b)->owner, y, x, W, bias, T, err);
        return launched(
            b, K(b)->matmul_q4(y, x, *W->q4, (int)W->rows, (int)W->cols, bias, T, K(b)->stream),
            "matmul", err);
    }
    if (W->rows > INT32_MAX || W->cols > INT32_MAX || W->rows > 65535LL * 16)
        return vrt_err_set(err, VRT_EINVAL, "matmul: W of [%lld][%lld] is too large",
                           (long long)W->rows, (long long)W->cols);
    if (T == 0)
        return 0;
    if (K(b)->gemv && T <= VRT_CUDA_GEMV_MAX_T && !(K(b)->no_custom && K(b)->matmul_lib))
        return launched(
            b,
            K(b)->gemv(y, x, W->data, W->dtype, (int)W->rows, (int)W->cols, bias, T, K(b)->stream),
            "matmul", err);
    if (K(b)->matmul_lib)
        return K(b)->matmul_lib(K(b)->owner, y, x, W, bias, T, err);
    return launched(
        b, K(b)->matmul(y, x, W->data, W->dtype, (int)W->rows, (int)W->cols, bias, T, K(b)->stream),
        "matmul", err);
}

static int gpu_matmul_group(vrt_backend *b, int n, float *const *y, const float *x,
                            const vrt_weight *const *W, const float *const *bias, int T,
                            vrt_err *err)
{
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
    if (n == 0)
        return 0;
    return launched(b, K(b)->silu_mul(out, gate, up, n, K(b)->stream), "silu_mul", err);
}

static int gpu_gelu_mul(vrt_backend *b, float *out, const float *gate, const float *up, int64_t n,
                        int tanh_approx, vrt_err *err)
{
    if (n == 0)
        return 0;
    return launched(b, K(b)->gelu_mul(out, gate, up, n, tanh_approx, K(b)->stream), "gelu_mul",
                    err);
}

static int gpu_gelu(vrt_backend *b, float *out, const float *x, int64_t n, int tanh_approx,
                    vrt_err *err)
{
    if (n == 0)
        return 0;
    return launched(b, K(b)->gelu(out, x, n, tanh_approx, K(b)->stream), "gelu", err);
}

static int gpu_add(vrt_backend *b, float *out, const float *a, const float *c, int64_t n,
                   vrt_err *err)
{
    if (n == 0)
        return 0;
    return launched(b, K(b)->add(out, a, c, n, K(b)->stream), "add", err);
}

static int gpu_kv_store(vrt_backend *b, uint16_t *k_cache, uint16_t *v_cache, const float *k,
                        const float *v, const int32_t *slots, int T, int n_kv_heads, int head_dim,
                        int64_t num_slots, vrt_err *err)
{
    if (T == 0)
        return 0;
    return launched(
        b, K(b)->kv_store(k_cache, v_cache, k, v, slots, T, n_kv_heads, head_dim, K(b)->stream),
        "kv_store", err);
}

static int attention(vrt_backend *b, const char *op, float *out, const float *q,
                     const uint16_t *k_cache, const uint16_t *v_cache, const vrt_attn_batch *a,
                     int decode, vrt_err *err)
{
    /* T comes from the caller (the front fills it in, the forward pass
     * sets it): reading q_start back would wait for the device. */
    const int T = a->n_tokens;
    if (a->n_seqs == 0 || T == 0)
        return 0;
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
        return launched(
            b, K(b)->attn_decode(out, q, k_cache, v_cache, *a, K(b)->scratch, K(b)->stream), op,
            err);
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
    /* Launch limits: the kernel keeps a token's E logits in shared memory
     * and its k best in registers. */
    if (E > 48 * 1024 || k > GPU_MOE_MAX_K)
        return vrt_err_set(err, VRT_EINVAL, "moe_topk: E = %d experts, k = %d too large", E, k);
    if (T == 0)
        return 0;
    return launched(b,
                    K(b)->moe_topk(router_logits, T, E, k, renormalize, idx, weights, K(b)->stream),
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
    b->supports_op = vrt_op_weights;
#define VRT_OP(name, ENUM, weights, front, params, args) b->name = gpu_##name;
#include "backend/ops.def"
#undef VRT_OP
    b->add_rmsnorm = K(b)->no_custom || !fuse ? NULL : gpu_add_rmsnorm;
    b->matmul_group = fuse_group ? gpu_matmul_group : NULL;
}
