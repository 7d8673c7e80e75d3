/* api_res.c — render TGI / OpenAI responses and SSE events (see api_res.h). */
#include "server/api_res.h"

#include "core/util.h"

#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON building helpers ---------------------------------------------- */

/* Every helper tolerates a NULL parent (after an earlier allocation failed)
 * and records failure in *ok, so callers check once at the end. */
typedef struct jb {
    int ok;
} jb;

static cJSON *add(jb *b, cJSON *parent, const char *name, cJSON *item)
{
    if (!item) {
        b->ok = 0;
        return NULL;
    }
    if (!parent) {
        cJSON_Delete(item);
        b->ok = 0;
        return NULL;
    }
    if (name) {
        if (!cJSON_AddItemToObject(parent, name, item)) {
            cJSON_Delete(item);
            b->ok = 0;
            return NULL;
        }
    } else if (!cJSON_AddItemToArray(parent, item)) {
        cJSON_Delete(item);
        b->ok = 0;
        return NULL;
    }
    return item;
}

static cJSON *str_n(const char *s, size_t n)
{
    char *t = vrt_api_utf8_sanitize(s ? s : "", s ? n : 0);
    if (!t)
        return NULL;
    cJSON *j = cJSON_CreateString(t);
    free(t);
    return j;
}

static cJSON *str(const char *s)
{
    return str_n(s, s ? strlen(s) : 0);
}

/* The shortest decimal that reads back as the same float; null for NaN/inf. */
static cJSON *f32(float v)
{
    if (!isfinite(v))
        return cJSON_CreateNull();
    char buf[48];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v)
            break;
    }
    return cJSON_CreateRaw(buf);
}

static cJSON *u64(uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cJSON_CreateRaw(buf);
}

static cJSON *num(double v)
{
    return cJSON_CreateNumber(v);
}

static char *finish(jb *b, cJSON *root, const char *prefix, const char *suffix)
{
    char *s = NULL;
    if (b->ok && root)
        s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s || (!prefix && !suffix))
        return s;
    size_t pl = prefix ? strlen(prefix) : 0, sl = suffix ? strlen(suffix) : 0, n = strlen(s);
    char *out = malloc(pl + n + sl + 1);
    if (out) {
        memcpy(out, prefix, pl);
        memcpy(out + pl, s, n);
        memcpy(out + pl + n, suffix, sl);
        out[pl + n + sl] = '\0';
    }
    cJSON_free(s);
    return out;
}

/* cJSON_PrintUnformatted allocates with cJSON's allocator (malloc by
 * default); normalize so every result is free()-able. */
static char *finish_plain(jb *b, cJSON *root)
{
    return finish(b, root, "", "");
}

/* OpenAI's finish_reason for an engine reason: eos_token and stop_sequence
 * -> "stop", length -> "length"; NULL stays NULL. */
static const char *oai_finish_reason(const char *r)
{
    if (!r)
        return NULL;
    if (strcmp(r, "eos_token") == 0 || strcmp(r, "stop_sequence") == 0)
        return "stop";
    return r;
}

/* ---- TGI ------------------------------------------------------------------- */

static cJSON *tgi_token(jb *b, const vrt_api_token *t, int with_special)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        b->ok = 0;
        return NULL;
    }
    add(b, o, "id", num(t->id));
    add(b, o, "text", str(t->text));
    add(b, o, "logprob", f32(t->logprob));
    if (with_special)
        add(b, o, "special", cJSON_CreateBool(t->special));
    return o;
}

static cJSON *full_text(const vrt_api_request *rq, const vrt_api_result *res, int prepend)
{
    if (!prepend)
        return str_n(res->text, res->text_len);
    const char *p = res->prompt ? res->prompt : "";
    size_t pl = strlen(p);
    char *buf = malloc(pl + res->text_len + 1);
    if (!buf)
        return NULL;
    memcpy(buf, p, pl);
    if (res->text_len)
        memcpy(buf + pl, res->text, res->text_len);
    cJSON *j = str_n(buf, pl + res->text_len);
    free(buf);
    return j;
}

char *vrt_api_render_generate(const vrt_api_request *rq, const vrt_api_result *res)
{
    jb b = {1};
    cJSON *o = cJSON_CreateObject();
    add(&b, o, "generated_text", full_text(rq, res, rq->return_full_text));
    if (rq->details) {
        cJSON *d = add(&b, o, "details", cJSON_CreateObject());
        add(&b, d, "finish_reason", str(res->finish_reason ? res->finish_reason : "length"));
        add(&b, d, "generated_tokens", num(res->n_generated_tokens));
        add(&b, d, "seed", res->has_seed ? u64(res->seed) : cJSON_CreateNull());
        cJSON *pre = add(&b, d, "prefill", cJSON_CreateArray());
        if (rq->decoder_input_details)
            for (int i = 0; i < res->n_prefill; i++)
                add(&b, pre, NULL, tgi_token(&b, &res->prefill[i], 0));
        cJSON *toks = add(&b, d, "tokens", cJSON_CreateArray());
        for (int i = 0; i < res->n_tokens; i++)
            add(&b, toks, NULL, tgi_token(&b, &res->tokens[i], 1));
        if (rq->top_n_tokens > 0 && res->top && res->n_top > 0 && res->n_tokens > 0) {
            cJSON *tt = add(&b, d, "top_tokens", cJSON_CreateArray());
            for (int i = 0; i < res->n_tokens; i++) {
                cJSON *row = add(&b, tt, NULL, cJSON_CreateArray());
                for (int k = 0; k < res->n_top; k++)
                    add(&b, row, NULL, tgi_token(&b, &res->top[(size_t)i * res->n_top + k], 1));
            }
        }
    }
    if (rq->api == VRT_API_TGI_COMPAT) {
        cJSON *arr = cJSON_CreateArray();
        if (!arr) {
            cJSON_Delete(o);
            return NULL;
        }
        add(&b, arr, NULL, o);
        return finish_plain(&b, arr);
    }
    return finish_plain(&b, o);
}

char *vrt_api_render_tgi_stream_event(const vrt_api_request *rq, const vrt_api_token *tok,
                                      int index, const vrt_api_token *top, int n_top,
                                      const vrt_api_result *final)
{
    jb b = {1};
    cJSON *o = cJSON_CreateObject();
    add(&b, o, "index", num(index + 1));
    add(&b, o, "token", tgi_token(&b, tok, 1));
    if (rq->top_n_tokens > 0 && top && n_top > 0) {
        cJSON *tt = add(&b, o, "top_tokens", cJSON_CreateArray());
        for (int k = 0; k < n_top; k++)
            add(&b, tt, NULL, tgi_token(&b, &top[k], 1));
    }
    if (final) {
        add(&b, o, "generated_text", full_text(rq, final, rq->return_full_text));
        if (rq->details) {
            cJSON *d = add(&b, o, "details", cJSON_CreateObject());
            add(&b, d, "finish_reason",
                str(final->finish_reason ? final->finish_reason : "length"));
            add(&b, d, "generated_tokens", num(final->n_generated_tokens));
            add(&b, d, "seed", final->has_seed ? u64(final->seed) : cJSON_CreateNull());
            add(&b, d, "input_length", num(final->n_prompt_tokens));
        } else {
            add(&b, o, "details", cJSON_CreateNull());
        }
    } else {
        add(&b, o, "generated_text", cJSON_CreateNull());
        add(&b, o, "details", cJSON_CreateNull());
    }
    return finish(&b, o, "data:", "\n\n");
}

/* ---- OpenAI ------------------------------------------------------------- */

static cJSON *bytes_of(const char *s)
{
    cJSON *a = cJSON_CreateArray();
    if (!a)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        cJSON *n = cJSON_CreateNumber(*p);
        if (!n || !cJSON_AddItemToArray(a, n)) {
            cJSON_Delete(n);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

/* Completions logprobs over tokens[0..n) (with top[n][n_top]); prompt
 * tokens (echo) come first, with null logprob / top at the first one. */
static cJSON *completion_logprobs(jb *b, const vrt_api_token *pre, int n_pre,
                                  const vrt_api_token *toks, int n, const vrt_api_token *top,
                                  int n_top, size_t offset)
{
    cJSON *lp = cJSON_CreateObject();
    cJSON *jt = add(b, lp, "tokens", cJSON_CreateArray());
    cJSON *jl = add(b, lp, "token_logprobs", cJSON_CreateArray());
    cJSON *jtop = add(b, lp, "top_logprobs", cJSON_CreateArray());
    cJSON *joff = add(b, lp, "text_offset", cJSON_CreateArray());
    for (int i = 0; i < n_pre + n; i++) {
        const vrt_api_token *t = i < n_pre ? &pre[i] : &toks[i - n_pre];
        add(b, jt, NULL, str(t->text));
        add(b, jl, NULL, f32(t->logprob));
        add(b, joff, NULL, num((double)offset));
        offset += t->text ? vrt_utf8_count(t->text, strlen(t->text)) : 0;
        if (i < n_pre) {
            /* Prompt positions: vLLM reports the prompt token itself. */
            if (!isfinite(t->logprob)) {
                add(b, jtop, NULL, cJSON_CreateNull());
            } else {
                cJSON *d = add(b, jtop, NULL, cJSON_CreateObject());
                char *k =
                    vrt_api_utf8_sanitize(t->text ? t->text : "", t->text ? strlen(t->text) : 0);
                if (!k)
                    b->ok = 0;
                else
                    add(b, d, k, f32(t->logprob));
                free(k);
            }
            continue;
        }
        /* The sampled token, then the top ones (vLLM always includes the
         * sampled token); the sampled token among the top ones is the same
         * entry (its text is the sampled token's); another token with the
         * same text keeps the first value. */
        cJSON *d = add(b, jtop, NULL, cJSON_CreateObject());
        for (int k = -1; k < (top ? n_top : 0); k++) {
            const vrt_api_token *c = k < 0 ? t : &top[(size_t)(i - n_pre) * n_top + k];
            const char *txt = c->id == t->id ? t->text : c->text;
            char *key = vrt_api_utf8_sanitize(txt ? txt : "", txt ? strlen(txt) : 0);
            if (!key) {
                b->ok = 0;
                break;
            }
            if (d && !cJSON_GetObjectItemCaseSensitive(d, key))
                add(b, d, key, f32(c->logprob));
            free(key);
        }
    }
    return lp;
}

/* Chat logprobs: {"content": [{token, logprob, bytes, top_logprobs}]}. */
static cJSON *chat_logprobs(jb *b, const vrt_api_token *toks, int n, const vrt_api_token *top,
                            int n_top, int want_top)
{
    cJSON *lp = cJSON_CreateObject();
    cJSON *content = add(b, lp, "content", cJSON_CreateArray());
    for (int i = 0; i < n; i++) {
        cJSON *e = add(b, content, NULL, cJSON_CreateObject());
        add(b, e, "token", str(toks[i].text));
        add(b, e, "logprob", f32(toks[i].logprob));
        add(b, e, "bytes", bytes_of(toks[i].text));
        cJSON *tl = add(b, e, "top_logprobs", cJSON_CreateArray());
        int k_n = top ? (want_top < n_top ? want_top : n_top) : 0;
        for (int k = 0; k < k_n; k++) {
            const vrt_api_token *c = &top[(size_t)i * n_top + k];
            /* The chosen token among the top ones reads as chosen. */
            const char *txt = c->id == toks[i].id ? toks[i].text : c->text;
            cJSON *x = add(b, tl, NULL, cJSON_CreateObject());
            add(b, x, "token", str(txt));
            add(b, x, "logprob", f32(c->logprob));
            add(b, x, "bytes", bytes_of(txt));
        }
    }
    return lp;
}

static cJSON *usage(jb *b, const vrt_api_result *res)
{
    cJSON *u = cJSON_CreateObject();
    add(b, u, "prompt_tokens", num(res->n_prompt_tokens));
    add(b, u, "completion_tokens", num(res->n_generated_tokens));
    add(b, u, "total_tokens", num((double)res->n_prompt_tokens + res->n_generated_tokens));
    return u;
}

static cJSON *oai_header(jb *b, const vrt_api_request *rq, const vrt_api_result *res,
                         const char *object)
{
    cJSON *o = cJSON_CreateObject();
    add(b, o, "id", str(res->id ? res->id : ""));
    add(b, o, "object", str(object));
    add(b, o, "created", num((double)res->created));
    add(b, o, "model", str(res->model ? res->model : (rq->model ? rq->model : "")));
    add(b, o, "system_fingerprint",
        res->system_fingerprint ? str(res->system_fingerprint) : cJSON_CreateNull());
    return o;
}

static cJSON *finish_json(const char *engine_reason)
{
    const char *f = oai_finish_reason(engine_reason);
    return f ? str(f) : cJSON_CreateNull();
}

char *vrt_api_render_completion(const vrt_api_request *rq, const vrt_api_result *res)
{
    jb b = {1};
    int chat = rq->api == VRT_API_OAI_CHAT;
    cJSON *o = oai_header(&b, rq, res, chat ? "chat.completion" : "text_completion");
    cJSON *choices = add(&b, o, "choices", cJSON_CreateArray());
    cJSON *c = add(&b, choices, NULL, cJSON_CreateObject());
    add(&b, c, "index", num(res->index));
    if (chat) {
        cJSON *m = add(&b, c, "message", cJSON_CreateObject());
        add(&b, m, "role", str("assistant"));
        add(&b, m, "content", str_n(res->text, res->text_len));
        add(&b, c, "logprobs",
            rq->logprobs > 0 ? chat_logprobs(&b, res->tokens, res->n_tokens, res->top, res->n_top,
                                             rq->top_logprobs)
                             : cJSON_CreateNull());
    } else {
        add(&b, c, "text", full_text(rq, res, rq->echo));
        int echo_lp = rq->echo && res->prefill;
        add(&b, c, "logprobs",
            rq->logprobs >= 0 ? completion_logprobs(&b, echo_lp ? res->prefill : NULL,
                                                    echo_lp ? res->n_prefill : 0, res->tokens,
                                                    res->n_tokens, res->top, res->n_top, 0)
                              : cJSON_CreateNull());
    }
    add(&b, c, "finish_reason", finish_json(res->finish_reason));
    add(&b, o, "usage", usage(&b, res));
    return finish_plain(&b, o);
}

char *vrt_api_render_oai_chunk(const vrt_api_request *rq, const vrt_api_result *meta,
                               const vrt_api_delta *d)
{
    jb b = {1};
    int chat = rq->api == VRT_API_OAI_CHAT;
    cJSON *o = oai_header(&b, rq, meta, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = add(&b, o, "choices", cJSON_CreateArray());
    cJSON *c = add(&b, choices, NULL, cJSON_CreateObject());
    add(&b, c, "index", num(meta->index));
    if (chat) {
        cJSON *delta = add(&b, c, "delta", cJSON_CreateObject());
        if (d->text_len || !d->finish_reason)
            add(&b, delta, "content", str_n(d->text, d->text_len));
        add(&b, c, "logprobs",
            rq->logprobs > 0 && d->n_tokens > 0
                ? chat_logprobs(&b, d->tokens, d->n_tokens, d->top, d->n_top, rq->top_logprobs)
                : cJSON_CreateNull());
    } else {
        add(&b, c, "text", str_n(d->text, d->text_len));
        add(&b, c, "logprobs",
            rq->logprobs >= 0 && d->n_tokens > 0
                ? completion_logprobs(&b, NULL, 0, d->tokens, d->n_tokens, d->top, d->n_top,
                                      d->text_offset)
                : cJSON_CreateNull());
    }
    add(&b, c, "finish_reason", finish_json(d->finish_reason));
    if (rq->include_usage)
        add(&b, o, "usage", cJSON_CreateNull());
    return finish(&b, o, "data: ", "\n\n");
}

char *vrt_api_render_oai_role_chunk(const vrt_api_request *rq, const vrt_api_result *meta)
{
    jb b = {1};
    cJSON *o = oai_header(&b, rq, meta, "chat.completion.chunk");
    cJSON *choices = add(&b, o, "choices", cJSON_CreateArray());
    cJSON *c = add(&b, choices, NULL, cJSON_CreateObject());
    add(&b, c, "index", num(meta->index));
    cJSON *delta = add(&b, c, "delta", cJSON_CreateObject());
    add(&b, delta, "role", str("assistant"));
    add(&b, delta, "content", str(""));
    add(&b, c, "logprobs", cJSON_CreateNull());
    add(&b, c, "finish_reason", cJSON_CreateNull());
    if (rq->include_usage)
        add(&b, o, "usage", cJSON_CreateNull());
    return finish(&b, o, "data: ", "\n\n");
}

char *vrt_api_render_oai_usage_chunk(const vrt_api_request *rq, const vrt_api_result *meta)
{
    jb b = {1};
    int chat = rq->api == VRT_API_OAI_CHAT;
    cJSON *o = oai_header(&b, rq, meta, chat ? "chat.completion.chunk" : "text_completion");
    add(&b, o, "choices", cJSON_CreateArray());
    add(&b, o, "usage", usage(&b, meta));
    return finish(&b, o, "data: ", "\n\n");
}

char *vrt_api_render_stream_error(int api_kind, int status, const char *type, const char *message)
{
    jb b = {1};
    cJSON *o = cJSON_CreateObject();
    if (vrt_api_is_openai(api_kind)) {
        cJSON *e = add(&b, o, "error", cJSON_CreateObject());
        add(&b, e, "message", str(message));
        add(&b, e, "type", str(type ? type : "internal_error"));
        add(&b, e, "param", cJSON_CreateNull());
        add(&b, e, "code", status ? num(status) : cJSON_CreateNull());
        return finish(&b, o, "data: ", "\n\n");
    }
    add(&b, o, "error", str(message));
    add(&b, o, "error_type", str(type ? type : "generation"));
    return finish(&b, o, "data:", "\n\n");
}

/* ---- info ----------------------------------------------------------------- */

char *vrt_api_render_info(const vrt_api_info *in)
{
    jb b = {1};
    cJSON *o = cJSON_CreateObject();
    add(&b, o, "model_id", str(in->model_id));
    add(&b, o, "model_sha", cJSON_CreateNull());
    add(&b, o, "model_dtype", str(in->model_dtype ? in->model_dtype : "float16"));
    add(&b, o, "model_device_type", str(in->model_device_type ? in->model_device_type : "cuda"));
    add(&b, o, "model_pipeline_tag", str("text-generation"));
    add(&b, o, "max_concurrent_requests", num(in->max_concurrent_requests));
    add(&b, o, "max_best_of", num(in->max_best_of > 0 ? in->max_best_of : 1));
    add(&b, o, "max_stop_sequences", num(in->max_stop_sequences));
    add(&b, o, "max_input_tokens", num(in->max_input_tokens));
    add(&b, o, "max_total_tokens", num(in->max_total_tokens));
    add(&b, o, "validation_workers", num(in->validation_workers));
    add(&b, o, "max_client_batch_size", num(in->max_client_batch_size));
    add(&b, o, "router", str("v100rt"));
    add(&b, o, "version", str(in->version));
    add(&b, o, "sha", cJSON_CreateNull());
    add(&b, o, "docker_label", cJSON_CreateNull());
    return finish_plain(&b, o);
}

static cJSON *model_card(jb *b, const vrt_api_info *in, const char *id)
{
    cJSON *m = cJSON_CreateObject();
    if (!m) {
        b->ok = 0;
        return NULL;
    }
    add(b, m, "id", str(id));
    add(b, m, "object", str("model"));
    add(b, m, "created", num((double)in->created));
    add(b, m, "owned_by", str("v100rt"));
    add(b, m, "root", str(in->model_root ? in->model_root : id));
    add(b, m, "parent", cJSON_CreateNull());
    add(b, m, "max_model_len", num(in->max_total_tokens));
    return m;
}

char *vrt_api_render_model(const vrt_api_info *in, const char *id)
{
    jb b = {1};
    return finish_plain(&b, model_card(&b, in, id));
}

char *vrt_api_render_models(const vrt_api_info *in)
{
    jb b = {1};
    cJSON *o = cJSON_CreateObject();
    add(&b, o, "object", str("list"));
    cJSON *data = add(&b, o, "data", cJSON_CreateArray());
    int n = in->model_names && in->n_model_names > 0 ? in->n_model_names : 1;
    for (int i = 0; i < n; i++) {
        const char *id =
            in->model_names && in->n_model_names > 0 ? in->model_names[i] : in->model_id;
        add(&b, data, NULL, model_card(&b, in, id));
    }
    return finish_plain(&b, o);
}
