/* engine.c — the engine thread: continuous batching over the paged KV cache
 * (see engine.h for the contract).
 *
 * The scheduler (sched.h) decides; the engine executes. A step:
 *
 *   1. takes new requests and cancellations from the submit side;
 *   2. asks the scheduler for a plan: what was rejected or cancelled,
 *      which requests were preempted (swap or recompute) or resumed, and
 *      the batch (which sequences, how many tokens each);
 *   3. carries out the plan's K/V copies to and from the CPU swap space;
 *   4. runs one forward over the flattened batch, and tells the scheduler
 *      the tokens are computed;
 *   5. samples a token for every request that caught up, and reports it;
 *   6. keeps the stats and calls the policy's on_step hook.
 *
 * A preempted request resumes where it was: its generated tokens are
 * recomputed as if they were prompt (or its K/V are copied back from the
 * swap space), and its sampler state (RNG, penalty history) is untouched,
 * so its output is exactly what it would have been.
 */
#include "engine/engine.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/policy.h"
#include "engine/runtime_int.h"
#include "engine/sched.h"
#include "engine/stop.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A policy hook's time budget inside Lua, and how long the engine waits for
 * it before abandoning it (policy.h). */
#define POLICY_BUDGET_S 0.1
#define POLICY_DEADLINE_S 1.0

/* Cancellations taken per step. */
#define MAX_STEP_CANCELS 64

typedef struct ereq {
    vrt_sched_req s; /* first: what the scheduler sees (ids, tokens, blocks) */
    char lid[64];    /* the id in logs: the server's (vrt_request_params.log_id) */
    int cap;         /* of s.toks: prompt then generated */
    char *tenant;
    vrt_sampling_params sp;
    vrt_rng rng;
    int ignore_eos;
    int32_t *stop_ids;
    int n_stop_ids;
    vrt_stop_checker stop;
    vrt_stop_out sout;
    vrt_detok detok;
    float *plp; /* [n_prompt] prompt logprobs when asked */
    vrt_engine_event_fn fn;
    void *ud;
    double t_sched, t_first;
    uint16_t *swap_buf; /* swapped-out K/V (s.swap_tokens tokens), or NULL */
    struct ereq *next;
} ereq;

static ereq *ereq_of(vrt_sched_req *s)
{
    return (ereq *)s;
}

struct vrt_engine {
    vrt_runtime *rt;
    int max_concurrent; /* batching.max_concurrent_requests */
    pthread_t thread;
    int thread_started;
    int sync; /* vrt__engine_create_sync: no thread; no per-request log lines */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Shared with submitters (under mu). */
    ereq *incoming_head, *incoming_tail;
    uint64_t *cancels;
    int n_cancels;
    size_t cap_cancels;
    int stopping;
    int in_flight;
    uint64_t next_id;
    vrt_engine_stats stats;
    /* Engine thread only. */
    vrt_sched sched;
    vrt_sched_plan plan;
    uint64_t step_cancels[MAX_STEP_CANCELS]; /* taken by take_incoming */
    int n_step_cancels;
    vrt_engine_step_fn step_fn;
    void *step_ud;
    vrt_engine_trace_fn trace_fn;
    void *trace_ud;
    vrt_policy *policy;
    /* Batch scratch. */
    int32_t *b_tokens, *b_qstart, *b_ctx, *b_table, *b_rows;
    int *b_row_owner; /* per out row: index into the plan's seqs */
    int *b_row_pos;   /* per out row: token position */
    vrt_engine_step_seq *b_trace;
    float *logits;
    int cap_tokens, cap_seqs, cap_rows;
};

/* A DEBUG line about one request: the server's engine logs each request's
 * course; generate's synchronous engine does not (its caller reports). */
#define REQ_DEBUG(e, ...)                                                                          \
    do {                                                                                           \
        if (!(e)->sync)                                                                            \
            VRT_DEBUG(__VA_ARGS__);                                                                \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- requests ----------------------------------------------------------- */

/* Frees r (out of the scheduler by now). */
static void req_free(ereq *r)
{
    if (!r)
        return;
    vrt_stop_free(&r->stop);
    vrt_stop_out_free(&r->sout);
    vrt_detok_free(&r->detok);
    free(r->s.toks);
    free(r->tenant);
    free(r->stop_ids);
    free(r->plp);
    free(r->swap_buf);
    free(r);
}

/* r leaves the engine: out of the scheduler (blocks, swap space), out of
 * the count in flight, freed. */
static void drop(vrt_engine *e, ereq *r)
{
    vrt_sched_remove(&e->sched, &r->s);
    pthread_mutex_lock(&e->mu);
    e->in_flight--;
    pthread_mutex_unlock(&e->mu);
    req_free(r);
}

static void emit_error(ereq *r, int code, const char *msg)
{
    vrt_engine_event ev = {.kind = VRT_EV_ERROR, .id = r->s.id, .err_code = code, .err_msg = msg};
    r->fn(r->ud, &ev);
}

/* Ends a request. */
static void finish(vrt_engine *e, ereq *r, const char *reason)
{
    vrt_err err = {0};
    int rc = 0;
    int stopped = strcmp(reason, "stop_sequence") == 0 && r->stop.matched >= 0;
    if (!stopped) {
        int matched;
        rc = vrt__text_step(&r->detok, &r->stop, &r->sout, 0, 1, &matched, &err);
        if (!rc && matched >= 0)
            reason = "stop_sequence";
    }
    double t = now_s();
    REQ_DEBUG(e, "engine: request %s finished: %s, %d prompt + %d generated tokens", r->lid,
              rc ? "error" : reason, r->s.n_prompt, r->s.len - r->s.n_prompt);
    if (rc) {
        emit_error(r, rc, err.msg);
    } else {
        vrt_engine_event ev = {
            .kind = VRT_EV_FINISH,
            .id = r->s.id,
            .finish_reason = reason,
            .n_prompt_tokens = r->s.n_prompt,
            .n_generated_tokens = r->s.len - r->s.n_prompt,
            .seed = r->sp.seed,
            .queue_s = r->t_sched - r->s.t_submit,
            .ttft_s = r->t_first > 0 ? r->t_first - r->s.t_submit : t - r->s.t_submit,
            .total_s = t - r->s.t_submit,
            .prompt_logprobs = r->plp,
            .text = r->sout.data ? r->sout.data : "",
            .text_len = r->sout.len,
        };
        r->fn(r->ud, &ev);
    }
    drop(e, r);
}

static void fail(vrt_engine *e, ereq *r, int code, const char *msg)
{
    REQ_DEBUG(e, "engine: request %s failed: %s", r->lid, msg);
    emit_error(r, code, msg);
    drop(e, r);
}

/* ---- submit side ---------------------------------------------------------- */

int vrt_engine_submit(vrt_engine *e, const int32_t *prompt, int n, const vrt_request_params *p,
                      vrt_engine_event_fn fn, void *ud, uint64_t *id, vrt_err *err)
{
    if (!e || !prompt || !p || !fn || !id)
        return vrt_err_set(err, VRT_EINVAL, "vrt_engine_submit: NULL argument");
    vrt_runtime *rt = e->rt;
    int rc = vrt__runtime_check_request(rt, prompt, n, p->max_new_tokens, p->stop_ids,
                                        p->n_stop_ids, &p->sampling, err);
    if (rc)
        return rc;
    ereq *r = calloc(1, sizeof *r);
    if (!r)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    r->cap = n + p->max_new_tokens;
    r->s.toks = malloc((size_t)r->cap * sizeof *r->s.toks);
    r->stop_ids = p->n_stop_ids ? malloc((size_t)p->n_stop_ids * sizeof *r->stop_ids) : NULL;
    r->tenant = p->tenant ? strdup(p->tenant) : NULL;
    r->plp = p->prompt_logprobs ? malloc((size_t)n * sizeof *r->plp) : NULL;
    rc = (!r->s.toks || (p->n_stop_ids && !r->stop_ids) || (p->tenant && !r->tenant) ||
          (p->prompt_logprobs && !r->plp))
             ? vrt_err_set(err, VRT_ENOMEM, "out of memory")
             : 0;
    if (!rc)
        rc = vrt_stop_init(&r->stop, p->stop, p->n_stop, err);
    if (rc) {
        vrt_stop_free(&r->stop);
        free(r->s.toks);
        free(r->stop_ids);
        free(r->tenant);
        free(r->plp);
        free(r);
        return rc;
    }
    memcpy(r->s.toks, prompt, (size_t)n * sizeof *r->s.toks);
    if (p->n_stop_ids)
        memcpy(r->stop_ids, p->stop_ids, (size_t)p->n_stop_ids * sizeof *r->stop_ids);
    if (r->plp) {
        r->plp[0] = NAN;
        for (int i = 1; i < n; i++)
            r->plp[i] = 0.0f;
    }
    r->n_stop_ids = p->n_stop_ids;
    r->s.n_prompt = r->s.len = n;
    r->sp = p->sampling;
    vrt_rng_seed(&r->rng, r->sp.seed);
    r->s.max_new = p->max_new_tokens;
    r->ignore_eos = p->ignore_eos;
    r->s.prompt_logprobs = p->prompt_logprobs;
    r->s.priority = p->priority;
    r->s.tenant = r->tenant;
    r->s.lid = r->lid;
    if (p->log_id && p->log_id[0])
        snprintf(r->lid, sizeof r->lid, "%s", p->log_id);
    r->fn = fn;
    r->ud = ud;
    r->s.t_submit = now_s();
    vrt_detok_init(&r->detok, rt->tok, 1);
    /* The output continues the prompt: its first token keeps its space. */
    if ((rc = vrt_detok_prime(&r->detok, prompt, (size_t)n, err)) != 0) {
        req_free(r);
        return rc;
    }

    pthread_mutex_lock(&e->mu);
    if (e->stopping || e->in_flight >= e->max_concurrent) {
        int stopping = e->stopping, inflight = e->in_flight;
        pthread_mutex_unlock(&e->mu);
        req_free(r);
        if (stopping)
            return vrt_err_set(err, VRT_ECANCELED, "the server is shutting down");
        return vrt_err_set(err, VRT_EOVERLOADED,
                           "%d requests are in flight, the limit of "
                           "batching.max_concurrent_requests: try again later",
                           inflight);
    }
    r->s.id = ++e->next_id;
    *id = r->s.id;
    if (!r->lid[0])
        snprintf(r->lid, sizeof r->lid, "%llu", (unsigned long long)r->s.id);
    e->in_flight++;
    if (e->incoming_tail)
        e->incoming_tail->next = r;
    else
        e->incoming_head = r;
    e->incoming_tail = r;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

void vrt_engine_cancel(vrt_engine *e, uint64_t id)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    if (vrt_grow(&e->cancels, &e->cap_cancels, (size_t)e->n_cancels + 1, sizeof *e->cancels)) {
        pthread_mutex_unlock(&e->mu);
        VRT_ERROR("engine: out of memory queueing a cancellation of request %llu",
                  (unsigned long long)id);
        return;
    }
    e->cancels[e->n_cancels++] = id;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void vrt_engine_set_step_hook(vrt_engine *e, vrt_engine_step_fn fn, void *ud)
{
    e->step_fn = fn;
    e->step_ud = ud;
}

void vrt_engine_set_trace_hook(vrt_engine *e, vrt_engine_trace_fn fn, void *ud)
{
    e->trace_fn = fn;
    e->trace_ud = ud;
}

void vrt_engine_stats_get(vrt_engine *e, vrt_engine_stats *out)
{
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->mu);
}

int vrt_engine_in_flight(vrt_engine *e)
{
    pthread_mutex_lock(&e->mu);
    int n = e->in_flight;
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* ---- one step ---------------------------------------------------------------- */

static int grow_batch(vrt_engine *e, int tokens, int seqs, int rows, vrt_err *err)
{
    const int V = e->rt->m->cfg.vocab_size;
    if (tokens > e->cap_tokens) {
        int32_t *a = realloc(e->b_tokens, (size_t)tokens * sizeof *a);
        if (!a)
            return vrt_err_set(err, VRT_ENOMEM, "engine: out of memory");
        e->b_tokens = a;
        e->cap_tokens = tokens;
    }
    if (seqs > e->cap_seqs) {
        int32_t *q = realloc(e->b_qstart, (size_t)(seqs + 1) * sizeof *q);
        if (q)
            e->b_qstart = q;
        int32_t *c = realloc(e->b_ctx, (size_t)seqs * sizeof *c);
        if (c)
            e->b_ctx = c;
        int32_t *t = realloc(e->b_table, (size_t)seqs * e->rt->max_blocks * sizeof *t);
        if (t)
            e->b_table = t;
        vrt_engine_step_seq *tr = realloc(e->b_trace, (size_t)seqs * sizeof *tr);
        if (tr)
            e->b_trace = tr;
        if (!q || !c || !t || !tr)
            return vrt_err_set(err, VRT_ENOMEM, "engine: out of memory");
        e->cap_seqs = seqs;
    }
    if (rows > e->cap_rows) {
        int32_t *r = realloc(e->b_rows, (size_t)rows * sizeof *r);
        if (r)
            e->b_rows = r;
        int *o = realloc(e->b_row_owner, (size_t)rows * sizeof *o);
        if (o)
            e->b_row_owner = o;
        int *p = realloc(e->b_row_pos, (size_t)rows * sizeof *p);
        if (p)
            e->b_row_pos = p;
        float *l = realloc(e->logits, (size_t)rows * V * sizeof *l);
        if (l)
            e->logits = l;
        if (!r || !o || !p || !l)
            return vrt_err_set(err, VRT_ENOMEM, "engine: out of memory");
        e->cap_rows = rows;
    }
    return 0;
}

/* Copies the K/V of the n_blk blocks ids between the cache and buf
 * ([layer][k|v][block] order); out = 1 swaps out, 0 swaps in. */
static int swap_copy(vrt_engine *e, const int32_t *ids, int n_blk, uint16_t *buf, int out,
                     vrt_err *err)
{
    vrt_kv_cache *kv = &e->rt->kv;
    vrt_backend *be = kv->be;
    size_t elems = (size_t)kv->block_size * kv->n_kv_heads * kv->head_dim;
    size_t bytes = elems * sizeof(uint16_t);
    uint16_t *p = buf;
    for (int l = 0; l < kv->n_layers; l++)
        for (int kvi = 0; kvi < 2; kvi++) {
            uint16_t *cache = kvi == 0 ? kv->k[l] : kv->v[l];
            for (int b = 0; b < n_blk; b++, p += elems) {
                uint16_t *blk = cache + (size_t)ids[b] * elems;
                int rc = out ? be->copy_to_host(be, p, blk, bytes, err)
                             : be->copy_to_device(be, blk, p, bytes, err);
                if (rc)
                    return rc;
            }
        }
    return 0;
}

/* A preemption of the plan: a swap copies the K/V out to the CPU swap
 * space (before anything writes the freed blocks); if that cannot be done
 * the request is recomputed instead. Then the stats and the log line. */
static void preempted(vrt_engine *e, const vrt_sched_plan *pl, const vrt_sched_preempt *pe)
{
    ereq *r = ereq_of(pe->req);
    int swapped = pe->swap;
    if (swapped) {
        vrt_err err = {0};
        r->swap_buf = malloc((size_t)e->sched.cfg.block_bytes * pe->n_blocks);
        if (!r->swap_buf ||
            swap_copy(e, pl->swap_ids + pe->first, pe->n_blocks, r->swap_buf, 1, &err) != 0) {
            if (r->swap_buf)
                VRT_WARN("engine: swap out of request %s failed (%s); it will be recomputed",
                         r->lid, err.msg);
            free(r->swap_buf);
            r->swap_buf = NULL;
            vrt_sched_swap_failed(&e->sched, &r->s);
            swapped = 0;
        }
    }
    pthread_mutex_lock(&e->mu);
    if (swapped)
        e->stats.swap_outs++;
    uint64_t n_pre = ++e->stats.preemptions;
    pthread_mutex_unlock(&e->mu);
    if (swapped)
        VRT_INFO("engine: preempted request %s (swap: %d tokens of K/V copied to the CPU swap "
                 "space; %llu preemptions so far)",
                 r->lid, r->s.swap_tokens, (unsigned long long)n_pre);
    else
        VRT_INFO("engine: preempted request %s (recompute: its %d tokens are computed again when "
                 "it resumes; %llu preemptions so far)",
                 r->lid, r->s.len, (unsigned long long)n_pre);
}

/* Copies a resumed request's swapped K/V into its first blocks; when that
 * fails (or its swap-out in this same plan did) it leaves this step's
 * batch and is recomputed later. */
static void swapped_in(vrt_engine *e, vrt_sched_plan *pl, ereq *r)
{
    if (r->swap_buf) {
        vrt_err err = {0};
        int n_blk = vrt_blocks_for(&e->rt->pool, r->s.swap_tokens);
        int rc = swap_copy(e, r->s.blocks.ids, n_blk, r->swap_buf, 0, &err);
        free(r->swap_buf);
        r->swap_buf = NULL;
        if (rc == 0)
            return;
        VRT_WARN("engine: swap in of request %s failed (%s); recomputing it", r->lid, err.msg);
    }
    for (int i = 0; i < pl->n_seqs; i++)
        if (pl->seqs[i].req == &r->s) {
            vrt_sched_unschedule(&e->sched, pl, i);
            break;
        }
}

static void sync_policy_flag(vrt_engine *e)
{
    if (!e->sched.policy_off)
        return;
    pthread_mutex_lock(&e->mu);
    e->stats.policy_disabled = 1;
    pthread_mutex_unlock(&e->mu);
}

/* Everything of a plan but its batch: rejections, cancellations,
 * preemptions (swap-outs), swap-ins, and the first scheduling of
 * requests. */
static void carry_out(vrt_engine *e, vrt_sched_plan *pl)
{
    sync_policy_flag(e);
    for (int i = 0; i < pl->n_rejected; i++)
        fail(e, ereq_of(pl->rejected[i].req), pl->rejected[i].code, pl->rejected[i].msg);
    for (int i = 0; i < pl->n_cancelled; i++)
        fail(e, ereq_of(pl->cancelled[i]), VRT_ECANCELED, "request cancelled");
    for (int i = 0; i < pl->n_preempted; i++)
        preempted(e, pl, &pl->preempted[i]);
    for (int i = 0; i < pl->n_swap_in; i++)
        swapped_in(e, pl, ereq_of(pl->swap_in[i]));
    for (int i = 0; i < pl->n_admitted; i++) {
        ereq *r = ereq_of(pl->admitted[i]);
        if (r->t_sched == 0) {
            r->t_sched = now_s();
            REQ_DEBUG(e,
                      "engine: request %s scheduled (%d prompt tokens, %d from the prefix "
                      "cache; waited %.3f s)",
                      r->lid, r->s.n_prompt, r->s.computed, r->t_sched - r->s.t_submit);
        }
    }
}

/* Takes new requests (to the scheduler) and up to MAX_STEP_CANCELS
 * cancellations (for the next step) from the submit side. */
static void take_incoming(vrt_engine *e)
{
    pthread_mutex_lock(&e->mu);
    ereq *list = e->incoming_head;
    e->incoming_head = e->incoming_tail = NULL;
    int n_c = e->n_cancels;
    int take = n_c < MAX_STEP_CANCELS ? n_c : MAX_STEP_CANCELS;
    if (take > 0) {
        memcpy(e->step_cancels, e->cancels, (size_t)take * sizeof *e->cancels);
        memmove(e->cancels, e->cancels + take, (size_t)(n_c - take) * sizeof *e->cancels);
    }
    e->n_cancels = n_c - take;
    e->n_step_cancels = take;
    pthread_mutex_unlock(&e->mu);
    while (list) {
        ereq *r = list;
        list = r->next;
        r->next = NULL;
        vrt_err err = {0};
        if (vrt_sched_add(&e->sched, &r->s, &err))
            fail(e, r, VRT_ENOMEM, err.msg);
    }
}

/* Samples the next token of r from logits and reports it; returns 1 when r
 * finished (it is then freed), 0 to go on, < 0 on an error (r failed). */
static int advance(vrt_engine *e, ereq *r, const float *logits)
{
    vrt_runtime *rt = e->rt;
    const int V = rt->m->cfg.vocab_size;
    vrt_err err = {0};
    vrt_sample_result sr;
    int32_t *toks = r->s.toks;
    const int n_prompt = r->s.n_prompt;
    int rc = vrt_sample(&r->sp, logits, V, toks, n_prompt, toks + n_prompt, r->s.len - n_prompt,
                        &r->rng, &rt->scratch, &sr, &err);
    if (rc) {
        fail(e, r, rc, err.msg);
        return -1;
    }
    int32_t tok = sr.token;
    if (r->t_first == 0)
        r->t_first = now_s();
    toks[r->s.len++] = tok;
    int is_eos = !r->ignore_eos && vrt_is_stop_token(rt->eos, rt->n_eos, tok);
    int is_stop_id = vrt_is_stop_token(r->stop_ids, r->n_stop_ids, tok);
    int special = vrt_tokenizer_is_special(rt->tok, tok);
    int matched = -1;
    r->sout.len = 0;
    if (!is_eos && !is_stop_id) {
        rc = vrt__text_step(&r->detok, &r->stop, &r->sout, tok, 0, &matched, &err);
        if (rc) {
            fail(e, r, rc, err.msg);
            return -1;
        }
    }
    vrt_engine_event ev = {
        .kind = VRT_EV_TOKEN,
        .id = r->s.id,
        .token = tok,
        .logprob = sr.logprob,
        .special = special,
        .index = r->s.len - n_prompt - 1,
        .text = r->sout.data ? r->sout.data : "",
        .text_len = r->sout.len,
        .n_top = sr.n_top,
        .top_ids = sr.top_ids,
        .top_logprobs = sr.top_logprobs,
    };
    r->fn(r->ud, &ev);
    r->sout.len = 0;
    const char *reason = NULL;
    if (is_eos)
        reason = "eos_token";
    else if (is_stop_id || matched >= 0)
        reason = "stop_sequence";
    else if (r->s.len - n_prompt >= r->s.max_new || r->s.len >= rt->max_total)
        reason = "length";
    if (reason) {
        finish(e, r, reason);
        return 1;
    }
    return 0;
}

/* Flattens the plan's batch into the scratch (grown for it) with a row of
 * logits for every sequence that catches up and for the prompt positions
 * whose logprobs are asked, and runs one forward; *n_rows_out: the rows of
 * logits, *dt: the forward's time. */
static int run_batch(vrt_engine *e, const vrt_sched_plan *pl, int *n_rows_out, double *dt,
                     vrt_err *err)
{
    vrt_runtime *rt = e->rt;
    int T = 0, n_rows = 0;
    e->b_qstart[0] = 0;
    for (int s = 0; s < pl->n_seqs; s++) {
        const vrt_sched_req *r = pl->seqs[s].req;
        int take = pl->seqs[s].take;
        for (int j = 0; j < take; j++) {
            int pos = r->computed + j;
            int last = pos == r->len - 1;
            if (last || (r->prompt_logprobs && pos < r->n_prompt - 1)) {
                e->b_rows[n_rows] = T;
                e->b_row_owner[n_rows] = s;
                e->b_row_pos[n_rows++] = pos;
            }
            e->b_tokens[T++] = r->toks[pos];
        }
        e->b_qstart[s + 1] = T;
        e->b_ctx[s] = r->computed + take;
        int32_t *row = e->b_table + (size_t)s * rt->max_blocks;
        memcpy(row, r->blocks.ids, (size_t)r->blocks.n * sizeof *row);
        for (int b = r->blocks.n; b < rt->max_blocks; b++)
            row[b] = 0;
    }
    *n_rows_out = n_rows;
    vrt_batch b = {.n_seqs = pl->n_seqs,
                   .tokens = e->b_tokens,
                   .q_start = e->b_qstart,
                   .ctx_len = e->b_ctx,
                   .block_table = e->b_table,
                   .max_blocks_per_seq = rt->max_blocks,
                   .out_rows = e->b_rows,
                   .n_out = n_rows};
    int32_t last = T - 1;
    if (n_rows == 0) { /* only partial prefill chunks without logits: still a forward */
        b.out_rows = &last;
        b.n_out = 1;
    }
    double t0 = now_s();
    int rc = vrt_model_forward(rt->m, &rt->kv, &b, e->logits, err);
    *dt = now_s() - t0;
    return rc;
}

/* The step and trace hooks see the batch once its tokens are computed. */
static void report_batch(vrt_engine *e, const vrt_sched_plan *pl, double dt)
{
    for (int s = 0; s < pl->n_seqs; s++)
        e->b_trace[s] =
            (vrt_engine_step_seq){pl->seqs[s].req->id, pl->seqs[s].take, !pl->seqs[s].decode};
    if (e->step_fn)
        e->step_fn(e->step_ud, dt, pl->n_prefill_tokens, pl->n_decode);
    if (e->trace_fn) {
        vrt_engine_step_info info = {.step = e->stats.steps + 1,
                                     .n_seqs = pl->n_seqs,
                                     .n_prefill_tokens = pl->n_prefill_tokens,
                                     .n_decode = pl->n_decode,
                                     .waiting = e->sched.n_waiting,
                                     .seqs = e->b_trace};
        e->trace_fn(e->trace_ud, &info);
    }
}

/* Prompt logprobs from the rows of logits, and a sampled token for every
 * sequence that caught up (it leaves the scheduler when it ends); returns
 * how many sampled. */
static int sample_batch(vrt_engine *e, const vrt_sched_plan *pl, int n_rows)
{
    const int V = e->rt->m->cfg.vocab_size;
    int row = 0, n_sampled = 0;
    for (int s = 0; s < pl->n_seqs; s++) {
        ereq *r = ereq_of(pl->seqs[s].req);
        const float *last_logits = NULL;
        while (row < n_rows && e->b_row_owner[row] == s) {
            int pos = e->b_row_pos[row];
            const float *lg = e->logits + (size_t)row * V;
            if (r->plp && pos < r->s.n_prompt - 1)
                r->plp[pos + 1] = (float)vrt_token_logprob(lg, V, r->s.toks[pos + 1]);
            if (pos == r->s.len - 1)
                last_logits = lg;
            row++;
        }
        if (!last_logits || r->s.computed != r->s.len)
            continue;
        n_sampled++;
        advance(e, r, last_logits);
    }
    return n_sampled;
}

/* The stats of a step, then the policy's on_step hook. */
static void step_stats(vrt_engine *e, const vrt_sched_plan *pl, double dt, int n_sampled)
{
    vrt_block_pool *pool = &e->rt->pool;
    pthread_mutex_lock(&e->mu);
    e->stats.steps++;
    e->stats.last_step_s = dt;
    e->stats.batch_size = pl->n_seqs;
    e->stats.prompt_tokens += (uint64_t)pl->n_prefill_tokens;
    e->stats.generation_tokens += (uint64_t)n_sampled;
    e->stats.prefix_cache_queries = pool->queries;
    e->stats.prefix_cache_hits = pool->hits;
    vrt_policy_stats ps = {.running = e->sched.n_running,
                           .waiting = e->sched.n_waiting,
                           .free_blocks = pool->n_free,
                           .num_blocks = pool->num_blocks,
                           .steps = e->stats.steps,
                           .preemptions = e->stats.preemptions,
                           .last_step_s = dt};
    pthread_mutex_unlock(&e->mu);
    vrt_sched_on_step(&e->sched, &ps, now_s());
    sync_policy_flag(e);
}

/* One step: plan, carry it out, forward, update, sample, stats. Returns 1
 * if it did work (a forward, or a batch that fell apart), 0 if idle. */
static int step(vrt_engine *e)
{
    vrt_sched_plan *pl = &e->plan;
    take_incoming(e);
    vrt_sched_status st = vrt_sched_step(&e->sched, e->step_cancels, e->n_step_cancels, pl);
    e->n_step_cancels = 0;
    carry_out(e, pl);
    if (st != VRT_SCHED_RUN)
        return 0;
    if (pl->n_seqs == 0)
        return 1; /* every sequence's swap-in failed: they wait again */
    vrt_err err = {0};
    int n_tokens = pl->n_prefill_tokens + pl->n_decode, n_rows = 0;
    if (grow_batch(e, n_tokens, pl->n_seqs, n_tokens, &err)) {
        VRT_ERROR("%s", err.msg);
        return 0;
    }
    double dt = 0;
    int rc = run_batch(e, pl, &n_rows, &dt, &err);
    if (rc) {
        /* A failed forward fails the requests of this batch, not the server. */
        VRT_ERROR("engine: forward failed: %s", err.msg);
        for (int s = 0; s < pl->n_seqs; s++)
            fail(e, ereq_of(pl->seqs[s].req), rc, err.msg);
        return 1;
    }
    vrt_sched_update(&e->sched, pl);
    report_batch(e, pl, dt);
    int n_sampled = sample_batch(e, pl, n_rows);
    step_stats(e, pl, dt, n_sampled);
    return 1;
}

/* A step found no blocks for anything: the scheduler frees some (or gives
 * up on the head of the queue), and the engine carries that out. */
static void unstick(vrt_engine *e)
{
    vrt_sched_unstick(&e->sched, &e->plan);
    carry_out(e, &e->plan);
}

/* Shutdown: everything still in flight ends with an error. */
static void drain(vrt_engine *e)
{
    vrt_sched_req *s;
    while ((s = vrt_sched_pop(&e->sched)) != NULL)
        fail(e, ereq_of(s), VRT_ECANCELED, "the server is shutting down");
}

static void update_gauges(vrt_engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->stats.running = e->sched.n_running;
    e->stats.waiting = e->in_flight - e->sched.n_running;
    e->stats.num_blocks = e->rt->pool.num_blocks;
    e->stats.free_blocks = e->rt->pool.n_free;
    e->stats.kv_usage =
        e->rt->pool.num_blocks ? 1.0 - (double)e->rt->pool.n_free / e->rt->pool.num_blocks : 0.0;
    pthread_mutex_unlock(&e->mu);
}

/* One turn of the engine loop: a step, then, when nothing could run, what
 * unblocks the queue. */
static void engine_turn(vrt_engine *e)
{
    int ran = step(e);
    update_gauges(e);
    if (!ran)
        unstick(e);
}

/* Shutdown: everything still in flight ends with an error. */
static void fail_all(vrt_engine *e)
{
    take_incoming(e);
    drain(e);
    update_gauges(e);
}

static void *engine_main(void *arg)
{
    vrt_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stopping && !e->incoming_head && e->n_cancels == 0 && !vrt_sched_busy(&e->sched))
            pthread_cond_wait(&e->cv, &e->mu);
        int stopping = e->stopping;
        pthread_mutex_unlock(&e->mu);
        if (stopping)
            break;
        engine_turn(e);
    }
    fail_all(e);
    return NULL;
}

/* A new engine for rt with policy pol (taken over), without its thread and
 * without the batching settings; NULL when out of memory. */
static vrt_engine *engine_alloc(vrt_runtime *rt, vrt_policy *pol)
{
    vrt_engine *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->policy = pol;
    e->rt = rt;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->stats.num_blocks = e->stats.free_blocks = rt->pool.num_blocks;
    return e;
}

int vrt_engine_create(vrt_engine **out, vrt_runtime *rt, const vrt_config *cfg, vrt_err *err)
{
    *out = NULL;
    if (!rt || !cfg)
        return vrt_err_set(err, VRT_EINVAL, "vrt_engine_create: no runtime or no config");
    /* The values come resolved from the schema; these are its own limits. */
    const int max_concurrent = cfg->batching.max_concurrent_requests;
    if (max_concurrent < 1)
        return vrt_err_set(err, VRT_EINVAL,
                           "batching.max_concurrent_requests must be at least 1 (got %d)",
                           max_concurrent);
    if (cfg->batching.max_batch_size < 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "batching.max_batch_size must be at least 1, or unset (got %d)",
                           cfg->batching.max_batch_size);
    if (cfg->batching.max_waiting_tokens < 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "batching.max_waiting_tokens must be at least 0 (got %d)",
                           cfg->batching.max_waiting_tokens);
    if (!(cfg->batching.waiting_served_ratio >= 0))
        return vrt_err_set(err, VRT_EINVAL,
                           "batching.waiting_served_ratio must be at least 0 (got %g)",
                           cfg->batching.waiting_served_ratio);
    if (!cfg->batching.chunked_prefill && rt->max_prefill < rt->max_input)
        return vrt_err_set(err, VRT_EINVAL,
                           "batching.max_batch_prefill_tokens (%d) must be at least "
                           "batching.max_input_tokens (%d) when batching.chunked_prefill is "
                           "false: raise it, lower max_input_tokens, or enable chunked_prefill",
                           rt->max_prefill, rt->max_input);
    /* KV cache: as configured, else room for every concurrent request at
     * its longest, capped at 2 GiB of host memory on the cpu backend. */
    int64_t want = rt->cfg_num_blocks;
    if (want <= 0 && rt->plan_blocks > 0) {
        /* A GPU: what the memory plan leaves (vrt_runtime_open). */
        want = rt->plan_blocks;
    } else if (want <= 0) {
        int64_t bytes = vrt_kv_block_bytes(&rt->m->cfg, rt->pool.block_size);
        int64_t cap = ((int64_t)2 << 30) / (bytes > 0 ? bytes : 1);
        want = (int64_t)max_concurrent * rt->max_blocks;
        if (want > cap)
            want = cap;
        if (want < rt->max_blocks)
            want = rt->max_blocks;
    }
    if (want != rt->pool.num_blocks) {
        int rc = vrt__runtime_resize_kv(rt, (int)want, err);
        if (rc)
            return rc;
    }
    if (rt->prefix_caching) {
        int rc = vrt_block_pool_enable_prefix_cache(&rt->pool, err);
        if (rc)
            return rc;
    }
    vrt_policy *pol;
    int prc = vrt_policy_load(&pol, cfg, POLICY_BUDGET_S, POLICY_DEADLINE_S, err);
    if (prc)
        return prc;
    vrt_engine *e = engine_alloc(rt, pol);
    if (!e) {
        vrt_policy_free(pol);
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    }
    e->max_concurrent = max_concurrent;
    vrt_sched_config sc = {
        .max_batch_prefill_tokens = rt->max_prefill,
        .max_batch_size = cfg->batching.max_batch_size,
        .max_waiting_tokens = cfg->batching.max_waiting_tokens,
        .waiting_served_ratio = cfg->batching.waiting_served_ratio,
        .chunked_prefill = cfg->batching.chunked_prefill,
        .swap_bytes = rt->swap_bytes,
        .block_bytes = vrt_kv_block_bytes(&rt->m->cfg, rt->pool.block_size),
    };
    vrt_sched_init(&e->sched, &rt->pool, pol, &sc, now_s());
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        vrt_policy_free(e->policy);
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        free(e);
        return vrt_err_set(err, VRT_ENOMEM, "cannot start the engine thread");
    }
    e->thread_started = 1;
    char mbs[48] = "any number of sequences";
    if (sc.max_batch_size > 0)
        snprintf(mbs, sizeof mbs, "at most %d sequences", sc.max_batch_size);
    VRT_INFO("engine: policy \"%s\", %d KV blocks of %d tokens (%.1f MiB), up to %d requests "
             "in flight; steps of %s and %d prefill tokens (%s); new requests join a running "
             "batch after up to %d steps (max_waiting_tokens)",
             vrt_policy_name(e->policy), rt->pool.num_blocks, rt->pool.block_size,
             (double)rt->pool.num_blocks * vrt_kv_block_bytes(&rt->m->cfg, rt->pool.block_size) /
                 (1024.0 * 1024.0),
             max_concurrent, mbs, rt->max_prefill,
             sc.chunked_prefill ? "prompts in chunks" : "every prompt in one step",
             sc.max_waiting_tokens);
    *out = e;
    return 0;
}

void vrt_engine_destroy(vrt_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->thread_started)
        pthread_join(e->thread, NULL);
    else
        fail_all(e); /* a synchronous engine: its requests end here */
    /* Requests submitted after the thread saw `stopping`. */
    while (e->incoming_head) {
        ereq *r = e->incoming_head;
        e->incoming_head = r->next;
        fail(e, r, VRT_ECANCELED, "the server is shutting down");
    }
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e->cancels);
    free(e->b_tokens);
    free(e->b_qstart);
    free(e->b_ctx);
    free(e->b_table);
    free(e->b_rows);
    free(e->b_row_owner);
    free(e->b_row_pos);
    free(e->b_trace);
    free(e->logits);
    vrt_sched_free(&e->sched);
    vrt_sched_plan_free(&e->plan);
    vrt_policy_free(e->policy);
    free(e);
}

/* ---- the synchronous engine (the runtime's generate) ------------------------ */

int vrt__engine_create_sync(vrt_engine **out, vrt_runtime *rt, vrt_err *err)
{
    *out = NULL;
    if (!rt)
        return vrt_err_set(err, VRT_EINVAL, "vrt__engine_create_sync: no runtime");
    /* No policy: fcfs in C (one request at a time has nothing to order). */
    vrt_engine *e = engine_alloc(rt, NULL);
    if (!e)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    e->sync = 1;
    e->max_concurrent = 1;
    /* One sequence: the prefill budget and the KV cache of the runtime, as
     * configured; the batching limits do not apply. */
    vrt_sched_config sc = {
        .max_batch_prefill_tokens = rt->max_prefill,
        .chunked_prefill = 1,
        .swap_bytes = rt->swap_bytes,
        .block_bytes = vrt_kv_block_bytes(&rt->m->cfg, rt->pool.block_size),
    };
    vrt_sched_init(&e->sched, &rt->pool, NULL, &sc, now_s());
    *out = e;
    return 0;
}

int vrt__engine_step_once(vrt_engine *e)
{
    if (!e->sync)
        return 0; /* the engine's own thread runs its steps */
    engine_turn(e);
    return vrt_engine_in_flight(e) > 0;
}

int vrt__engine_end(vrt_engine *e, uint64_t id)
{
    if (!e->sync)
        return 0;
    take_incoming(e);
    vrt_sched *sc = &e->sched;
    vrt_sched_req **lists[] = {sc->running, sc->waiting, sc->arrivals};
    const int counts[] = {sc->n_running, sc->n_waiting, sc->n_arrivals};
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < counts[l]; i++)
            if (lists[l][i]->id == id) {
                finish(e, ereq_of(lists[l][i]), "length"); /* drop() takes it out */
                update_gauges(e);
                return 1;
            }
    return 0;
}
