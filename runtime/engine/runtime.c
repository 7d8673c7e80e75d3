/* runtime.c — one loaded model with its tokenizer, backend and KV cache:
 * the vrt_runtime_* API of vrt.h behind `v100rt generate` and Lua scripts.
 *
 * Generation is a synchronous client of the engine (engine.h), the one
 * path of `v100rt serve` too: vrt_runtime_generate_ids submits its request
 * to the runtime's own engine, which has no thread and runs its steps on
 * the caller's thread until the request ends (scheduling, chunked prefill,
 * sampling, stop ids, detokenization and stop strings are the engine's),
 * and fills the result from the engine's events. Between calls that engine
 * holds nothing, so logits (one sequence, in prefill chunks) and the rest
 * use the model and the KV cache directly.
 */
#include "vrt.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/engine.h"
#include "engine/kv_blocks.h"
#include "engine/plan.h"
#include "engine/runtime_int.h"
#include "engine/sampler.h"
#include "engine/stop.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vrt_free(void *p)
{
    free(p);
}

void vrt_gen_params_init(vrt_gen_params *p)
{
    memset(p, 0, sizeof *p);
    p->max_new_tokens = 64;
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->typical_p = 1.0f;
    p->repetition_penalty = 1.0f;
    p->add_special_tokens = 1;
}

void vrt_gen_result_free(vrt_gen_result *r)
{
    if (!r)
        return;
    free(r->text);
    free(r->tokens);
    free(r->logprobs);
    memset(r, 0, sizeof *r);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

void vrt__config_apply_logging(const vrt_config *cfg, int keep_level)
{
    int level = cfg->logging.level ? vrt_log_level_parse(cfg->logging.level) : -1;
    if (level >= 0 && !keep_level)
        vrt_log_set_level(level);
    if (cfg->logging.format && strcmp(cfg->logging.format, "json") == 0)
        vrt_log_set_format(VRT_LOG_JSON);
}

const char *vrt__config_quantize(const vrt_config *cfg)
{
    if (cfg->model.quantize)
        return cfg->model.quantize;
    /* A model directory opened without a config: as the checkpoint is. */
    if (cfg->source && cfg->model.path && strcmp(cfg->source, cfg->model.path) == 0)
        return NULL;
    return "none";
}

/* The GPU memory plan (engine/plan.h) from the device's free memory: fails
 * when one sequence of max_total_tokens cannot fit, else keeps the number
 * of KV blocks for the engine (rt->plan_blocks). */
static int plan_device(vrt_runtime *rt, const vrt_config *cfg, const char *quantize, vrt_err *err)
{
    size_t free_b = 0, total_b = 0;
    int rc = rt->be->mem_info(rt->be, &free_b, &total_b, err);
    if (rc)
        return rc;
    vrt_model_config mc;
    if ((rc = vrt_model_config_load(&mc, cfg->model.path, err)) != 0)
        return rc;
    int64_t total = cfg->batching.max_total_tokens;
    if (mc.max_position_embeddings > 0 && total > mc.max_position_embeddings)
        total = mc.max_position_embeddings;
    vrt_plan_input in = {
        .model = &mc,
        .device_bytes = (int64_t)free_b,
        .memory_fraction = cfg->device.memory_fraction,
        .weight_bytes_per_param = vrt_plan_weight_bytes(cfg->model.dtype, quantize),
        .tensor = 1,
        .block_size = cfg->cache.block_size,
        .max_total_tokens = total,
        .max_batch_prefill_tokens = cfg->batching.max_batch_prefill_tokens,
        .max_concurrent_requests = cfg->batching.max_concurrent_requests,
        .graph_pool_bytes = 0,
    };
    vrt_plan p;
    rc = vrt_plan_compute(&in, &p, err);
    char *table = vrt_plan_format(&in, &p);
    if (rc) {
        if (table)
            VRT_ERROR("memory plan (from %.2f GiB free of %.2f GiB):\n%s", free_b / 1073741824.0,
                      total_b / 1073741824.0, table);
        free(table);
        return rc;
    }
    VRT_INFO("memory plan (from %.2f GiB free of %.2f GiB): %lld KV blocks of %d tokens "
             "(%lld tokens, %lld sequences of %lld)",
             free_b / 1073741824.0, total_b / 1073741824.0, (long long)p.num_blocks, in.block_size,
             (long long)p.kv_tokens, (long long)p.full_length_seqs, (long long)total);
    free(table);
    rt->plan_blocks = p.num_blocks;
    return 0;
}

vrt_backend_opts vrt__backend_opts_of(const vrt_config *cfg)
{
    /* device.gpus[1] (C index 0): the one GPU the model runs on. */
    vrt_backend_opts bo = {.threads = cfg->device.threads,
                           .custom_kernels = cfg->kernels.custom,
                           .device = cfg->device.n_gpus > 0 ? cfg->device.gpus[0] : 0};
    return bo;
}

int vrt__runtime_open_cfg(vrt_runtime **out, const vrt_config *cfg, vrt_err *err)
{
    if (!out || !cfg || !cfg->model.path)
        return vrt_err_set(err, VRT_EINVAL, "vrt__runtime_open_cfg: no config or no model.path");
    *out = NULL;
    /* What the config rules refuse is refused here too, for a struct that
     * did not come through vrt_config_load. */
    if (cfg->parallel.tensor > 1)
        return vrt_err_set(err, VRT_ECONFIG,
                           "parallel.tensor = %d: tensor parallelism is not implemented yet; use "
                           "parallel.tensor = 1 (one GPU), or quantize (model.quantize) to fit "
                           "one GPU: see `v100rt plan`",
                           cfg->parallel.tensor);
    for (int i = 0; i < cfg->n_notes; i++) {
        if (strncmp(cfg->notes[i], "warning: ", 9) == 0)
            VRT_WARN("%s: %s", cfg->source ? cfg->source : "config", cfg->notes[i] + 9);
        else
            VRT_INFO("%s: %s", cfg->source ? cfg->source : "config", cfg->notes[i]);
    }
    vrt_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    rt->model_dir = strdup(cfg->model.path);
    int rc = rt->model_dir ? 0 : vrt_err_set(err, VRT_ENOMEM, "out of memory");
    const char *quantize = vrt__config_quantize(cfg);
    const char *kind = cfg->device.kind;
    if (!rc && strcmp(kind, "auto") == 0) {
        char why[512] = "";
        int gpus = vrt_cuda_gpu_count(why, sizeof why);
        kind = gpus > 0 ? "cuda" : "cpu";
        if (gpus > 0)
            VRT_INFO("device.kind = \"auto\": %d CUDA GPU(s) found, using cuda", gpus);
        else
            VRT_INFO("device.kind = \"auto\": using cpu (%s)", why);
    }
    if (!rc) {
        vrt_backend_opts bo = vrt__backend_opts_of(cfg);
        rc = vrt_backend_create_opts(&rt->be, kind, &bo, err);
    }
    if (!rc && rt->be->device_name)
        VRT_INFO("%s", rt->be->device_name(rt->be));
    /* On a GPU: the memory plan before the weights are loaded, so that a
     * model that cannot fit fails now, with the figures. */
    if (!rc && rt->be->mem_info)
        rc = plan_device(rt, cfg, quantize, err);
    if (!rc) {
        vrt_model_load_opts lo = {.dtype = cfg->model.dtype, .quantize = quantize};
        rc = vrt_model_load(&rt->m, cfg->model.path, rt->be, &lo, err);
    }
    /* kernels.cuda_graphs: decode steps recorded once per batch bucket
     * (only where the backend records graphs: cuda). */
    if (!rc)
        rt->m->graphs = cfg->kernels.cuda_graphs ? 1 : 0;
    if (!rc) {
        rc = vrt_tokenizer_load(&rt->tok,
                                cfg->model.tokenizer ? cfg->model.tokenizer : cfg->model.path, err);
        if (rc)
            vrt_err_prefix(err, "loading the tokenizer: ");
    }
    if (rc)
        goto fail;
    const vrt_model_config *c = &rt->m->cfg;
    /* A sequence may not outgrow the model's positions nor the config. */
    int64_t max_total = cfg->batching.max_total_tokens;
    if (c->max_position_embeddings > 0 && max_total > c->max_position_embeddings) {
        VRT_INFO("max_total_tokens %lld is more than the model's max_position_embeddings "
                 "(%lld): using %lld",
                 (long long)max_total, (long long)c->max_position_embeddings,
                 (long long)c->max_position_embeddings);
        max_total = c->max_position_embeddings;
    }
    rt->max_total = (int)max_total;
    rt->cfg_num_blocks = cfg->cache.num_blocks > 0 ? cfg->cache.num_blocks : 0;
    rt->prefix_caching = cfg->cache.prefix_caching;
    /* batching.preemption: "recompute" never swaps; "auto" and "swap" use
     * cache.swap_space. */
    double swap_gib = cfg->batching.preemption && strcmp(cfg->batching.preemption, "recompute") == 0
                          ? 0.0
                          : cfg->cache.swap_space;
    rt->swap_bytes = (int64_t)(swap_gib * 1024.0 * 1024.0 * 1024.0);
    rt->max_input =
        (int)(cfg->batching.max_input_tokens < max_total ? cfg->batching.max_input_tokens
                                                         : max_total - 1);
    rt->max_prefill = (int)cfg->batching.max_batch_prefill_tokens;
    int bs = cfg->cache.block_size;
    rt->max_blocks = (int)((max_total + bs - 1) / bs);
    int64_t nb = cfg->cache.num_blocks > 0 ? cfg->cache.num_blocks : rt->max_blocks;
    if (nb < rt->max_blocks) {
        rc = vrt_err_set(err, VRT_ECONFIG,
                         "cache.num_blocks (%lld) cannot hold one sequence of %d tokens (%d "
                         "blocks of %d): raise cache.num_blocks or lower "
                         "batching.max_total_tokens",
                         (long long)nb, rt->max_total, rt->max_blocks, bs);
        goto fail;
    }
    rc = vrt_kv_cache_init(&rt->kv, rt->m, (int)nb, bs, err);
    if (!rc)
        rc = vrt_block_pool_init(&rt->pool, (int)nb, bs, err);
    if (!rc)
        rc = vrt_sample_scratch_init(&rt->scratch, c->vocab_size, err);
    if (rc)
        goto fail;
    /* Stop ids: config/generation_config eos ids plus the tokenizer's. */
    for (int i = 0; i < c->n_eos; i++)
        rt->eos[rt->n_eos++] = c->eos_token_ids[i];
    int32_t te = vrt_tokenizer_eos_id(rt->tok);
    if (te >= 0 && !vrt_is_stop_token(rt->eos, rt->n_eos, te))
        rt->eos[rt->n_eos++] = te;
    *out = rt;
    return 0;
fail:
    vrt_runtime_close(rt);
    return rc;
}

int vrt_runtime_open(vrt_runtime **out, const char *path, vrt_err *err)
{
    if (!out || !path)
        return vrt_err_set(err, VRT_EINVAL, "vrt_runtime_open: NULL argument");
    *out = NULL;
    /* A config file or a model directory ({model = {path = DIR}} through
     * the schema's defaults): no flags, no environment. */
    vrt_config cfg;
    int rc = vrt_config_load(&cfg, path, err);
    if (!rc && ends_with(path, ".lua"))
        vrt__config_apply_logging(&cfg, 0);
    if (!rc)
        rc = vrt__runtime_open_cfg(out, &cfg, err);
    vrt_config_free(&cfg);
    return rc;
}

void vrt_runtime_close(vrt_runtime *rt)
{
    if (!rt)
        return;
    vrt_engine_destroy(rt->gen_engine);
    vrt_sample_scratch_free(&rt->scratch);
    if (rt->pool.num_blocks)
        vrt_block_pool_free(&rt->pool);
    vrt_kv_cache_free(&rt->kv);
    vrt_model_free(rt->m);
    vrt_tokenizer_free(rt->tok);
    vrt_backend_destroy(rt->be);
    free(rt->model_dir);
    free(rt);
}

int vrt__runtime_resize_kv(vrt_runtime *rt, int num_blocks, vrt_err *err)
{
    if (num_blocks < rt->max_blocks)
        return vrt_err_set(err, VRT_ECONFIG,
                           "cache.num_blocks (%d) cannot hold one sequence of %d tokens (%d "
                           "blocks): raise it or lower batching.max_total_tokens",
                           num_blocks, rt->max_total, rt->max_blocks);
    if (rt->pool.n_free != rt->pool.num_blocks)
        return vrt_err_set(err, VRT_EINVAL, "KV cache resize while sequences hold blocks");
    int bs = rt->pool.block_size;
    vrt_kv_cache kv;
    vrt_block_pool pool;
    vrt_kv_cache_free(&rt->kv); /* free first: the old and new caches need not both fit */
    int rc = vrt_kv_cache_init(&kv, rt->m, num_blocks, bs, err);
    if (!rc)
        rc = vrt_block_pool_init(&pool, num_blocks, bs, err);
    if (rc) {
        vrt_kv_cache_free(&kv);
        /* Put back a cache for one sequence so the runtime stays usable. */
        vrt_err e2 = {0};
        if (vrt_kv_cache_init(&rt->kv, rt->m, rt->pool.num_blocks, bs, &e2) != 0)
            rt->kv.num_blocks = 0;
        return rc;
    }
    vrt_block_pool_free(&rt->pool);
    rt->kv = kv;
    rt->pool = pool;
    return 0;
}

int vrt_runtime_vocab_size(const vrt_runtime *rt)
{
    return rt->m->cfg.vocab_size;
}
int vrt_runtime_max_total_tokens(const vrt_runtime *rt)
{
    return rt->max_total;
}
const char *vrt_runtime_describe(const vrt_runtime *rt)
{
    /* Made when asked: the engine resizes the KV cache after open. */
    vrt_runtime *w = (vrt_runtime *)rt; /* rt points at a mutable struct */
    const vrt_model_config *c = &rt->m->cfg;
    const vrt_quant_config *q = &rt->m->qc;
    char weights[96], group[32];
    if (q->method != VRT_QUANT_NONE) {
        if (q->group_size > 0)
            snprintf(group, sizeof group, "group %d", q->group_size);
        else
            snprintf(group, sizeof group, "one group per row");
        snprintf(weights, sizeof weights, "int%d (%s, %s) + %s weights", q->bits,
                 vrt_quant_method_name(q->method), group, vrt_dtype_name(rt->m->wdtype));
    } else {
        snprintf(weights, sizeof weights, "%s weights", vrt_dtype_name(rt->m->wdtype));
    }
    snprintf(w->desc, sizeof w->desc,
             "%s: %s, %d layers, dim %d, %d heads (%d kv), vocab %d, %s (%.1f MiB), "
             "%s backend, %d KV blocks of %d",
             rt->model_dir, c->arch_name, c->num_hidden_layers, c->hidden_size,
             c->num_attention_heads, c->num_key_value_heads, c->vocab_size, weights,
             (double)rt->m->weight_bytes / (1024.0 * 1024.0), rt->be->name, rt->pool.num_blocks,
             rt->pool.block_size);
    return w->desc;
}

int vrt_runtime_tokenize(vrt_runtime *rt, const char *text, size_t len, int add_special_tokens,
                         int32_t **ids, int *n, vrt_err *err)
{
    vrt_tokens t = {0};
    *ids = NULL;
    *n = 0;
    int rc = vrt_tokenizer_encode(rt->tok, text, len, add_special_tokens, &t, err);
    if (rc) {
        vrt_tokens_free(&t);
        return rc;
    }
    *ids = t.ids ? t.ids : malloc(sizeof(int32_t));
    *n = (int)t.n;
    return *ids ? 0 : vrt_err_set(err, VRT_ENOMEM, "out of memory");
}

int vrt_runtime_detokenize(vrt_runtime *rt, const int32_t *ids, int n, int skip_special_tokens,
                           char **text, size_t *len, vrt_err *err)
{
    return vrt_tokenizer_decode(rt->tok, ids, (size_t)(n > 0 ? n : 0), skip_special_tokens, text,
                                len, err);
}

/* ---- logits of one sequence -------------------------------------------------- */

int vrt_runtime_logits(vrt_runtime *rt, const int32_t *ids, int n, float *out, vrt_err *err)
{
    if (!rt || !ids || !out || n < 1)
        return vrt_err_set(err, VRT_EINVAL, "logits: needs at least one token");
    if (n > rt->max_total)
        return vrt_err_set(err, VRT_ERANGE,
                           "logits: %d tokens, more than batching.max_total_tokens (%d)", n,
                           rt->max_total);
    vrt_seq_blocks s = {0};
    int32_t *table = NULL, *rows = NULL;
    int rc = vrt_block_pool_reserve(&rt->pool, &s, n, err);
    if (rc == VRT_ENOSPC)
        rc = vrt_err_set(err, VRT_ENOSPC,
                         "the KV cache (%d blocks of %d) cannot hold %d tokens: raise "
                         "cache.num_blocks",
                         rt->pool.num_blocks, rt->pool.block_size, n);
    if (rc)
        goto out;
    table = calloc((size_t)rt->max_blocks, sizeof *table);
    rows = malloc((size_t)rt->max_prefill * sizeof *rows);
    if (!table || !rows) {
        rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(table, s.ids, (size_t)s.n * sizeof *table);
    const int V = rt->m->cfg.vocab_size;
    /* In chunks of at most max_batch_prefill_tokens, as the engine prefills. */
    for (int at = 0; at < n && !rc;) {
        int chunk = n - at < rt->max_prefill ? n - at : rt->max_prefill;
        int32_t q_start[2] = {0, chunk}, ctx[1] = {at + chunk};
        for (int i = 0; i < chunk; i++)
            rows[i] = i;
        vrt_batch b = {.n_seqs = 1,
                       .tokens = ids + at,
                       .q_start = q_start,
                       .ctx_len = ctx,
                       .block_table = table,
                       .max_blocks_per_seq = rt->max_blocks,
                       .out_rows = rows,
                       .n_out = chunk};
        rc = vrt_model_forward(rt->m, &rt->kv, &b, out + (size_t)at * V, err);
        at += chunk;
    }
out:
    free(table);
    free(rows);
    vrt_block_pool_release(&rt->pool, &s);
    return rc;
}

int vrt__text_step(vrt_detok *d, vrt_stop_checker *stop, vrt_stop_out *out, int32_t tok, int flush,
                   int *matched, vrt_err *err)
{
    char *piece = NULL;
    size_t plen = 0;
    *matched = -1;
    /* An id the model can produce but the tokenizer has no token for
     * (padded embedding rows) is text "", as transformers and vLLM decode
     * it, not a failed request. */
    if (!flush && !vrt_detok_knows(d, tok))
        return 0;
    int rc =
        flush ? vrt_detok_flush(d, &piece, &plen, err) : vrt_detok_push(d, tok, &piece, &plen, err);
    if (rc)
        return rc;
    rc = vrt_stop_feed(stop, piece ? piece : "", plen, out, matched, err);
    free(piece);
    if (!rc && flush && *matched < 0)
        rc = vrt_stop_flush(stop, out, err);
    return rc;
}

/* Appends bytes to the result text. */
static int text_put(vrt_gen_result *r, size_t *cap, const char *s, size_t n)
{
    if (vrt_grow(&r->text, cap, r->text_len + n + 1, 1))
        return VRT_ENOMEM;
    memcpy(r->text + r->text_len, s, n);
    r->text_len += n;
    r->text[r->text_len] = 0;
    return 0;
}

int vrt__runtime_check_request(const vrt_runtime *rt, const int32_t *ids, int n, int max_new_tokens,
                               const int32_t *stop_ids, int n_stop_ids,
                               const vrt_sampling_params *sp, vrt_err *err)
{
    if (n < 1)
        return vrt_err_set(err, VRT_EINVAL, "the prompt is empty (no tokens)");
    const int V = rt->m->cfg.vocab_size;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return vrt_err_set(err, VRT_ERANGE,
                               "prompt token %d is id %d, outside the vocabulary (0..%d)", i,
                               ids[i], V - 1);
    for (int i = 0; i < n_stop_ids; i++)
        if (stop_ids[i] < 0 || stop_ids[i] >= V)
            return vrt_err_set(err, VRT_ERANGE, "stop token id %d is outside the vocabulary",
                               stop_ids[i]);
    int rc = vrt_sampling_params_validate(sp, err);
    if (rc)
        return rc;
    if (n > rt->max_input)
        return vrt_err_set(err, VRT_ERANGE,
                           "the prompt has %d tokens, more than batching.max_input_tokens (%d): "
                           "shorten it or raise the limit",
                           n, rt->max_input);
    if (max_new_tokens < 1)
        return vrt_err_set(err, VRT_EINVAL, "max_new_tokens must be >= 1 (got %d)", max_new_tokens);
    if ((int64_t)n + max_new_tokens > rt->max_total)
        return vrt_err_set(err, VRT_ERANGE,
                           "prompt (%d tokens) + max_new_tokens (%d) = %lld is more than "
                           "batching.max_total_tokens (%d): lower max_new_tokens to %d",
                           n, max_new_tokens, (long long)n + max_new_tokens, rt->max_total,
                           rt->max_total - n);
    return 0;
}

/* ---- generate: a synchronous client of the engine ---------------------------- */

int vrt__runtime_engine(vrt_runtime *rt, vrt_engine **out, vrt_err *err)
{
    if (!rt->gen_engine) {
        int rc = vrt__engine_create_sync(&rt->gen_engine, rt, err);
        if (rc)
            return rc;
    }
    *out = rt->gen_engine;
    return 0;
}

/* One generate call as the engine's events fill its result. */
typedef struct gen_client {
    vrt_gen_result *res;
    size_t text_cap;
    int max_new;
    vrt_stream_fn fn;
    void *ud;
    int stop_asked; /* fn returned non-zero, or the text could not grow */
    int oom;
    int done; /* the FINISH or ERROR event came */
    vrt_err *err;
    int rc;
} gen_client;

/* The finish reasons as vrt.h names them (the result outlives the event). */
static const char *finish_reason_of(const char *r)
{
    if (strcmp(r, "eos_token") == 0)
        return "eos_token";
    if (strcmp(r, "stop_sequence") == 0)
        return "stop_sequence";
    return "length";
}

/* Text that became final: into the result, and to the caller until it asks
 * to stop. */
static void client_text(gen_client *c, const char *text, size_t len)
{
    if (!len)
        return;
    if (text_put(c->res, &c->text_cap, text, len)) {
        c->oom = c->stop_asked = 1;
        return;
    }
    if (c->fn && !c->stop_asked && c->fn(c->ud, text, len) != 0)
        c->stop_asked = 1;
}

static void on_gen_event(void *ud, const vrt_engine_event *ev)
{
    gen_client *c = ud;
    vrt_gen_result *res = c->res;
    switch (ev->kind) {
    case VRT_EV_TOKEN:
        if (res->tokens && res->logprobs && res->n_tokens < c->max_new) {
            res->tokens[res->n_tokens] = ev->token;
            res->logprobs[res->n_tokens++] = ev->logprob;
        }
        client_text(c, ev->text, ev->text_len);
        break;
    case VRT_EV_FINISH:
        client_text(c, ev->text, ev->text_len);
        res->finish_reason = finish_reason_of(ev->finish_reason);
        res->n_prompt_tokens = ev->n_prompt_tokens;
        res->seed = ev->seed;
        /* From the engine's times: submit to the first token (the prompt's
         * prefill and one sample), then the rest. */
        res->prefill_s = ev->ttft_s;
        res->decode_s = ev->total_s - ev->ttft_s;
        res->prefill_tok_s = res->prefill_s > 0 ? res->n_prompt_tokens / res->prefill_s : 0;
        res->decode_tok_s =
            res->decode_s > 0 && res->n_tokens > 1 ? (res->n_tokens - 1) / res->decode_s : 0;
        c->done = 1;
        break;
    case VRT_EV_ERROR:
        c->rc = vrt_err_set(c->err, ev->err_code ? ev->err_code : VRT_EINVAL, "%s",
                            ev->err_msg ? ev->err_msg : "generation failed");
        c->done = 1;
        break;
    }
}

int vrt_runtime_generate_ids(vrt_runtime *rt, const int32_t *ids, int n, const vrt_gen_params *p,
                             vrt_stream_fn fn, void *ud, vrt_gen_result *res, vrt_err *err)
{
    memset(res, 0, sizeof *res);
    if (!rt || !ids || !p)
        return vrt_err_set(err, VRT_EINVAL, "generate: NULL argument");
    if (rt->generating)
        return vrt_err_set(err, VRT_EINVAL,
                           "generate: called again from inside a generate's stream callback; "
                           "one generation at a time per runtime");
    vrt_request_params rp = {0};
    vrt_sampling_params *sp = &rp.sampling;
    *sp = vrt_sampling_params_default();
    sp->do_sample = p->do_sample && p->temperature > 0.0f;
    sp->temperature = p->temperature > 0.0f ? p->temperature : 1.0f;
    sp->top_k = p->top_k;
    sp->top_p = p->top_p;
    sp->typical_p = p->typical_p;
    sp->min_p = p->min_p;
    sp->repetition_penalty = p->repetition_penalty;
    sp->frequency_penalty = p->frequency_penalty;
    sp->presence_penalty = p->presence_penalty;
    sp->n_logprobs = p->n_logprobs;
    sp->seed = p->has_seed ? p->seed : vrt_rng_random_seed();
    rp.max_new_tokens = p->max_new_tokens;
    rp.stop = p->stop;
    rp.n_stop = p->n_stop;
    rp.stop_ids = p->stop_ids;
    rp.n_stop_ids = p->n_stop_ids;
    rp.ignore_eos = p->ignore_eos;
    vrt_engine *e;
    int rc = vrt__runtime_engine(rt, &e, err);
    if (rc)
        return rc;
    /* The engine checks the request (vrt__runtime_check_request) before
     * anything is allocated here. */
    gen_client c = {.res = res, .max_new = p->max_new_tokens, .fn = fn, .ud = ud, .err = err};
    uint64_t id;
    rc = vrt_engine_submit(e, ids, n, &rp, on_gen_event, &c, &id, err);
    if (rc)
        return rc;
    res->tokens = malloc((size_t)p->max_new_tokens * sizeof *res->tokens);
    res->logprobs = malloc((size_t)p->max_new_tokens * sizeof *res->logprobs);
    res->text = calloc(1, 1);
    c.text_cap = res->text ? 1 : 0;
    if (!res->tokens || !res->logprobs || !res->text)
        c.oom = c.stop_asked = 1;
    rt->generating = 1;
    int ended = 0;
    while (!c.done) {
        if (c.stop_asked && !ended) {
            /* The caller stopped (or the result cannot grow): the request
             * ends now, its held text flushed, as "length". */
            ended = 1;
            if (vrt__engine_end(e, id))
                continue;
        }
        if (!vrt__engine_step_once(e) && !c.done) {
            /* Idle without the request's last event: cannot happen. */
            c.rc = vrt_err_set(err, VRT_EINVAL,
                               "generate: the engine went idle before the request ended");
            break;
        }
    }
    rt->generating = 0;
    rc = c.rc;
    if (!rc && c.oom)
        rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
    if (rc)
        vrt_gen_result_free(res);
    return rc;
}

int vrt_runtime_generate(vrt_runtime *rt, const char *prompt, size_t len, const vrt_gen_params *p,
                         vrt_stream_fn fn, void *ud, vrt_gen_result *res, vrt_err *err)
{
    memset(res, 0, sizeof *res);
    if (!rt || !prompt || !p)
        return vrt_err_set(err, VRT_EINVAL, "generate: NULL argument");
    int32_t *ids;
    int n;
    int rc = vrt_runtime_tokenize(rt, prompt, len, p->add_special_tokens, &ids, &n, err);
    if (rc)
        return rc;
    rc = vrt_runtime_generate_ids(rt, ids, n, p, fn, ud, res, err);
    free(ids);
    return rc;
}
