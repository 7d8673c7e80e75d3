/* server.c — `v100rt serve`: routes, the request lifecycle between the
 * loop thread and the engine thread, loading, metrics and shutdown (see
 * server.h).
 *
 * One generation request (gen):
 *   loop:   parse + validate (api_req) -> chat template -> tokenize ->
 *           limits -> vrt_engine_submit (429 when overloaded) -> SSE header
 *   engine: events are copied into gen's queue; the first one posts a drain
 *   loop:   drain: tokens become SSE chunks (or accumulate), the final event
 *           becomes the last chunk or the JSON body; metrics; a log line.
 * A client disconnect cancels the engine request; gen is freed when the
 * engine's last event (always one per accepted request) has been drained.
 */
#include "server/server.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/engine.h"
#include "engine/runtime_int.h"
#include "server/api_req.h"
#include "server/api_res.h"
#include "server/chat_lua.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/route.h"
#include "tokenizer/chat.h"

#include <cJSON.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

typedef struct srv {
    const vrt_config *cfg;
    uv_loop_t loop;
    vrt_http_server *http;
    vrt_runtime *rt;
    vrt_engine *eng;
    int ready; /* model loaded, engine running */
    int load_failed;
    vrt_err load_err;
    uv_work_t load_work;
    vrt_metrics metrics;
    vrt_srv_metrics mh;
    uint64_t last_preemptions, last_steps, last_pc_queries, last_pc_hits;
    char model_name[256];      /* the reported name: names[0] */
    const char *names[1 + 32]; /* model.name, server.served_model_names (max_len 32) */
    int n_names;
    const char *chat_template; /* built-in template name */
    vrt_chat_lua *chat_lua;    /* model.chat_template as a Lua function, or NULL */
    const char *bos_text, *eos_text;
    int64_t started;
    uv_signal_t sig_term, sig_int;
    uv_timer_t drain_timer;
    int draining;
    double drain_deadline;
    int exit_code;
    const char *port_file;
    int n_gens; /* generation requests alive */
} srv;

/* ---- one generation request ------------------------------------------------ */

typedef struct qev { /* an engine event, copied for the loop thread */
    struct qev *next;
    int choice; /* which choice (OpenAI n) it belongs to */
    int kind;
    int32_t token;
    float logprob;
    int special, index;
    char *text;
    size_t text_len;
    int n_top;
    int32_t top_ids[VRT_SAMPLE_MAX_LOGPROBS];
    float top_lp[VRT_SAMPLE_MAX_LOGPROBS];
    char finish[16];
    int n_prompt, n_gen;
    uint64_t seed;
    double queue_s, ttft_s, total_s;
    float *prompt_lp;
    int err_code;
    char *err_msg;
} qev;

struct gen;

/* One choice of a request (OpenAI `n`; TGI requests have one): one engine
 * request and what it generated. */
typedef struct choice {
    struct gen *g;
    int idx;
    uint64_t engine_id, seed;
    int submitted, done;
    char finish[16];
    vrt_strbuf text; /* generated so far */
    vrt_api_token *toks;
    vrt_api_token *top; /* [n_toks][g->n_top] */
    int n_toks;
    /* The capacities (elements) of toks and top. */
    size_t cap_toks, cap_top;
    size_t chars_out; /* characters already streamed (completions text_offset) */
    int echoed;       /* completions stream with echo: the prompt was sent */
    int held;         /* TGI stream: the last token event is held back */
    float *prompt_lp; /* prompt logprobs (TGI decoder_input_details, OpenAI echo),
                         from the finish event */
    double queue_s, ttft_s;
    /* OpenAI logprobs: the engine's detokenizer replayed (primed with the
     * prompt, fed the chosen tokens), so that each alternative's text is
     * what it would have added in the chosen token's place. */
    vrt_detok ctx;
    int has_ctx;
} choice;

typedef struct gen {
    srv *s;
    vrt_http_res *res; /* our reference; NULL once released */
    vrt_api_request rq;
    choice *ch; /* [n_ch] */
    int n_ch, n_submitted, n_final;
    int client_gone;
    int started;   /* stream: the SSE response has begun */
    int responded; /* an error was sent: the other choices are cancelled */
    int fail;      /* -1 or the vrt_fail_kind of the first failure */
    double t_arrival, t_last_token;
    char id[48];
    const char *model;   /* the name responses report (vrt_api_model_name) */
    int32_t *prompt_ids; /* [n_prompt] after truncation */
    int n_prompt;
    char *prompt_text; /* for echo / return_full_text */
    int n_top;
    /* engine -> loop queue */
    pthread_mutex_t mu;
    qev *q_head, *q_tail;
    int posted;
} gen;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void qev_free(qev *q)
{
    if (!q)
        return;
    free(q->text);
    free(q->err_msg);
    free(q->prompt_lp);
    free(q);
}

static void choice_free(choice *c, int n_top)
{
    if (c->has_ctx)
        vrt_detok_free(&c->ctx);
    vrt_strbuf_free(&c->text);
    for (int i = 0; i < c->n_toks; i++)
        free((char *)c->toks[i].text);
    free(c->toks);
    if (c->top) {
        for (int i = 0; i < c->n_toks * n_top; i++)
            free((char *)c->top[i].text);
        free(c->top);
    }
    free(c->prompt_lp);
}

static void gen_free(gen *g)
{
    if (g->res)
        vrt_http_res_release(g->res);
    vrt_api_request_free(&g->rq);
    free(g->prompt_ids);
    free(g->prompt_text);
    for (int i = 0; g->ch && i < g->n_ch; i++)
        choice_free(&g->ch[i], g->n_top);
    free(g->ch);
    qev *q = g->q_head;
    while (q) {
        qev *n = q->next;
        qev_free(q);
        q = n;
    }
    pthread_mutex_destroy(&g->mu);
    g->s->n_gens--;
    free(g);
}

static char *piece_text(srv *s, int32_t id)
{
    /* Text of one token on its own (for TGI token.text of special tokens and
     * for top tokens). */
    char *t = NULL;
    size_t n = 0;
    vrt_err err = {0};
    if (vrt_tokenizer_decode(s->rt->tok, &id, 1, 0, &t, &n, &err) != 0)
        return strdup("");
    return t;
}

/* The text id would add after what d has seen (d is left as it was): how
 * the engine's detokenizer turns a chosen token into text, so that an
 * alternative reads like the chosen token would have ("▁the" after "said"
 * is " the", not "the" as decoded alone). Text the detokenizer holds back
 * (part of a character, a skipped special token) is the token decoded
 * alone instead ("\ufffd", "</s>"). */
static char *text_in_context(srv *s, const vrt_detok *d, int32_t id)
{
    vrt_detok c = *d;
    c.ids = malloc((d->cap ? d->cap : 1) * sizeof *c.ids);
    c.prefix = d->prefix ? malloc(d->prefix_len + 1) : NULL;
    char *piece = NULL;
    size_t len = 0;
    vrt_err err = {0};
    if (c.ids && (!d->prefix || c.prefix)) {
        if (d->n)
            memcpy(c.ids, d->ids, d->n * sizeof *c.ids);
        if (d->prefix)
            memcpy(c.prefix, d->prefix, d->prefix_len + 1);
        if (!vrt_detok_knows(&c, id) || vrt_detok_push(&c, id, &piece, &len, &err) != 0)
            piece = NULL;
    }
    vrt_detok_free(&c);
    if (piece && len > 0)
        return piece;
    free(piece);
    return piece_text(s, id);
}

/* For the OpenAI routes, the text of each of ids[0..n) (a prompt, for echo
 * with logprobs) as it reads in the decoded text: what the token adds to
 * decode(ids) without special tokens, in context; special tokens read as
 * themselves. NULL entries when out of memory. */
static char **prompt_texts(srv *s, const int32_t *ids, int n)
{
    char **out = calloc((size_t)(n > 0 ? n : 1), sizeof *out);
    if (!out)
        return NULL;
    vrt_detok d;
    vrt_detok_init(&d, s->rt->tok, 1);
    for (int i = 0; i < n; i++) {
        char *piece = NULL;
        size_t len = 0;
        vrt_err err = {0};
        if (vrt_tokenizer_is_special(s->rt->tok, ids[i]) || !vrt_detok_knows(&d, ids[i]) ||
            vrt_detok_push(&d, ids[i], &piece, &len, &err) != 0) {
            free(piece);
            piece = piece_text(s, ids[i]);
        }
        out[i] = piece;
    }
    vrt_detok_free(&d);
    return out;
}

/* ---- responses --------------------------------------------------------------- */

static void respond_json(vrt_http_res *r, int status, char *body)
{
    if (!body) {
        vrt_http_respond_error(r, 500, "internal", "out of memory");
        return;
    }
    vrt_http_respond(r, status, "application/json", body, strlen(body));
    free(body);
}

static void respond_api_error(vrt_http_res *r, int api, const vrt_api_error *e)
{
    respond_json(r, e->status, vrt_api_error_body(api, e));
}

/* A prompt the tokenizer could not encode: its message (which names the
 * tokenizer's path) goes to the log; the client gets 422 / 400 (the text
 * made a pre-tokenizer regex reach its match limit) or 500 (out of memory)
 * without it. e is filled for the caller to send. */
static void tokenize_failure(int api, const char *id, const vrt_err *err, vrt_api_error *e)
{
    VRT_WARN("request %s: tokenizing the prompt failed: %s", id ? id : "(tokenize)", err->msg);
    if (err->code == VRT_ENOMEM) {
        vrt_api_error_set(e, api, 500, NULL,
                          "out of memory while tokenizing the prompt; see the server log");
        snprintf(e->type, sizeof e->type, "%s",
                 vrt_api_is_openai(api) ? "internal_server_error" : "internal");
    } else {
        vrt_api_error_set(e, api, 0, vrt_api_is_openai(api) ? "prompt" : "inputs",
                          "the tokenizer cannot encode this text (a pre-tokenizer pattern "
                          "reached its match limit); see the server log");
    }
}

static void respond_tokenize_failure(vrt_http_res *res, int api, const char *id, const vrt_err *err)
{
    vrt_api_error e;
    tokenize_failure(api, id, err, &e);
    respond_api_error(res, api, &e);
}

static void stream_write(gen *g, char *chunk)
{
    if (chunk) {
        vrt_http_stream_write(g->res, chunk, strlen(chunk));
        free(chunk);
    }
}

static void fill_result(gen *g, choice *c, vrt_api_result *res, const char *finish)
{
    memset(res, 0, sizeof *res);
    res->id = g->id;
    res->model = g->model ? g->model : g->s->model_name;
    res->created = g->s->started;
    res->prompt = g->prompt_text;
    res->index = c->idx;
    res->text = c->text.p ? c->text.p : "";
    res->text_len = c->text.len;
    res->finish_reason = finish;
    res->seed = c->seed;
    res->has_seed = g->rq.params.sampling.do_sample;
    res->n_prompt_tokens = g->n_prompt;
    res->n_generated_tokens = c->n_toks;
    res->tokens = c->toks;
    res->n_tokens = c->n_toks;
    res->top = g->n_top ? c->top : NULL;
    res->n_top = g->n_top;
}

static int add_token(gen *g, choice *c, const qev *q)
{
    size_t need = (size_t)c->n_toks + 1;
    if (vrt_grow(&c->toks, &c->cap_toks, need, sizeof *c->toks) ||
        (g->n_top && vrt_grow(&c->top, &c->cap_top, need * (size_t)g->n_top, sizeof *c->top)))
        return VRT_ENOMEM;
    vrt_api_token *t = &c->toks[c->n_toks];
    t->id = q->token;
    t->logprob = q->logprob;
    t->special = q->special;
    if (q->special)
        t->text = piece_text(g->s, q->token);
    else
        t->text = q->text ? strndup(q->text, q->text_len) : strdup("");
    /* Alternatives: in the chosen token's context on the OpenAI routes
     * (vLLM); decoded alone for TGI's top_tokens, as TGI does. */
    for (int j = 0; j < g->n_top; j++) {
        vrt_api_token *tt = &c->top[(size_t)c->n_toks * g->n_top + j];
        int have = j < q->n_top;
        tt->id = have ? q->top_ids[j] : 0;
        tt->logprob = have ? q->top_lp[j] : NAN;
        tt->special = have ? vrt_tokenizer_is_special(g->s->rt->tok, tt->id) : 0;
        tt->text = !have        ? strdup("")
                   : c->has_ctx ? text_in_context(g->s, &c->ctx, tt->id)
                                : piece_text(g->s, tt->id);
    }
    if (c->has_ctx && vrt_detok_knows(&c->ctx, q->token)) {
        char *piece = NULL;
        vrt_err err = {0};
        if (vrt_detok_push(&c->ctx, q->token, &piece, NULL, &err) != 0)
            VRT_WARN("request %s: logprobs context: %s", g->id, err.msg);
        free(piece);
    }
    c->n_toks++;
    return 0;
}

/* TGI streams send each token event once the next event is known. */
static void tgi_flush_held(gen *g, choice *c, const vrt_api_result *final)
{
    if (!c->held)
        return;
    int i = c->n_toks - 1;
    stream_write(g, vrt_api_render_tgi_stream_event(&g->rq, &c->toks[i], i,
                                                    g->n_top ? &c->top[(size_t)i * g->n_top] : NULL,
                                                    g->n_top, final));
    c->held = 0;
}

static int fail_kind_of(int code)
{
    switch (code) {
    case VRT_ECANCELED: return VRT_FAIL_CANCELLED;
    case VRT_EOVERLOADED: return VRT_FAIL_OVERLOADED;
    case VRT_EINVAL:
    case VRT_ERANGE: return VRT_FAIL_VALIDATION;
    }
    return VRT_FAIL_GENERATION;
}

static int total_tokens(const gen *g)
{
    int n = 0;
    for (int i = 0; i < g->n_ch; i++)
        n += g->ch[i].n_toks;
    return n;
}

static void log_request(gen *g, int status, const char *finish, double ttft)
{
    const vrt_http_req *rq = g->res ? vrt_http_res_req(g->res) : NULL;
    VRT_INFO("request %s %s %s status=%d prompt_tokens=%d generated_tokens=%d ttft=%.3fs "
             "total=%.3fs%s%s",
             g->id, rq ? rq->method : "?", rq ? rq->path : "?", status, g->n_prompt,
             g->ch ? total_tokens(g) : 0, ttft, now_s() - g->t_arrival, finish ? " finish=" : "",
             finish ? finish : "");
}

static void start_stream(gen *g)
{
    if (g->started)
        return;
    g->started = 1;
    vrt_http_res_set_header(g->res, "Cache-Control", "no-cache");
    vrt_http_stream_begin(g->res, 200, "text/event-stream");
    if (g->rq.api == VRT_API_OAI_CHAT)
        for (int i = 0; i < g->n_ch; i++) {
            vrt_api_result meta;
            fill_result(g, &g->ch[i], &meta, NULL);
            stream_write(g, vrt_api_render_oai_role_chunk(&g->rq, &meta));
        }
}

/* The status, error_type and message of a failed engine request: a policy
 * hook that failed is 500 "policy", a refusal (admit hook) 429
 * "overloaded", anything else 424 "generation" (TGI) / 500 (OpenAI).
 * A 5xx or 424 tells the client what failed, not why: the engine's message
 * can hold a Lua traceback and the server's file paths, so it goes to the
 * log with the request id and the client gets a short message naming the
 * error_type and that id. */
static void send_error(gen *g, const qev *q)
{
    int status = q->err_code == VRT_EPOLICY       ? 500
                 : q->err_code == VRT_EOVERLOADED ? 429
                 : vrt_api_is_openai(g->rq.api)   ? 500
                                                  : 424;
    const char *type = q->err_code == VRT_EPOLICY       ? "policy"
                       : q->err_code == VRT_EOVERLOADED ? "overloaded"
                                                        : "generation";
    const char *detail = q->err_msg ? q->err_msg : "generation failed";
    char msg[1024];
    if (q->err_code == VRT_EPOLICY) {
        /* The engine logged the whole message (with the Lua traceback) under
         * this request's id; the client learns which request, not the
         * operator's hook code or its error text. */
        snprintf(msg, sizeof msg,
                 "the scheduling policy failed for this request (error_type policy); see the "
                 "server log (request %s)",
                 g->id);
    } else if (status >= 500 || status == 424) {
        VRT_ERROR("request %s failed (error_type %s): %s", g->id, type, detail);
        snprintf(msg, sizeof msg,
                 "Request failed during generation: %s (error_type %s); see the server log "
                 "(request %s)",
                 vrt_strerror(q->err_code), type, g->id);
    } else {
        snprintf(msg, sizeof msg, "%s", detail);
    }
    if (g->started) {
        tgi_flush_held(g, &g->ch[0], NULL);
        stream_write(g, vrt_api_render_stream_error(g->rq.api, status, type, msg));
        if (vrt_api_is_openai(g->rq.api))
            vrt_http_stream_write(g->res, VRT_API_SSE_DONE, strlen(VRT_API_SSE_DONE));
        vrt_http_stream_end(g->res);
        status = 200;
    } else if (vrt_api_is_openai(g->rq.api)) {
        vrt_api_error e;
        vrt_api_error_set(&e, g->rq.api, status, NULL, "%s", msg);
        snprintf(e.type, sizeof e.type, "%s",
                 status == 429                                 ? "RateLimitError"
                 : status == 500 && q->err_code == VRT_EPOLICY ? "policy"
                                                               : "internal_server_error");
        respond_api_error(g->res, g->rq.api, &e);
    } else {
        vrt_http_respond_error(g->res, status, type, msg);
    }
    log_request(g, status, NULL, 0.0);
}

/* Cancels the choices still running (after an error or a disconnect). */
static void cancel_rest(gen *g)
{
    for (int i = 0; i < g->n_ch; i++)
        if (g->ch[i].submitted && !g->ch[i].done && g->s->eng)
            vrt_engine_cancel(g->s->eng, g->ch[i].engine_id);
}

/* Sends the OpenAI stream chunk d of choice c: completions with echo send
 * the prompt first, in the choice's first chunk (as vLLM); text_offset
 * counts characters, the prompt's included. */
static void oai_stream_chunk(gen *g, choice *c, const vrt_api_result *meta, vrt_api_delta *d)
{
    size_t gen_chars = vrt_utf8_count(d->text, d->text_len);
    vrt_strbuf echoed = {0};
    if (g->rq.echo && g->rq.api == VRT_API_OAI_COMPLETIONS && !c->echoed) {
        const char *pt = g->prompt_text ? g->prompt_text : "";
        vrt_strbuf_puts(&echoed, pt);
        vrt_strbuf_put(&echoed, d->text, d->text_len);
        if (!echoed.oom) {
            d->text = echoed.p;
            d->text_len = echoed.len;
            c->chars_out += vrt_utf8_count(pt, strlen(pt));
        }
        c->echoed = 1;
    }
    d->text_offset = c->chars_out;
    stream_write(g, vrt_api_render_oai_chunk(&g->rq, meta, d));
    c->chars_out += gen_chars;
    vrt_strbuf_free(&echoed);
}

static void on_choice_final(gen *g, choice *c, qev *q)
{
    c->done = 1;
    g->n_final++;
    if (q->kind == VRT_EV_ERROR) {
        if (g->fail < 0)
            g->fail = g->client_gone ? VRT_FAIL_CANCELLED : fail_kind_of(q->err_code);
        if (!g->responded && !g->client_gone && !vrt_http_res_closed(g->res)) {
            g->responded = 1;
            send_error(g, q);
        }
        cancel_rest(g);
        return;
    }
    c->queue_s = q->queue_s;
    c->ttft_s = q->ttft_s;
    snprintf(c->finish, sizeof c->finish, "%s", q->finish);
    /* The text still held back by the detokenizer / stop checker belongs to
     * the last token. */
    if (q->text_len) {
        vrt_strbuf_put(&c->text, q->text, q->text_len);
        if (c->n_toks > 0 && !c->toks[c->n_toks - 1].special) {
            vrt_api_token *t = &c->toks[c->n_toks - 1];
            vrt_strbuf nt = {0};
            vrt_strbuf_puts(&nt, t->text);
            vrt_strbuf_put(&nt, q->text, q->text_len);
            if (!nt.oom) {
                free((char *)t->text);
                t->text = nt.p;
            } else {
                vrt_strbuf_free(&nt);
            }
        }
    }
    c->prompt_lp = q->prompt_lp;
    q->prompt_lp = NULL;
    if (g->responded || g->client_gone || !g->rq.stream)
        return;
    start_stream(g);
    vrt_api_result res;
    fill_result(g, c, &res, c->finish);
    if (vrt_api_is_openai(g->rq.api)) {
        vrt_api_delta d = {
            .text = q->text ? q->text : "", .text_len = q->text_len, .finish_reason = c->finish};
        oai_stream_chunk(g, c, &res, &d);
    } else {
        tgi_flush_held(g, c, &res);
    }
}

/* Merges the one-choice bodies of n choices into one (choices, usage). */
static char *merge_choices(gen *g, char **bodies)
{
    cJSON *root = cJSON_Parse(bodies[0]);
    cJSON *choices = root ? cJSON_GetObjectItem(root, "choices") : NULL;
    for (int i = 1; choices && i < g->n_ch; i++) {
        cJSON *o = cJSON_Parse(bodies[i]);
        cJSON *arr = o ? cJSON_GetObjectItem(o, "choices") : NULL;
        cJSON *c = arr ? cJSON_DetachItemFromArray(arr, 0) : NULL;
        if (c)
            cJSON_AddItemToArray(choices, c);
        cJSON_Delete(o);
    }
    cJSON *usage = root ? cJSON_GetObjectItem(root, "usage") : NULL;
    if (usage) {
        int gen_tokens = total_tokens(g);
        cJSON_ReplaceItemInObject(usage, "completion_tokens", cJSON_CreateNumber(gen_tokens));
        cJSON_ReplaceItemInObject(usage, "total_tokens",
                                  cJSON_CreateNumber(g->n_prompt + gen_tokens));
    }
    char *out = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return out;
}

/* All choices ended: the response (unless an error was sent), metrics, log. */
static void complete(gen *g)
{
    srv *s = g->s;
    choice *c0 = &g->ch[0];
    vrt_request_record rec = {.fail = g->fail,
                              .queue_s = c0->queue_s,
                              .inference_s = now_s() - g->t_arrival - c0->queue_s,
                              .e2e_s = now_s() - g->t_arrival,
                              .input_tokens = g->n_prompt,
                              .generated_tokens = total_tokens(g)};
    if (g->client_gone && rec.fail < 0)
        rec.fail = VRT_FAIL_CANCELLED;
    vrt_srv_metrics_request_done(&s->mh, &rec);
    if (g->responded || g->client_gone || vrt_http_res_closed(g->res)) {
        if (!g->responded)
            log_request(g, 499, NULL, 0.0);
        return;
    }
    if (g->rq.stream) {
        start_stream(g);
        if (vrt_api_is_openai(g->rq.api)) {
            if (g->rq.include_usage) {
                vrt_api_result res;
                fill_result(g, c0, &res, c0->finish);
                res.n_generated_tokens = total_tokens(g);
                stream_write(g, vrt_api_render_oai_usage_chunk(&g->rq, &res));
            }
            vrt_http_stream_write(g->res, VRT_API_SSE_DONE, strlen(VRT_API_SSE_DONE));
        }
        vrt_http_stream_end(g->res);
    } else {
        char **bodies = calloc((size_t)g->n_ch, sizeof *bodies);
        vrt_api_token *prefill = NULL;
        /* The prompt tokens (TGI decoder_input_details, OpenAI echo with
         * logprobs): the same prompt for every choice, each with the
         * logprobs its engine request reported. */
        for (int i = 0; bodies && i < g->n_ch; i++) {
            vrt_api_result res;
            fill_result(g, &g->ch[i], &res, g->ch[i].finish);
            if (g->rq.params.prompt_logprobs && g->ch[i].prompt_lp && !prefill && g->n_prompt > 0)
                prefill = calloc((size_t)g->n_prompt, sizeof *prefill);
            if (prefill && g->ch[i].prompt_lp && !prefill[0].text) {
                /* TGI: each token decoded alone (as TGI's prefill); OpenAI
                 * echo: as the tokens read in the echoed prompt. */
                char **texts = vrt_api_is_openai(g->rq.api)
                                   ? prompt_texts(s, g->prompt_ids, g->n_prompt)
                                   : NULL;
                for (int k = 0; k < g->n_prompt; k++) {
                    prefill[k].id = g->prompt_ids[k];
                    prefill[k].text =
                        texts && texts[k] ? texts[k] : piece_text(s, g->prompt_ids[k]);
                    if (texts)
                        texts[k] = NULL;
                }
                for (int k = 0; texts && k < g->n_prompt; k++)
                    free(texts[k]);
                free(texts);
            }
            if (prefill && g->ch[i].prompt_lp) {
                for (int k = 0; k < g->n_prompt; k++)
                    prefill[k].logprob = g->ch[i].prompt_lp[k];
                res.prefill = prefill;
                res.n_prefill = g->n_prompt;
            }
            bodies[i] = vrt_api_is_openai(g->rq.api) ? vrt_api_render_completion(&g->rq, &res)
                                                     : vrt_api_render_generate(&g->rq, &res);
        }
        char *body = NULL;
        if (bodies && g->n_ch == 1)
            body = bodies[0], bodies[0] = NULL;
        else if (bodies)
            body = merge_choices(g, bodies);
        respond_json(g->res, 200, body);
        for (int i = 0; bodies && i < g->n_ch; i++)
            free(bodies[i]);
        free(bodies);
        if (prefill) {
            for (int k = 0; k < g->n_prompt; k++)
                free((char *)prefill[k].text);
            free(prefill);
        }
    }
    log_request(g, 200, c0->finish[0] ? c0->finish : NULL, c0->ttft_s);
}

static void on_token(gen *g, choice *c, qev *q)
{
    srv *s = g->s;
    double t = now_s();
    if (c->idx == 0) {
        if (c->n_toks == 0)
            vrt_metric_observe(s->mh.ttft, t - g->t_arrival);
        else
            vrt_metric_observe(s->mh.itl, t - g->t_last_token);
        g->t_last_token = t;
    }
    if (g->client_gone || g->responded)
        return;
    if (!q->special)
        vrt_strbuf_put(&c->text, q->text ? q->text : "", q->text_len);
    if (g->rq.stream && !vrt_api_is_openai(g->rq.api))
        tgi_flush_held(g, c, NULL);
    if (add_token(g, c, q) != 0)
        return;
    if (!g->rq.stream)
        return;
    start_stream(g);
    if (vrt_api_is_openai(g->rq.api)) {
        if (q->text_len == 0 && g->rq.logprobs < 0 && (c->echoed || !g->rq.echo))
            return; /* nothing to say yet */
        vrt_api_result meta;
        fill_result(g, c, &meta, NULL);
        int i = c->n_toks - 1;
        vrt_api_delta d = {.text = q->text ? q->text : "",
                           .text_len = q->special ? 0 : q->text_len,
                           .tokens = &c->toks[i],
                           .n_tokens = g->rq.logprobs >= 0 ? 1 : 0,
                           .top = g->n_top ? &c->top[(size_t)i * g->n_top] : NULL,
                           .n_top = g->n_top};
        oai_stream_chunk(g, c, &meta, &d);
    } else {
        c->held = 1;
    }
}

static void drain(void *ud)
{
    gen *g = ud;
    pthread_mutex_lock(&g->mu);
    qev *q = g->q_head;
    g->q_head = g->q_tail = NULL;
    g->posted = 0;
    pthread_mutex_unlock(&g->mu);
    while (q) {
        qev *n = q->next;
        choice *c = &g->ch[q->choice];
        if (q->kind == VRT_EV_TOKEN)
            on_token(g, c, q);
        else
            on_choice_final(g, c, q);
        qev_free(q);
        q = n;
    }
    if (g->n_final == g->n_submitted) {
        complete(g);
        gen_free(g);
    }
}

/* Engine thread: copy the event and post a drain unless one is pending. */
static void on_engine_event(void *ud, const vrt_engine_event *ev)
{
    choice *c = ud;
    gen *g = c->g;
    qev *q = calloc(1, sizeof *q);
    if (!q) {
        VRT_ERROR("server: out of memory copying an engine event");
        return;
    }
    q->choice = c->idx;
    q->kind = ev->kind;
    q->token = ev->token;
    q->logprob = ev->logprob;
    q->special = ev->special;
    q->index = ev->index;
    if (ev->text_len) {
        q->text = malloc(ev->text_len + 1);
        if (q->text) {
            memcpy(q->text, ev->text, ev->text_len);
            q->text[ev->text_len] = 0;
            q->text_len = ev->text_len;
        }
    }
    q->n_top = ev->n_top < VRT_SAMPLE_MAX_LOGPROBS ? ev->n_top : VRT_SAMPLE_MAX_LOGPROBS;
    for (int i = 0; i < q->n_top; i++) {
        q->top_ids[i] = ev->top_ids[i];
        q->top_lp[i] = ev->top_logprobs[i];
    }
    if (ev->finish_reason)
        snprintf(q->finish, sizeof q->finish, "%s", ev->finish_reason);
    q->n_prompt = ev->n_prompt_tokens;
    q->n_gen = ev->n_generated_tokens;
    q->seed = ev->seed;
    q->queue_s = ev->queue_s;
    q->ttft_s = ev->ttft_s;
    q->total_s = ev->total_s;
    if (ev->kind == VRT_EV_FINISH && ev->prompt_logprobs && ev->n_prompt_tokens > 0) {
        q->prompt_lp = malloc((size_t)ev->n_prompt_tokens * sizeof(float));
        if (q->prompt_lp)
            memcpy(q->prompt_lp, ev->prompt_logprobs, (size_t)ev->n_prompt_tokens * sizeof(float));
    }
    q->err_code = ev->err_code;
    if (ev->err_msg)
        q->err_msg = strdup(ev->err_msg);
    pthread_mutex_lock(&g->mu);
    if (g->q_tail)
        g->q_tail->next = q;
    else
        g->q_head = q;
    g->q_tail = q;
    int post = !g->posted;
    g->posted = 1;
    pthread_mutex_unlock(&g->mu);
    if (post && vrt_http_server_post(g->s->http, drain, g) != 0)
        VRT_ERROR("server: cannot post an engine event to the loop");
}

static void on_client_gone(void *ud)
{
    gen *g = ud;
    g->client_gone = 1;
    cancel_rest(g);
}

/* Most choices one request may ask for (OpenAI n). */
#define MAX_CHOICES 16

/* The generation routes (TGI /generate, /generate_stream, /; OpenAI
 * completions and chat): g keeps its own reference on res until the
 * engine's last event is drained. */
static void route_generate(void *ud, const vrt_route *rt, const vrt_http_req *req,
                           vrt_http_res *res, const char *id)
{
    srv *s = ud;
    int api = rt->kind;
    vrt_metric_inc(s->mh.request_count);
    gen *g = calloc(1, sizeof *g);
    if (!g) {
        vrt_http_respond_error(res, 500, "internal", "out of memory");
        return;
    }
    s->n_gens++;
    g->s = s;
    vrt_http_res_retain(res);
    g->res = res;
    g->fail = -1;
    g->t_arrival = now_s();
    pthread_mutex_init(&g->mu, NULL);
    static uint64_t seq;
    snprintf(g->id, sizeof g->id, "%s-%llx%06llx", api == VRT_API_OAI_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)s->started, (unsigned long long)++seq);
    vrt_api_error e = {0};
    vrt_request_record rec = {.fail = VRT_FAIL_VALIDATION};
    if (vrt_api_parse(&g->rq, api, req->body, req->body_len, &e) != 0) {
        respond_api_error(res, api, &e);
        goto rejected;
    }
    if (g->rq.n > MAX_CHOICES) {
        vrt_api_error_set(&e, api, 0, "n", "n must be at most %d, got %d.", MAX_CHOICES, g->rq.n);
        respond_api_error(res, api, &e);
        goto rejected;
    }
    /* "model": any value (TGI), or a served name (server.strict_model_name). */
    vrt_api_models models = {.names = s->names,
                             .n_names = s->n_names,
                             .paths = {s->cfg->model.path, s->rt->model_dir},
                             .strict = s->cfg->server.strict_model_name};
    if (vrt_api_model_name(&models, api, vrt_api_is_openai(api) ? g->rq.model : NULL, &g->model,
                           &e) != 0) {
        respond_api_error(res, api, &e);
        goto rejected;
    }
    /* The prompt: a chat rendered with the template, or text, or ids. */
    vrt_err err = {0};
    int32_t *ids = NULL;
    int n = 0, add_special = 1;
    const char *text = g->rq.prompt;
    char *rendered = NULL;
    if (api == VRT_API_OAI_CHAT) {
        int crc =
            s->chat_lua
                ? vrt_chat_lua_render(s->chat_lua, g->rq.messages, g->rq.n_messages, s->bos_text,
                                      s->eos_text, g->rq.add_generation_prompt, &rendered, &err)
                : vrt_chat_render(s->chat_template, g->rq.messages, g->rq.n_messages, s->bos_text,
                                  s->eos_text, g->rq.add_generation_prompt, &rendered, &err);
        if (crc != 0) {
            vrt_api_error_set(&e, api, 400, "messages", "%s", err.msg);
            respond_api_error(res, api, &e);
            rec.fail = VRT_FAIL_TEMPLATE;
            goto rejected;
        }
        text = rendered;
        add_special = 0; /* the template wrote BOS as text */
    }
    if (g->rq.prompt_ids) {
        int V = vrt_runtime_vocab_size(s->rt);
        for (int i = 0; i < g->rq.n_prompt_ids; i++)
            if (g->rq.prompt_ids[i] < 0 || g->rq.prompt_ids[i] >= V) {
                vrt_api_error_set(&e, api, 0, "prompt",
                                  "token id %d is outside the vocabulary (0..%d)",
                                  g->rq.prompt_ids[i], V - 1);
                respond_api_error(res, api, &e);
                goto rejected;
            }
        ids = malloc((size_t)(g->rq.n_prompt_ids ? g->rq.n_prompt_ids : 1) * sizeof *ids);
        if (ids)
            memcpy(ids, g->rq.prompt_ids, (size_t)g->rq.n_prompt_ids * sizeof *ids);
        n = g->rq.n_prompt_ids;
        char *t = NULL;
        size_t tl;
        if (ids && vrt_runtime_detokenize(s->rt, ids, n, 0, &t, &tl, &err) == 0)
            g->prompt_text = t;
    } else {
        if (vrt_runtime_tokenize(s->rt, text ? text : "", text ? strlen(text) : 0, add_special,
                                 &ids, &n, &err) != 0) {
            free(rendered);
            tokenize_failure(api, g->id, &err, &e);
            respond_api_error(res, api, &e);
            goto rejected;
        }
        g->prompt_text = strdup(text ? text : "");
    }
    free(rendered);
    vrt_api_limits lim = {.max_input_tokens = s->rt->max_input,
                          .max_total_tokens = s->rt->max_total,
                          .max_stop_sequences = 4,
                          .max_top_n_tokens = 5};
    int n_input = n;
    if (vrt_api_check_limits(&g->rq, &lim, n, &n_input, &e) != 0) {
        free(ids);
        respond_api_error(res, api, &e);
        goto rejected;
    }
    if (n_input < n) { /* truncate: keep the last n_input tokens */
        memmove(ids, ids + (n - n_input), (size_t)n_input * sizeof *ids);
        n = n_input;
    }
    g->prompt_ids = ids;
    g->n_prompt = n;
    g->n_top = g->rq.top_n_tokens > 0                                 ? g->rq.top_n_tokens
               : g->rq.logprobs > 0 && api == VRT_API_OAI_COMPLETIONS ? g->rq.logprobs
               : api == VRT_API_OAI_CHAT && g->rq.logprobs > 0        ? g->rq.top_logprobs
                                                                      : 0;
    if (g->n_top > VRT_SAMPLE_MAX_LOGPROBS)
        g->n_top = VRT_SAMPLE_MAX_LOGPROBS;
    g->rq.params.sampling.n_logprobs = g->n_top;
    /* params.prompt_logprobs is the parser's: TGI decoder_input_details
     * with details, OpenAI completions echo with logprobs. */
    const char *prio = vrt_http_req_header(req, "x-priority");
    if (prio)
        g->rq.params.priority = atoi(prio);
    const char *tenant = vrt_http_req_header(req, "x-tenant");
    g->rq.params.tenant = tenant ? tenant : g->rq.user ? g->rq.user : req->remote;
    g->rq.params.log_id = g->id;
    g->n_ch = g->rq.n > 1 ? g->rq.n : 1;
    g->ch = calloc((size_t)g->n_ch, sizeof *g->ch);
    if (!g->ch) {
        vrt_http_respond_error(res, 500, "internal", "out of memory");
        goto rejected;
    }
    /* One engine request per choice; choice i samples with seed + i (or its
     * own random seed). */
    uint64_t seed0 = g->rq.seed_set ? g->rq.params.sampling.seed : vrt_rng_random_seed();
    int rc = 0;
    for (int i = 0; i < g->n_ch; i++) {
        choice *c = &g->ch[i];
        c->g = g;
        c->idx = i;
        c->seed = g->rq.seed_set ? seed0 + (uint64_t)i : (i == 0 ? seed0 : vrt_rng_random_seed());
        g->rq.params.sampling.seed = c->seed;
        if (g->n_top > 0 && vrt_api_is_openai(api)) {
            /* As the engine's detokenizer: special tokens skipped, primed. */
            vrt_detok_init(&c->ctx, s->rt->tok, 1);
            c->has_ctx = 1;
            if (vrt_detok_prime(&c->ctx, g->prompt_ids, (size_t)g->n_prompt, &err) != 0)
                VRT_WARN("request %s: logprobs context: %s", g->id, err.msg);
        }
        rc = vrt_engine_submit(s->eng, g->prompt_ids, g->n_prompt, &g->rq.params, on_engine_event,
                               c, &c->engine_id, &err);
        if (rc)
            break;
        c->submitted = 1;
        g->n_submitted++;
    }
    if (rc) {
        /* Refuse the whole request; choices already queued are cancelled and
         * their final events drained before g is freed. */
        if (rc == VRT_EOVERLOADED) {
            rec.fail = VRT_FAIL_OVERLOADED;
            if (vrt_api_is_openai(api)) {
                vrt_api_error_set(&e, api, 429, NULL, "%s", err.msg);
                snprintf(e.type, sizeof e.type, "RateLimitError");
                respond_api_error(res, api, &e);
            } else {
                vrt_http_respond_error(res, 429, "overloaded", "Model is overloaded");
            }
            e.status = 429;
        } else {
            /* The engine's refusals are its own fixed wording (4xx, or
             * 503 while shutting down); anything else is a 500 whose
             * detail stays in the log. */
            rec.fail = rc == VRT_ECANCELED ? VRT_FAIL_CANCELLED : VRT_FAIL_VALIDATION;
            if (rc == VRT_ECANCELED || rc == VRT_EINVAL || rc == VRT_ERANGE) {
                vrt_api_error_set(&e, api, rc == VRT_ECANCELED ? 503 : 0, NULL, "%s", err.msg);
            } else {
                VRT_ERROR("request %s: the engine refused it: %s", g->id, err.msg);
                vrt_api_error_set(&e, api, 500, NULL,
                                  "the engine could not take this request: %s; see the server "
                                  "log (request %s)",
                                  vrt_strerror(rc), g->id);
                snprintf(e.type, sizeof e.type, "%s",
                         vrt_api_is_openai(api) ? "internal_server_error" : "internal");
            }
            respond_api_error(res, api, &e);
        }
        if (g->n_submitted == 0)
            goto rejected;
        g->responded = 1;
        g->fail = rec.fail;
        log_request(g, e.status, NULL, 0.0);
        cancel_rest(g);
        return;
    }
    vrt_http_res_on_close(res, on_client_gone, g);
    /* A stream begins with the first token, so that a request the engine
     * refuses (policy, limits) still gets a proper status. */
    return;
rejected:
    rec.input_tokens = g->n_prompt;
    vrt_srv_metrics_request_done(&s->mh, &rec);
    log_request(g, e.status ? e.status : 429, NULL, 0.0);
    gen_free(g);
}

/* ---- other routes ---------------------------------------------------------------- */

static void fill_info(srv *s, vrt_api_info *info)
{
    memset(info, 0, sizeof *info);
    info->model_id = s->model_name;
    info->model_names = s->names;
    info->n_model_names = s->n_names;
    info->model_root = s->rt && s->rt->model_dir ? s->rt->model_dir : s->cfg->model.path;
    info->model_dtype = s->cfg->model.dtype ? s->cfg->model.dtype : "float16";
    info->model_device_type = s->rt && s->rt->be ? s->rt->be->name : "cpu";
    info->max_concurrent_requests = s->cfg->batching.max_concurrent_requests;
    info->max_best_of = 1;
    info->max_stop_sequences = 4;
    info->max_input_tokens = s->rt ? s->rt->max_input : (int)s->cfg->batching.max_input_tokens;
    info->max_total_tokens = s->rt ? s->rt->max_total : (int)s->cfg->batching.max_total_tokens;
    info->validation_workers = 1;
    info->max_client_batch_size = 1;
    info->version = vrt_version();
    info->created = s->started;
}

static void update_gauges(srv *s)
{
    if (!s->eng)
        return;
    vrt_engine_stats st;
    vrt_engine_stats_get(s->eng, &st);
    vrt_metric_set(s->mh.queue_size, st.waiting);
    vrt_metric_set(s->mh.batch_current_size, st.running);
    vrt_metric_set(s->mh.num_running, st.running);
    vrt_metric_set(s->mh.num_waiting, st.waiting);
    vrt_metric_set(s->mh.kv_cache_usage, st.kv_usage);
    if (st.preemptions > s->last_preemptions) {
        vrt_metric_add(s->mh.num_preemptions, (double)(st.preemptions - s->last_preemptions));
        s->last_preemptions = st.preemptions;
    }
    if (st.prefix_cache_queries > s->last_pc_queries) {
        vrt_metric_add(s->mh.prefix_cache_queries,
                       (double)(st.prefix_cache_queries - s->last_pc_queries));
        s->last_pc_queries = st.prefix_cache_queries;
    }
    if (st.prefix_cache_hits > s->last_pc_hits) {
        vrt_metric_add(s->mh.prefix_cache_hits, (double)(st.prefix_cache_hits - s->last_pc_hits));
        s->last_pc_hits = st.prefix_cache_hits;
    }
}

static void route_tokenize(void *ud, const vrt_route *rt, const vrt_http_req *req,
                           vrt_http_res *res, const char *id)
{
    srv *s = ud;
    vrt_api_request rq;
    vrt_api_error e = {0};
    if (vrt_api_parse(&rq, rt->kind, req->body, req->body_len, &e) != 0) {
        vrt_api_request_free(&rq);
        respond_api_error(res, rt->kind, &e);
        return;
    }
    vrt_tokens toks = {0};
    size_t *off = NULL;
    vrt_err err = {0};
    const char *text = rq.prompt ? rq.prompt : "";
    size_t tlen = strlen(text);
    if (vrt_tokenizer_encode_offsets(s->rt->tok, text, tlen, 1, &toks, &off, &err) != 0) {
        vrt_api_request_free(&rq);
        respond_tokenize_failure(res, rt->kind, NULL, &err);
        return;
    }
    /* [{"id", "text", "start", "stop"}] as TGI: start/stop are the byte
     * offsets of the tokenizers crate's Encoding and text is that slice of
     * the input (BOS: [0, 0) and ""). */
    cJSON *arr = cJSON_CreateArray();
    int ok = arr != NULL;
    for (size_t i = 0; ok && i < toks.n; i++) {
        size_t start = off[2 * i], stop = off[2 * i + 1];
        if (stop > tlen || start > stop) /* cannot happen: the input is valid UTF-8 */
            start = stop = 0;
        char *slice = vrt_api_utf8_sanitize(text + start, stop - start);
        cJSON *o = cJSON_CreateObject();
        ok = o && slice && cJSON_AddNumberToObject(o, "id", toks.ids[i]) &&
             cJSON_AddStringToObject(o, "text", slice) &&
             cJSON_AddNumberToObject(o, "start", (double)start) &&
             cJSON_AddNumberToObject(o, "stop", (double)stop);
        if (o)
            cJSON_AddItemToArray(arr, o);
        free(slice);
    }
    char *out = ok ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    if (out) {
        vrt_http_respond(res, 200, "application/json", out, strlen(out));
        free(out);
    } else {
        vrt_http_respond_error(res, 500, "internal", "out of memory");
    }
    free(off);
    vrt_tokens_free(&toks);
    vrt_api_request_free(&rq);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* GET /v1/models/{id} (the OpenAI SDK's models.retrieve): the entry of a
 * served name, else 404 as OpenAI and vLLM answer for an unknown model. */
static void route_model(void *ud, const vrt_route *rt, const vrt_http_req *req, vrt_http_res *res,
                        const char *raw_id)
{
    srv *s = ud;
    char id[512];
    size_t n = 0;
    for (const char *q = raw_id; *q && n + 1 < sizeof id; q++) { /* percent-decoding */
        int hi, lo;
        if (q[0] == '%' && (hi = hexval(q[1])) >= 0 && (lo = hexval(q[2])) >= 0) {
            id[n++] = (char)(hi * 16 + lo);
            q += 2;
        } else {
            id[n++] = *q;
        }
    }
    id[n] = 0;
    vrt_api_info info;
    fill_info(s, &info);
    for (int i = 0; i < s->n_names; i++)
        if (strcmp(id, s->names[i]) == 0) {
            respond_json(res, 200, vrt_api_render_model(&info, s->names[i]));
            return;
        }
    vrt_api_error e;
    vrt_api_error_set(&e, rt->kind, 404, "model",
                      "The model `%s` does not exist. Served: `%s` (GET /v1/models lists them)", id,
                      s->names[0]);
    snprintf(e.type, sizeof e.type, "NotFoundError");
    respond_api_error(res, rt->kind, &e);
}

/* Why a request before "ready" gets 503; the load error itself (with the
 * model's paths) is in the log. */
static const char *not_ready_msg(const srv *s)
{
    return s->load_failed ? "the model failed to load; see the server log" : "the model is loading";
}

static void route_health(void *ud, const vrt_route *rt, const vrt_http_req *req, vrt_http_res *res,
                         const char *id)
{
    srv *s = ud;
    if (s->ready)
        vrt_http_respond(res, 200, "application/json", "", 0);
    else
        vrt_http_respond_error(res, 503, "unhealthy", not_ready_msg(s));
}

static void route_metrics(void *ud, const vrt_route *rt, const vrt_http_req *req, vrt_http_res *res,
                          const char *id)
{
    srv *s = ud;
    update_gauges(s);
    char *out = NULL;
    size_t len = 0;
    if (vrt_metrics_render(&s->metrics, &out, &len) == 0)
        vrt_http_respond(res, 200, VRT_METRICS_CONTENT_TYPE, out, len);
    else
        vrt_http_respond_error(res, 500, "internal", "out of memory");
    free(out);
}

static void route_info(void *ud, const vrt_route *rt, const vrt_http_req *req, vrt_http_res *res,
                       const char *id)
{
    vrt_api_info info;
    fill_info(ud, &info);
    respond_json(res, 200, vrt_api_render_info(&info));
}

static void route_models(void *ud, const vrt_route *rt, const vrt_http_req *req, vrt_http_res *res,
                         const char *id)
{
    vrt_api_info info;
    fill_info(ud, &info);
    respond_json(res, 200, vrt_api_render_models(&info));
}

/* Every route; the 404 message lists the paths in this order. */
static const vrt_route ROUTES[] = {
    {"POST", "/generate", VRT_ROUTE_TGI, VRT_API_TGI_GENERATE, 1, route_generate},
    {"POST", "/generate_stream", VRT_ROUTE_TGI, VRT_API_TGI_GENERATE_STREAM, 1, route_generate},
    {"POST", "/", VRT_ROUTE_TGI, VRT_API_TGI_COMPAT, 1, route_generate},
    {"GET", "/info", VRT_ROUTE_TGI, 0, 1, route_info},
    {"GET", "/health", VRT_ROUTE_OPS, 0, 0, route_health},
    {"GET", "/metrics", VRT_ROUTE_OPS, 0, 0, route_metrics},
    {"POST", "/tokenize", VRT_ROUTE_TGI, VRT_API_TGI_GENERATE, 1, route_tokenize},
    {"POST", "/v1/completions", VRT_ROUTE_OPENAI, VRT_API_OAI_COMPLETIONS, 1, route_generate},
    {"POST", "/v1/chat/completions", VRT_ROUTE_OPENAI, VRT_API_OAI_CHAT, 1, route_generate},
    {"GET", "/v1/models", VRT_ROUTE_OPENAI, 0, 1, route_models},
    {"GET", "/v1/models/{id}", VRT_ROUTE_OPENAI, VRT_API_OAI_COMPLETIONS, 1, route_model},
};
#define N_ROUTES (sizeof ROUTES / sizeof ROUTES[0])

const vrt_route *vrt_server_routes(size_t *n)
{
    *n = N_ROUTES;
    return ROUTES;
}

/* The HTTP layer's handler: the route's handler, else 503 while the model
 * loads, else 404 / 405. */
static void handler(void *ud, const vrt_http_req *req, vrt_http_res *res)
{
    srv *s = ud;
    const char *id;
    int status;
    const vrt_route *rt = vrt_route_find(ROUTES, N_ROUTES, req->method, req->path, &id, &status);
    if (!s->ready && (!rt || rt->needs_ready)) {
        vrt_http_respond_error(res, 503, "unhealthy", not_ready_msg(s));
    } else if (rt) {
        rt->handle(s, rt, req, res, id);
    } else {
        char msg[512];
        vrt_route_error_msg(ROUTES, N_ROUTES, status, req->method, req->path, msg, sizeof msg);
        vrt_http_respond_error(res, status, status == 405 ? "method_not_allowed" : "not_found",
                               msg);
    }
    vrt_http_res_release(res);
}

/* ---- loading ------------------------------------------------------------------- */

/* Engine thread, after each forward (metrics are lock-free). */
static void on_step(void *ud, double seconds, int n_prefill_tokens, int n_decode)
{
    srv *s = ud;
    vrt_metric_observe(n_prefill_tokens > 0 ? s->mh.forward_prefill : s->mh.forward_decode,
                       seconds);
    (void)n_decode;
}

static void load_work(uv_work_t *w)
{
    srv *s = w->data;
    /* The config as loaded (file, flags, environment), not its file again. */
    if (vrt__runtime_open_cfg(&s->rt, s->cfg, &s->load_err) != 0)
        return;
    if (vrt_engine_create(&s->eng, s->rt, s->cfg, &s->load_err) != 0) {
        vrt_runtime_close(s->rt);
        s->rt = NULL;
        return;
    }
    vrt_engine_set_step_hook(s->eng, on_step, s);
}

static void stop_server(srv *s, int code);

static void load_done(uv_work_t *w, int status)
{
    srv *s = w->data;
    if (!s->eng) {
        s->load_failed = 1;
        VRT_ERROR("cannot load the model: %s", s->load_err.msg);
        stop_server(s, 1);
        return;
    }
    vrt_model_config *mc = &s->rt->m->cfg;
    const char *jinja = vrt_tokenizer_chat_template(s->rt->tok);
    const char *cfg_t = s->cfg->model.chat_template;
    if (cfg_t && strcmp(cfg_t, "auto") != 0 && strcmp(cfg_t, "custom") != 0)
        s->chat_template = cfg_t;
    else
        s->chat_template = vrt_chat_detect(jinja, mc->model_type, s->model_name);
    if (cfg_t && strcmp(cfg_t, "custom") == 0) {
        vrt_err e2 = {0};
        if (vrt_chat_lua_load(&s->chat_lua, s->cfg->source, &e2) != 0) {
            s->load_failed = 1;
            s->load_err = e2;
            VRT_ERROR("%s", e2.msg);
            stop_server(s, 1);
            return;
        }
        s->chat_template = "custom (Lua function)";
    }
    int32_t bos = vrt_tokenizer_bos_id(s->rt->tok), eos = vrt_tokenizer_eos_id(s->rt->tok);
    s->bos_text = bos >= 0 ? vrt_tokenizer_piece(s->rt->tok, bos) : "";
    s->eos_text = eos >= 0 ? vrt_tokenizer_piece(s->rt->tok, eos) : "";
    s->ready = 1;
    VRT_INFO("ready: %s; chat template \"%s\"", vrt_runtime_describe(s->rt), s->chat_template);
    (void)status;
}

/* ---- shutdown -------------------------------------------------------------------- */

static void on_closed(void *ud)
{
    srv *s = ud;
    s->http = NULL;
    uv_stop(&s->loop);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    close_handle(h);
}

static void stop_server(srv *s, int code)
{
    s->exit_code = code;
    /* The engine first: its last events (cancellations) are posted to the
     * loop and drained while the HTTP server closes. */
    vrt_engine_destroy(s->eng);
    s->eng = NULL;
    uv_timer_stop(&s->drain_timer);
    close_handle((uv_handle_t *)&s->drain_timer);
    close_handle((uv_handle_t *)&s->sig_term);
    close_handle((uv_handle_t *)&s->sig_int);
    if (s->http)
        vrt_http_server_close(s->http, on_closed, s);
    else
        uv_stop(&s->loop);
}

static void drain_tick(uv_timer_t *t)
{
    srv *s = t->data;
    if (!s->ready && !s->load_failed)
        return; /* still loading: the load finishes first */
    int busy = s->n_gens > 0 || (s->http && vrt_http_server_in_flight(s->http) > 0);
    if (!busy) {
        VRT_INFO("drained: exiting");
        stop_server(s, 0);
    } else if (now_s() > s->drain_deadline) {
        VRT_WARN("drain timeout: %d requests still in flight are cancelled", s->n_gens);
        stop_server(s, 0);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    srv *s = h->data;
    if (s->draining) {
        VRT_WARN("second signal: exiting now");
        stop_server(s, 0);
        return;
    }
    s->draining = 1;
    double timeout = 30.0;
    VRT_INFO("signal %d: no new connections; draining %d requests (up to %.0f s)", signum,
             s->n_gens, timeout);
    if (s->http)
        vrt_http_server_stop_accepting(s->http);
    s->drain_deadline = now_s() + timeout;
    uv_timer_start(&s->drain_timer, drain_tick, 0, 100);
}

int vrt_serve(const vrt_config *cfg, const char *port_file, vrt_err *err)
{
    srv *s = calloc(1, sizeof *s);
    if (!s)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    s->cfg = cfg;
    s->port_file = port_file;
    /* A client that leaves mid-response makes the next write() to its socket
     * raise SIGPIPE, whose default action kills the whole server (exit by
     * signal 13 under tests/e2e's disconnect test); libuv leaves this to the
     * program. Ignored, the write fails with EPIPE and only that request ends. */
    signal(SIGPIPE, SIG_IGN);
    s->started = (int64_t)time(NULL);
    /* The names: model.name, then server.served_model_names (the first of
     * which is reported when model.name is unset), else the base name of
     * model.path. */
    if (cfg->model.name)
        s->names[s->n_names++] = cfg->model.name;
    for (int i = 0; i < cfg->server.n_served_model_names; i++) {
        const char *nm = cfg->server.served_model_names[i];
        int dup = !nm || !*nm;
        for (int k = 0; !dup && k < s->n_names; k++)
            dup = strcmp(s->names[k], nm) == 0;
        if (!dup && s->n_names < (int)(sizeof s->names / sizeof s->names[0]))
            s->names[s->n_names++] = nm;
    }
    const char *name = s->n_names ? s->names[0] : NULL;
    if (!name) {
        const char *p = cfg->model.path ? cfg->model.path : "model";
        size_t l = strlen(p);
        while (l > 1 && p[l - 1] == '/')
            l--;
        const char *b = p + l;
        while (b > p && b[-1] != '/')
            b--;
        snprintf(s->model_name, sizeof s->model_name, "%.*s", (int)(p + l - b), b);
    } else {
        snprintf(s->model_name, sizeof s->model_name, "%s", name);
    }
    s->names[0] = s->model_name;
    if (s->n_names == 0)
        s->n_names = 1;
    int rc = vrt_metrics_init(&s->metrics, err);
    vrt_srv_metrics_opts mo = {.model_name = s->model_name,
                               .max_input_tokens = (int)cfg->batching.max_input_tokens,
                               .max_total_tokens = (int)cfg->batching.max_total_tokens};
    if (!rc)
        rc = vrt_srv_metrics_register(&s->metrics, &s->mh, &mo, err);
    if (rc) {
        vrt_metrics_free(&s->metrics);
        free(s);
        return rc;
    }
    uv_loop_init(&s->loop);
    vrt_http_opts ho = {
        .host = cfg->server.host,
        .port = cfg->server.port,
        .payload_limit = cfg->server.payload_limit,
        .max_connections = cfg->server.max_connections,
        .read_timeout_s = cfg->server.read_timeout,
        .keep_alive_timeout_s = cfg->server.keep_alive_timeout,
        .api_keys = cfg->server.api_keys,
        .n_api_keys = cfg->server.n_api_keys,
        .cors_origins = cfg->server.cors_allow_origin,
        .n_cors_origins = cfg->server.n_cors_allow_origin,
    };
    /* V100RT_API_KEYS (comma-separated) adds keys from the environment. */
    const char *env_keys = getenv("V100RT_API_KEYS");
    const char *keys[64];
    char *keybuf = NULL;
    if (env_keys && *env_keys) {
        int nk = 0;
        for (int i = 0; i < ho.n_api_keys && nk < 32; i++)
            keys[nk++] = ho.api_keys[i];
        keybuf = strdup(env_keys);
        for (char *tok = keybuf ? strtok(keybuf, ",") : NULL; tok && nk < 64;
             tok = strtok(NULL, ","))
            if (*tok)
                keys[nk++] = tok;
        ho.api_keys = keys;
        ho.n_api_keys = nk;
    }
    rc = vrt_http_server_start(&s->http, &s->loop, &ho, handler, s, err);
    free(keybuf); /* the options are copied */
    if (rc) {
        uv_run(&s->loop, UV_RUN_NOWAIT);
        uv_loop_close(&s->loop);
        vrt_metrics_free(&s->metrics);
        free(s);
        return rc;
    }
    int port = vrt_http_server_port(s->http);
    VRT_INFO("listening on http://%s:%d (model loading: /health is 503 until ready)",
             cfg->server.host ? cfg->server.host : "127.0.0.1", port);
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (f) {
            fprintf(f, "%d\n", port);
            fclose(f);
        }
    }
    uv_timer_init(&s->loop, &s->drain_timer);
    s->drain_timer.data = s;
    uv_signal_init(&s->loop, &s->sig_term);
    uv_signal_init(&s->loop, &s->sig_int);
    s->sig_term.data = s->sig_int.data = s;
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    s->load_work.data = s;
    uv_queue_work(&s->loop, &s->load_work, load_work, load_done);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    /* Cancel what is left, let the engine thread end, then close handles. */
    vrt_engine_destroy(s->eng);
    s->eng = NULL;
    uv_run(&s->loop, UV_RUN_NOWAIT);
    uv_walk(&s->loop, walk_close, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    vrt_runtime_close(s->rt);
    vrt_chat_lua_free(s->chat_lua);
    vrt_metrics_free(&s->metrics);
    int code = s->exit_code;
    if (s->load_failed)
        vrt_err_set(err, s->load_err.code ? s->load_err.code : VRT_EINTERNAL, "%s",
                    s->load_err.msg);
    free(s);
    return code;
}
