/* forward.c — the transformer forward pass, written once against the
 * backend contract (backend.h) and driven by the architecture descriptor
 * (vrt_arch_desc, arch.h) for every architecture of the table.
 *
 * One call runs a flattened batch: T tokens of several sequences, each at
 * its own position:
 *
 *   x = embed(tokens)                    # embed_tokens
 *   for each layer:
 *     h = norm(x)                        # input_layernorm
 *     q, k, v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ      # q_proj / k_proj / v_proj (+ bias)
 *     q, k = rope(q, pos), rope(k, pos)  # apply_rotary_pos_emb
 *     cache[slots] = k, v                # paged KV cache, fp16
 *     a = softmax(q·Kᵀ/√hd + mask)·V     # causal, GQA, sliding window
 *     x = x + a·Woᵀ                      # o_proj + residual
 *     h = norm(x)                        # post_attention_layernorm
 *     x = x + (act(h·Wgᵀ) * h·Wuᵀ)·Wdᵀ   # gated MLP + residual
 *   logits = norm(x[rows])·Wlmᵀ          # final norm, lm_head
 *
 * with logits for the rows asked for only (usually the last token of each
 * sequence), so a long prefill does not pay for V logits per token. Where
 * the backend fuses a residual add into the norm after it (add_rmsnorm),
 * each layer's MLP output is added by the next layer's first norm.
 *
 * Decode steps padded to graph buckets and replayed as CUDA graphs are in
 * forward_graph.c.
 */
#include "model/model.h"

#include "core/err.h"
#include "model/capture.h"
#include "model/forward_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The calibration hook of capture.h: per thread, for one model. */
static _Thread_local struct {
    const vrt_model *m;
    vrt_capture_fn fn;
    void *ud;
    int stopped; /* the hook ended the current pass */
} capture;

int vrt__model_set_capture(vrt_model *m, vrt_capture_fn fn, void *ud, vrt_err *err)
{
    if (fn && (!m || !m->be->host_memory))
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "activation capture needs a backend with host memory (cpu), not %s",
                           m ? m->be->name : "(no model)");
    capture.m = fn ? m : NULL;
    capture.fn = fn;
    capture.ud = fn ? ud : NULL;
    return 0;
}

/* ---- the math ----------------------------------------------------------- */

/* out = norm(x) (RMSNorm with the architecture's weight offset). */
static int norm(vrt_model *m, float *out, const float *x, const vrt_weight *w, int T, vrt_err *err)
{
    return m->be->rmsnorm(m->be, out, x, w, T, m->cfg.hidden_size, (float)m->cfg.rms_norm_eps,
                          m->arch.norm_w_offset, err);
}

/* x = x + a, then out = norm(x): one fused op where the backend has it,
 * else add then norm. */
static int add_norm(vrt_model *m, float *x, const float *a, float *out, const vrt_weight *w, int T,
                    vrt_err *err)
{
    vrt_backend *be = m->be;
    const int D = m->cfg.hidden_size;
    if (be->add_rmsnorm)
        return be->add_rmsnorm(be, x, a, out, w, T, D, (float)m->cfg.rms_norm_eps,
                               m->arch.norm_w_offset, err);
    int rc = be->add(be, x, x, a, (int64_t)T * D, err);
    return rc ? rc : norm(m, out, x, w, T, err);
}

/* y[i] = x·W[i]ᵀ + bias[i]: one matmul_group call where the backend has
 * it, else one matmul each. */
static int matmul_n(vrt_backend *be, int n, float *const *y, const float *x,
                    const vrt_weight *const *W, const float *const *bias, int T, vrt_err *err)
{
    if (be->matmul_group)
        return be->matmul_group(be, n, y, x, W, bias, T, err);
    for (int i = 0; i < n; i++) {
        int rc = be->matmul(be, y[i], x, W[i], bias[i], T, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* The calibration hook (capture.h) of layer l, when one is set for m. */
static int capture_input(const vrt_model *m, int l, int which, const float *x, int T, int K,
                         vrt_err *err)
{
    if (!capture.fn || capture.m != m)
        return 0;
    int rc = capture.fn(capture.ud, l, which, x, T, K, err);
    capture.stopped = rc != 0;
    return rc;
}

/* w->xn = a·Woᵀ with a = attention(rope(h·Wqᵀ), rope(h·Wkᵀ), h·Wvᵀ) over
 * the cache, h = w->xn. */
static int attention(vrt_model *m, vrt_kv_cache *kv, int l, int T, const vrt_attn_batch *ab,
                     int all_decode, vrt_err *err)
{
    vrt_backend *be = m->be;
    vrt_workspace *w = &m->ws;
    const vrt_layer_weights *lw = &m->layers[l];
    const vrt_arch_desc *a = &m->arch;
    const int H = m->cfg.num_attention_heads, Hkv = m->cfg.num_key_value_heads;
    const int hd = m->cfg.head_dim, rd = a->rot_dim, il = a->rope_interleaved;
    /* q, k, v projections (one launch where the backend can) */
    float *const ys[3] = {w->q, w->k, w->v};
    const vrt_weight *const ws[3] = {&lw->wq, &lw->wk, &lw->wv};
    const float *const bs[3] = {lw->bq, lw->bk, lw->bv};
    int rc = matmul_n(be, 3, ys, w->xn, ws, bs, T, err);
    /* rotary embedding on q and k */
    if (!rc)
        rc = be->rope(be, w->q, w->pos, T, H, hd, rd, il, w->inv_freq, err);
    if (!rc)
        rc = be->rope(be, w->k, w->pos, T, Hkv, hd, rd, il, w->inv_freq, err);
    /* K/V of the new tokens into the paged cache, then attention over it */
    if (!rc)
        rc = be->kv_store(be, kv->k[l], kv->v[l], w->k, w->v, w->slots, T, Hkv, hd,
                          (int64_t)kv->num_blocks * kv->block_size, err);
    if (!rc)
        rc = all_decode ? be->attention_decode(be, w->attn, w->q, kv->k[l], kv->v[l], ab, err)
                        : be->attention_prefill(be, w->attn, w->q, kv->k[l], kv->v[l], ab, err);
    /* o_proj */
    if (!rc)
        rc = capture_input(m, l, VRT_CAP_O_IN, w->attn, T, H * hd, err);
    if (!rc)
        rc = be->matmul(be, w->xn, w->attn, &lw->wo, lw->bo, T, err);
    return rc;
}

/* w->xn = down(act(gate(h)) * up(h)), h = w->xn. */
static int mlp(vrt_model *m, int l, int T, vrt_err *err)
{
    vrt_backend *be = m->be;
    vrt_workspace *w = &m->ws;
    const vrt_layer_weights *lw = &m->layers[l];
    const int F = m->cfg.intermediate_size;
    const int64_t n = (int64_t)T * F;
    float *const ys[2] = {w->gate, w->up};
    const vrt_weight *const ws[2] = {&lw->w_gate, &lw->w_up};
    const float *const bs[2] = {lw->b_gate, lw->b_up};
    int rc = matmul_n(be, 2, ys, w->xn, ws, bs, T, err);
    if (!rc)
        rc = m->arch.mlp_kind == VRT_MLP_GELU_GATED
                 ? be->gelu_mul(be, w->gate, w->gate, w->up, n, m->arch.gelu_tanh, err)
                 : be->silu_mul(be, w->gate, w->gate, w->up, n, err);
    if (!rc)
        rc = capture_input(m, l, VRT_CAP_DOWN_IN, w->gate, T, F, err);
    if (!rc)
        rc = be->matmul(be, w->xn, w->gate, &lw->w_down, lw->b_down, T, err);
    return rc;
}

/* One decoder layer on the residual stream w->x. fused: the backend fuses
 * residual adds into norms: this layer starts by adding the previous
 * layer's MLP output (left in xn, pending unless l == 0) and leaves its
 * own in xn for the next one (run_ops adds the last). */
static int layer(vrt_model *m, vrt_kv_cache *kv, int l, int T, const vrt_attn_batch *ab,
                 int all_decode, int fused, vrt_err *err)
{
    vrt_backend *be = m->be;
    vrt_workspace *w = &m->ws;
    const vrt_layer_weights *lw = &m->layers[l];
    const int D = m->cfg.hidden_size;
    int rc;
    /* h = input_layernorm(x) (after x += the previous MLP's output) */
    if (fused && l > 0)
        rc = add_norm(m, w->x, w->xn, w->xn, &lw->attn_norm, T, err);
    else
        rc = norm(m, w->xn, w->x, &lw->attn_norm, T, err);
    if (!rc)
        rc = capture_input(m, l, VRT_CAP_ATTN_IN, w->xn, T, D, err);
    /* x = x + attention(h); h = post_attention_layernorm(x) */
    if (!rc)
        rc = attention(m, kv, l, T, ab, all_decode, err);
    if (!rc)
        rc = add_norm(m, w->x, w->xn, w->xn, &lw->ffn_norm, T, err);
    if (!rc)
        rc = capture_input(m, l, VRT_CAP_MLP_IN, w->xn, T, D, err);
    /* x = x + mlp(h) (fused: added by the next norm) */
    if (!rc)
        rc = mlp(m, l, T, err);
    if (!rc && !fused)
        rc = be->add(be, w->x, w->x, w->xn, (int64_t)T * D, err);
    return rc;
}

/* Embedding, the layers and the logits rows: every op of one step, on the
 * inputs already in the workspace (what a graph records). */
int vrt__model_run_ops(vrt_model *m, vrt_kv_cache *kv, int T, int n_out, const vrt_attn_batch *ab,
                       int all_decode, vrt_err *err)
{
    vrt_backend *be = m->be;
    vrt_workspace *w = &m->ws;
    const int D = m->cfg.hidden_size;
    /* x = embed_tokens(tokens) */
    int rc = be->embed(be, w->x, &m->embed, w->tokens, T, err);
    const int fused = be->add_rmsnorm != NULL;
    capture.stopped = 0;
    for (int l = 0; l < m->cfg.num_hidden_layers && !rc; l++) {
        rc = layer(m, kv, l, T, ab, all_decode, fused, err);
        /* An op's failure names the layer; a capture hook's code (its
         * VRT_ECANCELED stops early) ends the pass as the hook set it. */
        if (rc && !capture.stopped)
            vrt_err_prefix(err, "layer %d: ", l);
    }
    if (!rc && fused) /* the last layer's MLP output */
        rc = be->add(be, w->x, w->x, w->xn, (int64_t)T * D, err);
    if (rc)
        return rc;
    /* logits = lm_head(norm(x[rows])): gather the rows with the embed op
     * over the residual stream seen as a [T][D] f32 table. */
    vrt_weight xs = {.data = w->x, .dtype = VRT_DT_F32, .rows = T, .cols = D};
    rc = be->embed(be, w->out_h, &xs, w->rows, n_out, err);
    if (!rc)
        rc = norm(m, w->out_h, w->out_h, &m->final_norm, n_out, err);
    if (!rc)
        rc = be->matmul(be, w->logits, w->out_h, &m->lm_head, NULL, n_out, err);
    return rc;
}

/* ---- one step: checks, inputs, run -------------------------------------- */

/* Checks the batch against the model and the cache; fills pos, slots and
 * rows (host arrays of T, T and n_out entries). */
static int check_batch(const vrt_model *m, const vrt_kv_cache *kv, const vrt_batch *b, int T,
                       int n_out, int32_t *pos, int32_t *slots, int32_t *rows, int *all_decode,
                       int *max_ctx, vrt_err *err)
{
    const int V = m->cfg.vocab_size, bs = kv->block_size;
    *all_decode = 1;
    *max_ctx = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        int32_t q0 = b->q_start[s], q1 = b->q_start[s + 1], ctx = b->ctx_len[s];
        int q_len = q1 - q0;
        if (q_len < 1)
            return vrt_err_set(err, VRT_EINVAL, "batch: sequence %d has %d new tokens", s, q_len);
        if (ctx < q_len)
            return vrt_err_set(err, VRT_EINVAL,
                               "batch: sequence %d has ctx_len %d < its %d new tokens", s, ctx,
                               q_len);
        if ((int64_t)ctx > (int64_t)b->max_blocks_per_seq * bs)
            return vrt_err_set(err, VRT_ERANGE,
                               "batch: sequence %d has %d tokens but its block table holds %d "
                               "blocks of %d",
                               s, ctx, b->max_blocks_per_seq, bs);
        int n_blk = (ctx + bs - 1) / bs;
        for (int i = 0; i < n_blk; i++) {
            int32_t blk = b->block_table[(int64_t)s * b->max_blocks_per_seq + i];
            if (blk < 0 || blk >= kv->num_blocks)
                return vrt_err_set(err, VRT_ERANGE,
                                   "batch: sequence %d block %d is %d, outside the cache's %d "
                                   "blocks",
                                   s, i, blk, kv->num_blocks);
        }
        if (ctx > *max_ctx)
            *max_ctx = ctx;
        if (q_len != 1)
            *all_decode = 0;
        for (int j = 0; j < q_len; j++) {
            int t = q0 + j, p = ctx - q_len + j;
            int32_t id = b->tokens[t];
            if (id < 0 || id >= V)
                return vrt_err_set(err, VRT_ERANGE,
                                   "token id %d at batch position %d is outside the vocabulary "
                                   "(0..%d)",
                                   id, t, V - 1);
            pos[t] = p;
            slots[t] = b->block_table[(int64_t)s * b->max_blocks_per_seq + p / bs] * bs + p % bs;
        }
    }
    if (b->out_rows) {
        for (int i = 0; i < n_out; i++) {
            if (b->out_rows[i] < 0 || b->out_rows[i] >= T)
                return vrt_err_set(err, VRT_ERANGE, "batch: logits row %d is %d, outside 0..%d", i,
                                   b->out_rows[i], T - 1);
            rows[i] = b->out_rows[i];
        }
    } else {
        for (int s = 0; s < b->n_seqs; s++)
            rows[s] = b->q_start[s + 1] - 1;
    }
    return 0;
}

/* The rotary table: recomputed only when it depends on the length. */
static int update_inv_freq(vrt_model *m, int max_ctx, vrt_err *err)
{
    int dynamic = m->cfg.rope_scaling.type == VRT_ROPE_DYNAMIC;
    if (m->inv_freq_len >= 0 && !dynamic)
        return 0;
    if (dynamic && m->inv_freq_len == max_ctx)
        return 0;
    float scaling;
    int rc = vrt_rope_inv_freq(&m->cfg, max_ctx, m->inv_freq_host, &scaling, err);
    if (rc)
        return rc;
    rc = m->be->copy_to_device(m->be, m->ws.inv_freq, m->inv_freq_host,
                               (size_t)(m->arch.rot_dim / 2) * sizeof(float), err);
    if (!rc)
        m->inv_freq_len = max_ctx;
    return rc;
}

/* Copies the step's host inputs into the workspace. */
static int upload(vrt_model *m, const vrt_step_host *h, int max_blocks, vrt_err *err)
{
    vrt_backend *be = m->be;
    vrt_workspace *w = &m->ws;
    const struct {
        void *dst;
        const int32_t *src;
        size_t n;
    } in[] = {
        {w->tokens, h->tokens, (size_t)h->T},
        {w->pos, h->pos, (size_t)h->T},
        {w->slots, h->slots, (size_t)h->T},
        {w->rows, h->rows, (size_t)h->n_out},
        {w->q_start, h->q_start, (size_t)h->n_seqs + 1},
        {w->ctx_len, h->ctx_len, (size_t)h->n_seqs},
        {w->block_table, h->block_table, (size_t)h->n_seqs * max_blocks},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof in / sizeof in[0] && !rc; i++)
        rc = be->copy_to_device(be, in[i].dst, in[i].src, in[i].n * sizeof(int32_t), err);
    return rc;
}

int vrt_model_forward(vrt_model *m, vrt_kv_cache *kv, const vrt_batch *b, float *logits,
                      vrt_err *err)
{
    if (!m || !kv || !b || !logits)
        return vrt_err_set(err, VRT_EINVAL, "vrt_model_forward: NULL argument");
    if (b->n_seqs < 1 || !b->tokens || !b->q_start || !b->ctx_len || !b->block_table ||
        b->max_blocks_per_seq < 1)
        return vrt_err_set(err, VRT_EINVAL, "batch: %d sequences, or a NULL array", b->n_seqs);
    if (kv->n_layers != m->cfg.num_hidden_layers || kv->n_kv_heads != m->cfg.num_key_value_heads ||
        kv->head_dim != m->cfg.head_dim)
        return vrt_err_set(err, VRT_EINVAL, "KV cache was made for another model");
    if (b->q_start[0] != 0)
        return vrt_err_set(err, VRT_EINVAL, "batch: q_start[0] is %d, must be 0", b->q_start[0]);
    for (int s = 0; s < b->n_seqs; s++)
        if (b->q_start[s + 1] <= b->q_start[s])
            return vrt_err_set(err, VRT_EINVAL, "batch: q_start is not increasing at %d", s);
    const int T = b->q_start[b->n_seqs];
    const int n_out = b->out_rows ? b->n_out : b->n_seqs;
    if (n_out < 1)
        return vrt_err_set(err, VRT_EINVAL, "batch: no logits rows asked for");
    const int V = m->cfg.vocab_size, mb = b->max_blocks_per_seq;

    /* A decode step may run padded to a graph bucket (forward_graph.c). */
    const int bucket = vrt__graph_bucket(m, b, T, n_out);
    vrt_step_host h;
    int all_decode, max_ctx;
    int rc = vrt__step_host_alloc(&h, b, T, n_out, bucket, err);
    if (rc)
        return rc;
    rc = check_batch(m, kv, b, T, n_out, h.pos, h.slots, h.rows, &all_decode, &max_ctx, err);
    if (!rc && bucket)
        vrt__graph_pad(&h, b, T);
    if (!rc)
        rc = vrt__model_workspace(m, h.T, h.n_out, h.n_seqs, mb, err);
    if (!rc)
        rc = upload(m, &h, mb, err);
    vrt__step_host_free(&h);
    if (!rc)
        rc = update_inv_freq(m, max_ctx, err);
    if (rc)
        return rc;

    vrt_backend *be = m->be;
    vrt_workspace *w = &m->ws;
    vrt_attn_batch ab = {
        .n_seqs = bucket ? bucket : b->n_seqs,
        .q_start = w->q_start,
        .ctx_len = w->ctx_len,
        .block_table = w->block_table,
        .max_blocks_per_seq = mb,
        .block_size = kv->block_size,
        .sliding_window = m->arch.sliding_window,
        .scale = 1.0f / sqrtf((float)m->cfg.head_dim),
        .n_heads = m->cfg.num_attention_heads,
        .n_kv_heads = m->cfg.num_key_value_heads,
        .head_dim = m->cfg.head_dim,
        .num_blocks = kv->num_blocks,
        .n_tokens = bucket ? bucket : T,
    };
    /* Token ids, slots, rows and the attention batch were checked above
     * (check_batch): the ops of the backend's table run without checks. */
    if (bucket)
        rc = vrt__model_run_graphed(m, kv, bucket, mb, &ab, err);
    else
        rc = vrt__model_run_ops(m, kv, T, n_out, &ab, all_decode, err);
    if (!rc)
        rc = be->copy_to_host(be, logits, w->logits, (size_t)n_out * V * sizeof(float), err);
    return rc;
}
