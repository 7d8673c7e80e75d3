/* forward.c — the transformer forward pass, written once against the
 * backend contract (backend.h) for every architecture vrt_arch_desc can
 * describe.
 *
 * One call runs a flattened batch: T tokens of several sequences, each at
 * its own position. Each layer is (PyTorch equivalents of HF Llama):
 *
 *   h = norm(x)                          # input_layernorm
 *   q, k, v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ        # q_proj / k_proj / v_proj
 *   q, k = rope(q, pos), rope(k, pos)    # apply_rotary_pos_emb
 *   cache[slots] = k, v                  # paged KV cache, fp16
 *   a = softmax(q·Kᵀ/√hd + mask)·V       # causal, GQA, sliding window
 *   x = x + a·Woᵀ                        # o_proj + residual
 *   h = norm(x)                          # post_attention_layernorm
 *   x = x + (act(h·Wgᵀ) * h·Wuᵀ)·Wdᵀ     # gated MLP + residual
 *
 * then logits = norm(x[rows])·Wlmᵀ for the rows asked for only (usually the
 * last token of each sequence), so a long prefill does not pay for V logits
 * per token.
 */
#include "model/model.h"

#include "core/err.h"
#include "core/log.h"
#include "model/capture.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int vrt__model_workspace(vrt_model *m, int T, int n_out, int n_seqs, int max_blocks, vrt_err *err);

/* The calibration hook of capture.h: per thread, for one model. */
static _Thread_local struct {
    const vrt_model *m;
    vrt_capture_fn fn;
    void *ud;
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

static int norm(vrt_model *m, float *out, const float *x, const vrt_weight *w, int T, vrt_err *err)
{
    vrt_backend *be = m->be;
    int D = m->cfg.hidden_size;
    float eps = (float)m->cfg.rms_norm_eps;
    if (m->arch.norm_kind == VRT_NORM_LAYER)
        return be->layernorm(be, out, x, w, NULL, T, D, eps, err);
    return be->rmsnorm(be, out, x, w, T, D, eps, m->arch.norm_w_offset, err);
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

/* x = x + a, then out = norm(x): one fused op where the backend has it
 * (RMSNorm), else add then norm. */
static int add_norm(vrt_model *m, float *x, const float *a, float *out, const vrt_weight *w, int T,
                    vrt_err *err)
{
    vrt_backend *be = m->be;
    const int D = m->cfg.hidden_size;
    if (be->add_rmsnorm && m->arch.norm_kind != VRT_NORM_LAYER)
        return be->add_rmsnorm(be, x, a, out, w, T, D, (float)m->cfg.rms_norm_eps,
                               m->arch.norm_w_offset, err);
    int rc = be->add(be, x, x, a, (int64_t)T * D, err);
    return rc ? rc : norm(m, out, x, w, T, err);
}

/* One decoder layer. fused: the backend fuses residual adds into norms:
 * this layer starts by adding the previous layer's MLP output (left in
 * xn, pending unless l == 0) and leaves its own in xn for the next one
 * (run_ops adds the last). */
static int layer(vrt_model *m, vrt_kv_cache *kv, int l, int T, const vrt_attn_batch *ab,
                 int all_decode, int fused, vrt_err *err)
{
    vrt_backend *be = m->be;
    vrt_workspace *w = &m->ws;
    const vrt_layer_weights *lw = &m->layers[l];
    const vrt_model_config *c = &m->cfg;
    const int D = c->hidden_size, F = c->intermediate_size;
    const int H = c->num_attention_heads, Hkv = c->num_key_value_heads, hd = c->head_dim;
    int rc;
#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((rc = (call)) != 0)                                                                    \
            return vrt_err_prefix(err, "layer %d: ", l);                                           \
    } while (0)
    /* The calibration hook (capture.h), only when set for this model. */
    const int cap = capture.fn && capture.m == m;
#define CAPTURE(which, x, K)                                                                       \
    do {                                                                                           \
        if (cap && (rc = capture.fn(capture.ud, l, (which), (x), T, (K), err)) != 0)               \
            return rc;                                                                             \
    } while (0)
    /* h = input_layernorm(x) (after x += the previous MLP's output) */
    if (fused && l > 0)
        TRY(add_norm(m, w->x, w->xn, w->xn, &lw->attn_norm, T, err));
    else
        TRY(norm(m, w->xn, w->x, &lw->attn_norm, T, err));
    CAPTURE(VRT_CAP_ATTN_IN, w->xn, D);
    /* q, k, v projections (one launch where the backend can) */
    {
        float *const ys[3] = {w->q, w->k, w->v};
        const vrt_weight *const ws[3] = {&lw->wq, &lw->wk, &lw->wv};
        const float *const bs[3] = {lw->bq, lw->bk, lw->bv};
        TRY(matmul_n(be, 3, ys, w->xn, ws, bs, T, err));
    }
    /* rotary embedding on q and k */
    TRY(be->rope(be, w->q, w->pos, T, H, hd, m->arch.rot_dim, m->arch.rope_interleaved, w->inv_freq,
                 err));
    TRY(be->rope(be, w->k, w->pos, T, Hkv, hd, m->arch.rot_dim, m->arch.rope_interleaved,
                 w->inv_freq, err));
    /* K/V of the new tokens into the paged cache, then attention over it */
    TRY(be->kv_store(be, kv->k[l], kv->v[l], w->k, w->v, w->slots, T, Hkv, hd,
                     (int64_t)kv->num_blocks * kv->block_size, err));
    if (all_decode)
        TRY(be->attention_decode(be, w->attn, w->q, kv->k[l], kv->v[l], ab, err));
    else
        TRY(be->attention_prefill(be, w->attn, w->q, kv->k[l], kv->v[l], ab, err));
    /* x = x + o_proj(attn) */
    CAPTURE(VRT_CAP_O_IN, w->attn, H * hd);
    TRY(be->matmul(be, w->xn, w->attn, &lw->wo, lw->bo, T, err));
    /* x = x + down(act(gate(h)) * up(h)), h = post_attention_layernorm(x) */
    TRY(add_norm(m, w->x, w->xn, w->xn, &lw->ffn_norm, T, err));
    CAPTURE(VRT_CAP_MLP_IN, w->xn, D);
    int64_t n = (int64_t)T * F;
    switch (m->arch.mlp_kind) {
    case VRT_MLP_SILU_GATED:
    case VRT_MLP_GELU_GATED:
    {
        float *const ys[2] = {w->gate, w->up};
        const vrt_weight *const ws[2] = {&lw->w_gate, &lw->w_up};
        const float *const bs[2] = {lw->b_gate, lw->b_up};
        TRY(matmul_n(be, 2, ys, w->xn, ws, bs, T, err));
    }
        if (m->arch.mlp_kind == VRT_MLP_SILU_GATED)
            TRY(be->silu_mul(be, w->gate, w->gate, w->up, n, err));
        else
            TRY(be->gelu_mul(be, w->gate, w->gate, w->up, n, m->arch.gelu_tanh, err));
        break;
    case VRT_MLP_GELU:
        TRY(be->matmul(be, w->gate, w->xn, &lw->w_up, lw->b_up, T, err));
        TRY(be->gelu(be, w->gate, w->gate, n, m->arch.gelu_tanh, err));
        break;
    }
    CAPTURE(VRT_CAP_DOWN_IN, w->gate, F);
    TRY(be->matmul(be, w->xn, w->gate, &lw->w_down, lw->b_down, T, err));
    if (!fused)
        TRY(be->add(be, w->x, w->x, w->xn, (int64_t)T * D, err));
#undef CAPTURE
#undef TRY
    return 0;
}

/* Embedding, the layers and the logits rows: every op of one step, on
 * the inputs already in the workspace (recorded as a graph as is). */
static int run_ops(vrt_model *m, vrt_kv_cache *kv, int T, int n_out, const vrt_attn_batch *ab,
                   int all_decode, vrt_err *err)
{
    vrt_backend *be = m->be;
    vrt_workspace *w = &m->ws;
    const int D = m->cfg.hidden_size;
    /* x = embed_tokens(tokens) */
    int rc = be->embed(be, w->x, &m->embed, w->tokens, T, err);
    const int fused = be->add_rmsnorm && m->arch.norm_kind != VRT_NORM_LAYER;
    for (int l = 0; l < m->cfg.num_hidden_layers && !rc; l++)
        rc = layer(m, kv, l, T, ab, all_decode, fused, err);
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

/* The graph bucket of a decode step of n sequences (0 = none fits). */
static int graph_bucket(int n)
{
    static const int buckets[] = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256};
    for (size_t i = 0; i < sizeof buckets / sizeof buckets[0]; i++)
        if (n <= buckets[i])
            return buckets[i];
    return 0;
}

void vrt__model_graphs_free(vrt_model *m);

/* The cache entry for (bucket, table width, KV cache); entries recorded
 * against moved buffers are dropped first. NULL when the cache is full. */
static vrt_graph_entry *graph_entry(vrt_model *m, vrt_kv_cache *kv, int bucket, int max_blocks)
{
    vrt_backend *be = m->be;
    vrt_graph_entry *free_slot = NULL;
    for (int i = 0; i < m->n_graphs; i++) {
        vrt_graph_entry *e = &m->graph_cache[i];
        if (e->ws_epoch != m->ws.epoch || e->be_epoch != be->buffers_epoch ||
            (e->kv_id && e->kv_id != (const void *)kv->k[0])) {
            if (e->graph)
                be->graph_free(be, e->graph);
            memset(e, 0, sizeof *e);
        }
        if (e->bucket == bucket && e->max_blocks == max_blocks && e->kv_id == kv->k[0])
            return e;
        if (!e->bucket && !free_slot)
            free_slot = e;
    }
    if (!free_slot && m->n_graphs < VRT_MAX_GRAPHS)
        free_slot = &m->graph_cache[m->n_graphs++];
    if (free_slot)
        *free_slot = (vrt_graph_entry){.bucket = bucket,
                                       .max_blocks = max_blocks,
                                       .kv_id = kv->k[0],
                                       .ws_epoch = m->ws.epoch,
                                       .be_epoch = be->buffers_epoch};
    return free_slot;
}

/* Runs the ops of a padded decode step through its graph: replays it when
 * recorded, records it on the second sight (the first runs eagerly, so
 * that every buffer an op grows exists before recording), else eager. */
static int run_graphed(vrt_model *m, vrt_kv_cache *kv, int bucket, int max_blocks,
                       const vrt_attn_batch *ab, vrt_err *err)
{
    vrt_backend *be = m->be;
    vrt_graph_entry *e = m->graphs == 1 && be->graph_begin ? graph_entry(m, kv, bucket, max_blocks)
                                                           : NULL;
    if (e && e->graph)
        return be->graph_launch(be, e->graph, err);
    if (!e || !e->seen) {
        int rc = run_ops(m, kv, bucket, bucket, ab, 1, err);
        if (!rc && e) {
            e->seen = 1;
            e->be_epoch = be->buffers_epoch; /* the warm-up may have grown scratch */
        }
        return rc;
    }
    int rc = be->graph_begin(be, err);
    if (!rc) {
        rc = run_ops(m, kv, bucket, bucket, ab, 1, err);
        void *g = NULL;
        if (rc) {
            be->graph_end(be, NULL, NULL);
        } else {
            rc = be->graph_end(be, &g, err);
            if (!rc)
                e->graph = g;
        }
    }
    if (rc) {
        /* Recording failed: say so once and run eagerly from now on. */
        VRT_WARN("decode step of %d sequences could not be recorded as a graph (%s); running "
                 "without graphs (kernels.cuda_graphs = false silences this)",
                 bucket, err->msg);
        vrt__model_graphs_free(m);
        m->graphs = 0;
        *err = (vrt_err){0};
        return run_ops(m, kv, bucket, bucket, ab, 1, err);
    }
    return be->graph_launch(be, e->graph, err);
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

    /* A decode step may run padded to a graph bucket: the extra sequences
     * are one token (id 0, position 0) whose K/V is not stored (slot -1)
     * and whose attention reads block 0; their rows are not copied back. */
    int bucket = 0;
    int rows_default = !b->out_rows || n_out == T;
    for (int i = 0; b->out_rows && rows_default && i < n_out; i++)
        rows_default = b->out_rows[i] == i;
    if (m->graphs && rows_default && T == b->n_seqs && (m->graphs == 2 || m->be->graph_begin))
        bucket = graph_bucket(b->n_seqs);
    const int Tr = bucket ? bucket : T, n_seqs_r = bucket ? bucket : b->n_seqs;
    const int n_out_r = bucket ? bucket : n_out;
    size_t n_host = (size_t)3 * Tr + n_out_r + (size_t)(n_seqs_r + 1) + n_seqs_r;
    if (bucket)
        n_host += (size_t)bucket * mb;
    int32_t *host = malloc(n_host * sizeof *host);
    if (!host)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    int32_t *pos = host, *slots = host + Tr, *rows = host + 2 * Tr, *tok = host + 2 * Tr + n_out_r;
    int32_t *qs = tok + Tr, *ctx = qs + n_seqs_r + 1, *table = ctx + n_seqs_r;
    int all_decode, max_ctx;
    int rc = check_batch(m, kv, b, T, n_out, pos, slots, rows, &all_decode, &max_ctx, err);
    const int32_t *tokens_r = b->tokens, *q_start_r = b->q_start, *ctx_r = b->ctx_len;
    const int32_t *table_r = b->block_table;
    if (!rc && bucket) {
        memcpy(tok, b->tokens, (size_t)T * sizeof *tok);
        memcpy(qs, b->q_start, (size_t)(T + 1) * sizeof *qs);
        memcpy(ctx, b->ctx_len, (size_t)T * sizeof *ctx);
        memcpy(table, b->block_table, (size_t)T * mb * sizeof *table);
        for (int i = T; i < bucket; i++) {
            tok[i] = 0;
            pos[i] = 0;
            slots[i] = -1;
            rows[i] = i;
            qs[i + 1] = i + 1;
            ctx[i] = 1;
            memset(table + (size_t)i * mb, 0, (size_t)mb * sizeof *table);
        }
        tokens_r = tok;
        q_start_r = qs;
        ctx_r = ctx;
        table_r = table;
    }
    if (!rc)
        rc = vrt__model_workspace(m, Tr, n_out_r, n_seqs_r, mb, err);
    vrt_backend *be = m->be;
    vrt_workspace *w = &m->ws;
    if (!rc)
        rc = be->copy_to_device(be, w->tokens, tokens_r, (size_t)Tr * 4, err);
    if (!rc)
        rc = be->copy_to_device(be, w->pos, pos, (size_t)Tr * 4, err);
    if (!rc)
        rc = be->copy_to_device(be, w->slots, slots, (size_t)Tr * 4, err);
    if (!rc)
        rc = be->copy_to_device(be, w->rows, rows, (size_t)n_out_r * 4, err);
    if (!rc)
        rc = be->copy_to_device(be, w->q_start, q_start_r, (size_t)(n_seqs_r + 1) * 4, err);
    if (!rc)
        rc = be->copy_to_device(be, w->ctx_len, ctx_r, (size_t)n_seqs_r * 4, err);
    if (!rc)
        rc = be->copy_to_device(be, w->block_table, table_r, (size_t)n_seqs_r * mb * 4, err);
    free(host);
    if (!rc)
        rc = update_inv_freq(m, max_ctx, err);
    if (rc)
        return rc;

    vrt_attn_batch ab = {
        .n_seqs = n_seqs_r,
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
        .n_tokens = Tr,
    };
    /* Token ids, slots, rows and the attention batch were checked above
     * (check_batch): the ops of the backend's table run without checks. */
    if (bucket)
        rc = run_graphed(m, kv, bucket, mb, &ab, err);
    else
        rc = run_ops(m, kv, T, n_out, &ab, all_decode, err);
    if (!rc)
        rc = be->copy_to_host(be, logits, w->logits, (size_t)n_out * V * sizeof(float), err);
    return rc;
}
