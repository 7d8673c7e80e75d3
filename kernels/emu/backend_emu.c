/* backend_emu.c — the cuda-emu backend: kernels/cuda run on the CPU through the emulator.
 *
 * The vtable of a CUDA backend whose "device" is the CPU: memory is host
 * memory (64-byte aligned malloc, memcpy copies) but host_memory is false,
 * so the model copies its weights as it will for a GPU; the ops check their
 * arguments here (host-readable, like the CPU backend's checks, whose
 * helpers it shares) and then call the extern "C" launchers of
 * kernels/cuda (kernels/cuda/kernels.h), compiled with g++ and
 * kernels/emu/cuda_emu.h. A failed launch (a deadlock, a bad
 * configuration) is a VRT_EDEVICE error carrying the emulator's message.
 */
#include "emu/backend_emu.h"

#include "core/err.h"
#include "cpu/cpu.h"
#include "cuda/kernels.h"
#include "emu/emu.h"

#include <stdlib.h>
#include <string.h>

#define EMU_MOE_MAX_K 64 /* as the cpu backend */

/* The same ops as the cpu backend; memory is host memory (cpu/cpu.h), so
 * sync has nothing to wait for: launches run to completion. */

static void emu_destroy(vrt_backend *b)
{
    free(b);
}

/* A launcher's status as a vrt error. */
static int launched(int rc, const char *op, vrt_err *err)
{
    if (rc == 0)
        return 0;
    return vrt_err_set(err, VRT_EDEVICE, "cuda-emu: %s: %s", op, vrt_emu_last_error());
}

/* ---- ops ---- */

static int emu_embed(vrt_backend *b, float *out, const vrt_weight *table, const int32_t *ids, int T,
                     vrt_err *err)
{
    int rc = vrt__cpu_check_embed(out, table, ids, T, err);
    if (rc)
        return rc;
    if (table->cols > INT32_MAX)
        return vrt_err_set(err, VRT_EINVAL, "embed: row of %lld elements is too long",
                           (long long)table->cols);
    return launched(vrt_cuda_embed(out, table->data, table->dtype, (int)table->cols, ids, T, NULL),
                    "embed", err);
}

static int check_rows(const char *op, const float *out, const float *x, int T, int D, float eps,
                      vrt_err *err)
{
    if (T < 0 || D <= 0)
        return vrt_err_set(err, VRT_EINVAL, "%s: bad shape T = %d, D = %d", op, T, D);
    if (T > 0 && (!out || !x))
        return vrt_err_set(err, VRT_EINVAL, "%s: NULL input or output", op);
    if (!(eps >= 0))
        return vrt_err_set(err, VRT_ERANGE, "%s: eps = %g must be >= 0", op, (double)eps);
    return 0;
}

static int emu_rmsnorm(vrt_backend *b, float *out, const float *x, const vrt_weight *w, int T,
                       int D, float eps, float w_offset, vrt_err *err)
{
    int rc = check_rows("rmsnorm", out, x, T, D, eps, err);
    if (!rc)
        rc = vrt__cpu_check_weight(w, D, "rmsnorm", "w", err);
    if (rc)
        return rc;
    return launched(vrt_cuda_rmsnorm(out, x, w->data, w->dtype, T, D, eps, w_offset, NULL),
                    "rmsnorm", err);
}

static int emu_layernorm(vrt_backend *b, float *out, const float *x, const vrt_weight *w,
                         const vrt_weight *bias, int T, int D, float eps, vrt_err *err)
{
    int rc = check_rows("layernorm", out, x, T, D, eps, err);
    if (!rc)
        rc = vrt__cpu_check_weight(w, D, "layernorm", "w", err);
    if (!rc && bias)
        rc = vrt__cpu_check_weight(bias, D, "layernorm", "bias", err);
    if (rc)
        return rc;
    return launched(vrt_cuda_layernorm(out, x, w->data, w->dtype, bias ? bias->data : NULL,
                                       bias ? bias->dtype : 0, T, D, eps, NULL),
                    "layernorm", err);
}

static int emu_rope(vrt_backend *b, float *x, const int32_t *pos, int T, int n_heads, int head_dim,
                    int rot_dim, int interleaved, const float *inv_freq, vrt_err *err)
{
    int rc = vrt__cpu_check_rope(x, pos, T, n_heads, head_dim, rot_dim, inv_freq,
                                 VRT_CUDA_MAX_HEAD_DIM, err);
    if (rc)
        return rc < 0 ? rc : 0;
    return launched(
        vrt_cuda_rope(x, pos, T, n_heads, head_dim, rot_dim, interleaved, inv_freq, NULL), "rope",
        err);
}

static int emu_matmul(vrt_backend *b, float *y, const float *x, const vrt_weight *W,
                      const float *bias, int T, vrt_err *err)
{
    int q4 = W && W->data && W->dtype == VRT_DT_Q4;
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
        return launched(
            vrt_cuda_matmul_q4(y, x, *W->q4, (int)W->rows, (int)W->cols, bias, T, NULL), "matmul",
            err);
    }
    if (W->rows > INT32_MAX || W->cols > INT32_MAX || W->rows > 65535LL * 16)
        return vrt_err_set(err, VRT_EINVAL, "matmul: W of [%lld][%lld] is too large",
                           (long long)W->rows, (long long)W->cols);
    return launched(
        vrt_cuda_matmul(y, x, W->data, W->dtype, (int)W->rows, (int)W->cols, bias, T, NULL),
        "matmul", err);
}

static int check_elem(const char *op, const float *out, const float *a, const float *c, int64_t n,
                      vrt_err *err)
{
    if (n < 0)
        return vrt_err_set(err, VRT_EINVAL, "%s: n = %lld", op, (long long)n);
    if (n > 0 && (!out || !a || !c))
        return vrt_err_set(err, VRT_EINVAL, "%s: NULL input or output", op);
    return 0;
}

static int emu_silu_mul(vrt_backend *b, float *out, const float *gate, const float *up, int64_t n,
                        vrt_err *err)
{
    int rc = check_elem("silu_mul", out, gate, up, n, err);
    return rc ? rc : launched(vrt_cuda_silu_mul(out, gate, up, n, NULL), "silu_mul", err);
}

static int emu_gelu_mul(vrt_backend *b, float *out, const float *gate, const float *up, int64_t n,
                        int tanh_approx, vrt_err *err)
{
    int rc = check_elem("gelu_mul", out, gate, up, n, err);
    return rc ? rc
              : launched(vrt_cuda_gelu_mul(out, gate, up, n, tanh_approx, NULL), "gelu_mul", err);
}

static int emu_gelu(vrt_backend *b, float *out, const float *x, int64_t n, int tanh_approx,
                    vrt_err *err)
{
    int rc = check_elem("gelu", out, x, x, n, err);
    return rc ? rc : launched(vrt_cuda_gelu(out, x, n, tanh_approx, NULL), "gelu", err);
}

static int emu_add(vrt_backend *b, float *out, const float *a, const float *c, int64_t n,
                   vrt_err *err)
{
    int rc = check_elem("add", out, a, c, n, err);
    return rc ? rc : launched(vrt_cuda_add(out, a, c, n, NULL), "add", err);
}

static int emu_kv_store(vrt_backend *b, uint16_t *k_cache, uint16_t *v_cache, const float *k,
                        const float *v, const int32_t *slots, int T, int n_kv_heads, int head_dim,
                        int64_t num_slots, vrt_err *err)
{
    int rc = vrt__cpu_check_kv_store(k_cache, v_cache, k, v, slots, T, n_kv_heads, head_dim,
                                     num_slots, err);
    if (rc)
        return rc < 0 ? rc : 0;
    return launched(vrt_cuda_kv_store(k_cache, v_cache, k, v, slots, T, n_kv_heads, head_dim, NULL),
                    "kv_store", err);
}

static int attention(const char *op, float *out, const float *q, const uint16_t *k_cache,
                     const uint16_t *v_cache, const vrt_attn_batch *a, int decode, vrt_err *err)
{
    int rc = vrt__cpu_check_attn_batch(op, out, q, k_cache, v_cache, a, err);
    if (rc || a->n_seqs == 0)
        return rc;
    if (a->head_dim > VRT_CUDA_MAX_HEAD_DIM || a->n_heads > 65535)
        return vrt_err_set(err, VRT_EINVAL, "%s: head_dim = %d, n_heads = %d too large", op,
                           a->head_dim, a->n_heads);
    if (decode && (rc = vrt__cpu_check_decode(a, err)) != 0)
        return rc;
    int T = a->q_start[a->n_seqs];
    if (T > 65535)
        return vrt_err_set(err, VRT_EINVAL, "%s: %d query tokens in one call (at most 65535)", op,
                           T);
    return launched(vrt_cuda_attention(out, q, k_cache, v_cache, *a, T, NULL), op, err);
}

static int emu_attention_prefill(vrt_backend *b, float *out, const float *q,
                                 const uint16_t *k_cache, const uint16_t *v_cache,
                                 const vrt_attn_batch *batch, vrt_err *err)
{
    return attention("attention_prefill", out, q, k_cache, v_cache, batch, 0, err);
}

static int emu_attention_decode(vrt_backend *b, float *out, const float *q, const uint16_t *k_cache,
                                const uint16_t *v_cache, const vrt_attn_batch *batch, vrt_err *err)
{
    return attention("attention_decode", out, q, k_cache, v_cache, batch, 1, err);
}

static int emu_moe_topk(vrt_backend *b, const float *router_logits, int T, int E, int k,
                        int renormalize, int32_t *idx, float *weights, vrt_err *err)
{
    if (T < 0 || E <= 0 || E > 48 * 1024)
        return vrt_err_set(err, VRT_EINVAL, "moe_topk: bad shape T = %d, E = %d experts", T, E);
    if (k < 1 || k > E || k > EMU_MOE_MAX_K)
        return vrt_err_set(err, VRT_ERANGE,
                           "moe_topk: k = %d experts per token must be between 1 and the number "
                           "of experts (%d, at most %d)",
                           k, E, EMU_MOE_MAX_K);
    if (T == 0)
        return 0;
    if (!router_logits || !idx || !weights)
        return vrt_err_set(err, VRT_EINVAL, "moe_topk: NULL logits, idx or weights");
    return launched(vrt_cuda_moe_topk(router_logits, T, E, k, renormalize, idx, weights, NULL),
                    "moe_topk", err);
}

int vrt__cuda_emu_backend_create(vrt_backend **out, int threads, vrt_err *err)
{
    vrt_backend *b = calloc(1, sizeof *b);
    if (!b)
        return vrt_err_set(err, VRT_ENOMEM, "cuda-emu backend: out of memory");
    /* The blocks of a launch run one after another on the calling thread:
     * the ops are small (tests, CI), where an OpenMP team per launch costs
     * more in spinning than it gains, and the run stays deterministic for
     * a seed. `threads` (device.threads) is accepted and not used. */
    vrt_emu_set_threads(1);
    b->name = "cuda-emu";
    b->ctx = NULL;
    b->host_memory = false;
    b->supports_op = vrt__cpu_supports_op;
    b->alloc = vrt__host_alloc;
    b->free = vrt__host_free;
    b->copy_to_device = vrt__host_copy;
    b->copy_to_host = vrt__host_copy;
    b->memset = vrt__host_memset;
    b->sync = vrt__host_sync;
    b->destroy = emu_destroy;
    b->embed = emu_embed;
    b->rmsnorm = emu_rmsnorm;
    b->layernorm = emu_layernorm;
    b->rope = emu_rope;
    b->matmul = emu_matmul;
    b->silu_mul = emu_silu_mul;
    b->gelu_mul = emu_gelu_mul;
    b->gelu = emu_gelu;
    b->add = emu_add;
    b->kv_store = emu_kv_store;
    b->attention_prefill = emu_attention_prefill;
    b->attention_decode = emu_attention_decode;
    b->moe_topk = emu_moe_topk;
    *out = b;
    return 0;
}
