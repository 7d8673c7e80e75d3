/* engine.c — the engine thread: continuous batching over the paged KV cache
 * (see engine.h for the contract).
 *
 * Every request carries one invariant (vLLM's): `computed` tokens of its
 * token list (prompt + generated) have their K/V in the cache, and the
 * request catches up to `len`. A step:
 *
 *   1. takes new requests and cancellations from the submit side;
 *   2. gives every running request that is decoding a slot for one more
 *      token, preempting (by recompute: blocks freed, computed = 0, back to
 *      the front of the queue) the most recently admitted request when the
 *      blocks run out;
 *   3. continues chunked prefills and admits waiting requests in policy
 *      order while the prefill token budget (max_batch_prefill_tokens), the
 *      free blocks and max_batch_size allow; with chunked_prefill = false a
 *      prompt waits for a step that can take all of it; while a batch runs,
 *      new requests wait up to max_waiting_tokens steps unless enough of
 *      them are waiting (TGI's rule, see defer_new_requests);
 *   4. runs one forward over the flattened batch;
 *   5. samples a token for every request that caught up, and reports it.
 *
 * A preempted request resumes where it was: its generated tokens are
 * recomputed as if they were prompt, and its sampler state (RNG, penalty
 * history) is untouched, so its output is exactly what it would have been.
 */
#include "engine/engine.h"

#include "core/err.h"
#include "core/log.h"
#include "engine/policy.h"
#include "engine/runtime_int.h"
#include "engine/stop.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { RQ_WAITING = 0, RQ_RUNNING = 1 };

/* A policy hook's time budget inside Lua, and how long the engine waits for
 * it before abandoning it (policy.h). */
#define POLICY_BUDGET_S 0.1
#define POLICY_DEADLINE_S 1.0

typedef struct ereq {
    uint64_t id;
    char lid[64];   /* the id in logs: the server's (vrt_request_params.log_id) */
    uint64_t order; /* admission order (for policies and victims) */
    int32_t *toks;  /* [cap]: prompt then generated */
    int n_prompt, len, cap, computed;
    vrt_seq_blocks blocks;
    vrt_sampling_params sp;
    vrt_rng rng;
    int max_new, ignore_eos, prompt_logprobs, priority;
    double prio; /* the policy's priority hook: larger runs first */
    char *tenant;
    int32_t *stop_ids;
    int n_stop_ids;
    vrt_stop_checker stop;
    vrt_stop_out sout;
    vrt_detok detok;
    float *plp; /* [n_prompt] prompt logprobs when asked */
    vrt_engine_event_fn fn;
    void *ud;
    double t_submit, t_sched, t_first;
    int state;
    int n_preempted;
    uint16_t *swap_buf; /* swapped-out K/V of swap_tokens tokens, or NULL */
    int swap_tokens;
    size_t swap_size;
    struct ereq *next;
} ereq;

struct vrt_engine {
    vrt_runtime *rt;
    int max_concurrent;     /* batching.max_concurrent_requests */
    int max_batch_size;     /* batching.max_batch_size; 0 = no limit */
    int max_waiting_tokens; /* batching.max_waiting_tokens */
    double waiting_served_ratio; /* batching.waiting_served_ratio */
    int chunked_prefill;    /* batching.chunked_prefill */
    pthread_t thread;
    int thread_started;
    int sync; /* vrt__engine_create_sync: no thread; no per-request log lines */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Shared with submitters (under mu). */
    ereq *incoming_head, *incoming_tail;
    uint64_t *cancels;
    int n_cancels, cap_cancels;
    int stopping;
    int in_flight;
    uint64_t next_id;
    vrt_engine_stats stats;
    /* Engine thread only. */
    ereq **running; /* [n_running] in admission order */
    int n_running, cap_running;
    ereq **waiting; /* [n_waiting] in policy order */
    int n_waiting, cap_waiting;
    uint64_t next_order;
    vrt_engine_step_fn step_fn;
    void *step_ud;
    vrt_engine_trace_fn trace_fn;
    void *trace_ud;
    int steps_since_admit; /* steps since one admitted a new request */
    vrt_policy *policy;
    int policy_off; /* the policy was disabled (handled once) */
    double last_on_step_warn;
    double t_start;
    int64_t swap_used;     /* bytes of the CPU swap space in use */
    vrt_policy_req *views; /* [cap_views] for pick_victim */
    int cap_views;
    /* Batch scratch. */
    int32_t *b_tokens, *b_qstart, *b_ctx, *b_table, *b_rows;
    int *b_row_owner; /* per out row: index into b_seqs */
    int *b_row_pos;   /* per out row: token position */
    ereq **b_seqs;
    int *b_take;
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

static void req_free(vrt_engine *e, ereq *r)
{
    if (!r)
        return;
    vrt_block_pool_release(&e->rt->pool, &r->blocks);
    vrt_stop_free(&r->stop);
    vrt_stop_out_free(&r->sout);
    vrt_detok_free(&r->detok);
    free(r->toks);
    free(r->tenant);
    free(r->stop_ids);
    free(r->plp);
    if (r->swap_buf) {
        e->swap_used -= (int64_t)r->swap_size;
        free(r->swap_buf);
    }
    free(r);
}

static void emit_error(ereq *r, int code, const char *msg)
{
    vrt_engine_event ev = {.kind = VRT_EV_ERROR, .id = r->id, .err_code = code, .err_msg = msg};
    r->fn(r->ud, &ev);
}

/* Ends a request (the caller removed it from its list). */
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
              rc ? "error" : reason, r->n_prompt, r->len - r->n_prompt);
    if (rc) {
        emit_error(r, rc, err.msg);
    } else {
        vrt_engine_event ev = {
            .kind = VRT_EV_FINISH,
            .id = r->id,
            .finish_reason = reason,
            .n_prompt_tokens = r->n_prompt,
            .n_generated_tokens = r->len - r->n_prompt,
            .seed = r->sp.seed,
            .queue_s = r->t_sched - r->t_submit,
            .ttft_s = r->t_first > 0 ? r->t_first - r->t_submit : t - r->t_submit,
            .total_s = t - r->t_submit,
            .prompt_logprobs = r->plp,
            .text = r->sout.data ? r->sout.data : "",
            .text_len = r->sout.len,
        };
        r->fn(r->ud, &ev);
    }
    pthread_mutex_lock(&e->mu);
    e->in_flight--;
    pthread_mutex_unlock(&e->mu);
    req_free(e, r);
}

static void fail(vrt_engine *e, ereq *r, int code, const char *msg)
{
    REQ_DEBUG(e, "engine: request %s failed: %s", r->lid, msg);
    emit_error(r, code, msg);
    pthread_mutex_lock(&e->mu);
    e->in_flight--;
    pthread_mutex_unlock(&e->mu);
    req_free(e, r);
}

/* ---- lists ------------------------------------------------------------------ */

static int push(ereq ***arr, int *n, int *cap, ereq *r)
{
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 16;
        ereq **a = realloc(*arr, (size_t)c * sizeof *a);
        if (!a)
            return VRT_ENOMEM;
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = r;
    return 0;
}

static void remove_at(ereq **arr, int *n, int i)
{
    memmove(arr + i, arr + i + 1, (size_t)(*n - i - 1) * sizeof *arr);
    (*n)--;
}

/* Does a run before b in the waiting queue? Preempted requests first (they
 * already held a place), then the policy's priority, then arrival. */
static int before(const vrt_engine *e, const ereq *a, const ereq *b)
{
    (void)e;
    if ((a->n_preempted > 0) != (b->n_preempted > 0))
        return a->n_preempted > 0;
    if (a->prio != b->prio)
        return a->prio > b->prio;
    return a->order < b->order;
}

/* Moves waiting[i] forward past the requests it goes before (stable). */
static void sift_waiting(vrt_engine *e, int i)
{
    ereq *r = e->waiting[i];
    while (i > 0 && before(e, r, e->waiting[i - 1])) {
        e->waiting[i] = e->waiting[i - 1];
        i--;
    }
    e->waiting[i] = r;
}

static int enqueue_waiting(vrt_engine *e, ereq *r)
{
    if (push(&e->waiting, &e->n_waiting, &e->cap_waiting, r))
        return VRT_ENOMEM;
    sift_waiting(e, e->n_waiting - 1);
    return 0;
}

static void view_of(const vrt_engine *e, const ereq *r, vrt_policy_req *v)
{
    v->id = r->id;
    v->prompt_tokens = r->n_prompt;
    v->max_new_tokens = r->max_new;
    v->generated_tokens = r->len - r->n_prompt;
    v->priority = r->priority;
    v->tenant = r->tenant;
    v->arrival_s = r->t_submit - e->t_start;
    v->preempted = r->n_preempted;
}

/* A policy call failed (err). Once a call overran its deadline the policy
 * is disabled: that is logged once as an ERROR, and the waiting requests
 * are put back in arrival order (fcfs, what the policy answers since).
 * Other failures are logged as warnings by the caller. Returns 1 when this
 * failure disabled the policy. */
static int policy_disabled_now(vrt_engine *e, const ereq *r, const vrt_err *err)
{
    if (e->policy_off || !vrt_policy_disabled(e->policy))
        return 0;
    e->policy_off = 1;
    if (r)
        VRT_ERROR("engine: request %s: %s", r->lid, err->msg);
    else
        VRT_ERROR("engine: %s", err->msg);
    for (int i = 0; i < e->n_waiting; i++)
        e->waiting[i]->prio = -(e->waiting[i]->t_submit - e->t_start);
    for (int i = 1; i < e->n_waiting; i++) /* insertion sort: stable */
        sift_waiting(e, i);
    pthread_mutex_lock(&e->mu);
    e->stats.policy_disabled = 1;
    pthread_mutex_unlock(&e->mu);
    return 1;
}

/* Fails r because a policy hook failed on it: the log has the whole
 * message (with the Lua traceback), the client a short one. */
static void fail_policy(vrt_engine *e, ereq *r, const vrt_err *err)
{
    if (!policy_disabled_now(e, r, err))
        VRT_WARN("engine: request %s failed: %s", r->lid, err->msg);
    char msg[512];
    vrt_policy_client_msg(err->msg, msg, sizeof msg);
    fail(e, r, VRT_EPOLICY, msg);
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
    r->toks = malloc((size_t)r->cap * sizeof *r->toks);
    r->stop_ids = p->n_stop_ids ? malloc((size_t)p->n_stop_ids * sizeof *r->stop_ids) : NULL;
    r->tenant = p->tenant ? strdup(p->tenant) : NULL;
    r->plp = p->prompt_logprobs ? malloc((size_t)n * sizeof *r->plp) : NULL;
    rc = (!r->toks || (p->n_stop_ids && !r->stop_ids) || (p->tenant && !r->tenant) ||
          (p->prompt_logprobs && !r->plp))
             ? vrt_err_set(err, VRT_ENOMEM, "out of memory")
             : 0;
    if (!rc)
        rc = vrt_stop_init(&r->stop, p->stop, p->n_stop, err);
    if (rc) {
        vrt_stop_free(&r->stop);
        free(r->toks);
        free(r->stop_ids);
        free(r->tenant);
        free(r->plp);
        free(r);
        return rc;
    }
    memcpy(r->toks, prompt, (size_t)n * sizeof *r->toks);
    if (p->n_stop_ids)
        memcpy(r->stop_ids, p->stop_ids, (size_t)p->n_stop_ids * sizeof *r->stop_ids);
    if (r->plp) {
        r->plp[0] = NAN;
        for (int i = 1; i < n; i++)
            r->plp[i] = 0.0f;
    }
    r->n_stop_ids = p->n_stop_ids;
    r->n_prompt = r->len = n;
    r->sp = p->sampling;
    vrt_rng_seed(&r->rng, r->sp.seed);
    r->max_new = p->max_new_tokens;
    r->ignore_eos = p->ignore_eos;
    r->prompt_logprobs = p->prompt_logprobs;
    r->priority = p->priority;
    if (p->log_id && p->log_id[0])
        snprintf(r->lid, sizeof r->lid, "%s", p->log_id);
    r->fn = fn;
    r->ud = ud;
    r->t_submit = now_s();
    vrt_detok_init(&r->detok, rt->tok, 1);
    /* The output continues the prompt: its first token keeps its space. */
    if ((rc = vrt_detok_prime(&r->detok, prompt, (size_t)n, err)) != 0) {
        req_free(e, r);
        return rc;
    }

    pthread_mutex_lock(&e->mu);
    if (e->stopping || e->in_flight >= e->max_concurrent) {
        int stopping = e->stopping, inflight = e->in_flight;
        pthread_mutex_unlock(&e->mu);
        req_free(e, r);
        if (stopping)
            return vrt_err_set(err, VRT_ECANCELED, "the server is shutting down");
        return vrt_err_set(err, VRT_EOVERLOADED,
                           "%d requests are in flight, the limit of "
                           "batching.max_concurrent_requests: try again later",
                           inflight);
    }
    r->id = ++e->next_id;
    *id = r->id;
    if (!r->lid[0])
        snprintf(r->lid, sizeof r->lid, "%llu", (unsigned long long)r->id);
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
    if (e->n_cancels == e->cap_cancels) {
        int c = e->cap_cancels ? 2 * e->cap_cancels : 16;
        uint64_t *a = realloc(e->cancels, (size_t)c * sizeof *a);
        if (!a) {
            pthread_mutex_unlock(&e->mu);
            VRT_ERROR("engine: out of memory queueing a cancellation of request %llu",
                      (unsigned long long)id);
            return;
        }
        e->cancels = a;
        e->cap_cancels = c;
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
        ereq **s = realloc(e->b_seqs, (size_t)seqs * sizeof *s);
        if (s)
            e->b_seqs = s;
        int *k = realloc(e->b_take, (size_t)seqs * sizeof *k);
        if (k)
            e->b_take = k;
        vrt_engine_step_seq *tr = realloc(e->b_trace, (size_t)seqs * sizeof *tr);
        if (tr)
            e->b_trace = tr;
        if (!q || !c || !t || !s || !k || !tr)
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

/* Copies the K/V of r's first n_blk blocks between the cache and buf
 * ([layer][k|v][block] order); out = 1 swaps out, 0 swaps in. */
static int swap_copy(vrt_engine *e, ereq *r, int n_blk, int out, vrt_err *err)
{
    vrt_kv_cache *kv = &e->rt->kv;
    vrt_backend *be = kv->be;
    size_t elems = (size_t)kv->block_size * kv->n_kv_heads * kv->head_dim;
    size_t bytes = elems * sizeof(uint16_t);
    uint16_t *p = r->swap_buf;
    for (int l = 0; l < kv->n_layers; l++)
        for (int kvi = 0; kvi < 2; kvi++) {
            uint16_t *cache = kvi == 0 ? kv->k[l] : kv->v[l];
            for (int b = 0; b < n_blk; b++, p += elems) {
                uint16_t *blk = cache + (size_t)r->blocks.ids[b] * elems;
                int rc = out ? be->copy_to_host(be, p, blk, bytes, err)
                             : be->copy_to_device(be, blk, p, bytes, err);
                if (rc)
                    return rc;
            }
        }
    return 0;
}

/* Swaps r's computed K/V out to the CPU swap space if it fits there. */
static int swap_out(vrt_engine *e, ereq *r)
{
    vrt_runtime *rt = e->rt;
    int n_blk = vrt_blocks_for(&rt->pool, r->computed);
    if (n_blk == 0 || rt->swap_bytes <= 0 || r->swap_buf)
        return 0;
    size_t size = (size_t)vrt_kv_block_bytes(&rt->m->cfg, rt->pool.block_size) * n_blk;
    if (e->swap_used + (int64_t)size > rt->swap_bytes)
        return 0; /* swap space full: recompute instead */
    r->swap_buf = malloc(size);
    if (!r->swap_buf)
        return 0;
    vrt_err err = {0};
    if (swap_copy(e, r, n_blk, 1, &err) != 0) {
        VRT_WARN("engine: swap out of request %s failed (%s); it will be recomputed", r->lid,
                 err.msg);
        free(r->swap_buf);
        r->swap_buf = NULL;
        return 0;
    }
    r->swap_size = size;
    r->swap_tokens = r->computed;
    e->swap_used += (int64_t)size;
    pthread_mutex_lock(&e->mu);
    e->stats.swap_outs++;
    pthread_mutex_unlock(&e->mu);
    return 1;
}

/* Copies a swapped request's K/V into its (just reserved) blocks. */
static int swap_in(vrt_engine *e, ereq *r, vrt_err *err)
{
    int n_blk = vrt_blocks_for(&e->rt->pool, r->swap_tokens);
    int rc = swap_copy(e, r, n_blk, 0, err);
    if (!rc)
        r->computed = r->swap_tokens;
    e->swap_used -= (int64_t)r->swap_size;
    free(r->swap_buf);
    r->swap_buf = NULL;
    r->swap_size = 0;
    return rc;
}

/* Preempts running[i]: its K/V go to the CPU swap space when configured
 * and there is room, else it will be recomputed; its blocks are freed and
 * it goes back to the front of the queue with its tokens and sampler
 * state. */
static void preempt_at(vrt_engine *e, int i)
{
    ereq *r = e->running[i];
    remove_at(e->running, &e->n_running, i);
    int swapped = swap_out(e, r);
    vrt_block_pool_release(&e->rt->pool, &r->blocks);
    r->computed = 0;
    r->state = RQ_WAITING;
    r->n_preempted++;
    pthread_mutex_lock(&e->mu);
    uint64_t n_pre = ++e->stats.preemptions;
    pthread_mutex_unlock(&e->mu);
    if (swapped)
        VRT_INFO("engine: preempted request %s (swap: %d tokens of K/V copied to the CPU swap "
                 "space; %llu preemptions so far)",
                 r->lid, r->swap_tokens, (unsigned long long)n_pre);
    else
        VRT_INFO("engine: preempted request %s (recompute: its %d tokens are computed again when "
                 "it resumes; %llu preemptions so far)",
                 r->lid, r->len, (unsigned long long)n_pre);
    if (enqueue_waiting(e, r))
        fail(e, r, VRT_ENOMEM, "engine: out of memory");
}

static void take_incoming(vrt_engine *e)
{
    pthread_mutex_lock(&e->mu);
    ereq *list = e->incoming_head;
    e->incoming_head = e->incoming_tail = NULL;
    int n_c = e->n_cancels;
    uint64_t cancels[64];
    int take = n_c < 64 ? n_c : 64;
    if (take > 0) {
        memcpy(cancels, e->cancels, (size_t)take * sizeof *cancels);
        memmove(e->cancels, e->cancels + take, (size_t)(n_c - take) * sizeof *cancels);
    }
    e->n_cancels = n_c - take;
    pthread_mutex_unlock(&e->mu);
    while (list) {
        ereq *r = list;
        list = r->next;
        r->next = NULL;
        r->order = ++e->next_order;
        /* The policy: admit and priority, once per request. */
        vrt_policy_req v;
        view_of(e, r, &v);
        vrt_err err = {0};
        int admit = 1;
        if (vrt_policy_admit(e->policy, &v, &admit, &err) != 0 ||
            vrt_policy_priority(e->policy, &v, &r->prio, &err) != 0) {
            fail_policy(e, r, &err);
            continue;
        }
        if (!admit) {
            fail(e, r, VRT_EOVERLOADED,
                 "the request was refused by the scheduling policy (admit hook)");
            continue;
        }
        if (enqueue_waiting(e, r))
            fail(e, r, VRT_ENOMEM, "engine: out of memory");
    }
    for (int c = 0; c < take; c++) {
        for (int i = 0; i < e->n_waiting; i++)
            if (e->waiting[i]->id == cancels[c]) {
                ereq *r = e->waiting[i];
                remove_at(e->waiting, &e->n_waiting, i);
                fail(e, r, VRT_ECANCELED, "request cancelled");
                break;
            }
        for (int i = 0; i < e->n_running; i++)
            if (e->running[i]->id == cancels[c]) {
                ereq *r = e->running[i];
                remove_at(e->running, &e->n_running, i);
                fail(e, r, VRT_ECANCELED, "request cancelled");
                break;
            }
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
    int rc = vrt_sample(&r->sp, logits, V, r->toks, r->n_prompt, r->toks + r->n_prompt,
                        r->len - r->n_prompt, &r->rng, &rt->scratch, &sr, &err);
    if (rc) {
        fail(e, r, rc, err.msg);
        return -1;
    }
    int32_t tok = sr.token;
    if (r->t_first == 0)
        r->t_first = now_s();
    r->toks[r->len++] = tok;
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
        .id = r->id,
        .token = tok,
        .logprob = sr.logprob,
        .special = special,
        .index = r->len - r->n_prompt - 1,
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
    else if (r->len - r->n_prompt >= r->max_new || r->len >= rt->max_total)
        reason = "length";
    if (reason) {
        finish(e, r, reason);
        return 1;
    }
    return 0;
}

/* The running request to preempt: the policy's pick_victim, else the most
 * recently admitted. */
static int pick_victim(vrt_engine *e)
{
    int n = e->n_running, v = n - 1;
    if (n > e->cap_views) {
        vrt_policy_req *a = realloc(e->views, (size_t)n * 2 * sizeof *a);
        if (!a)
            return v;
        e->views = a;
        e->cap_views = n * 2;
    }
    for (int i = 0; i < n; i++)
        view_of(e, e->running[i], &e->views[i]);
    vrt_err err = {0};
    if (vrt_policy_pick_victim(e->policy, e->views, n, &v, &err) != 0) {
        if (!policy_disabled_now(e, NULL, &err))
            VRT_WARN("engine: %s; preempting the most recent request instead", err.msg);
        v = n - 1;
    }
    return v;
}

/* batching.max_waiting_tokens, TGI's rule: while a batch runs, new
 * requests (never scheduled; preempted ones resume as soon as they fit)
 * join it only when max_waiting_tokens steps have run since new requests
 * last joined, or when at least waiting_served_ratio times as many new
 * requests wait as run. Each join adds prefill work to a step and so slows
 * the running requests' next token; waiting lets several join at once.
 * 0 admits at once. */
static int defer_new_requests(const vrt_engine *e)
{
    if (e->n_running == 0 || e->max_waiting_tokens == 0 ||
        e->steps_since_admit >= e->max_waiting_tokens)
        return 0;
    int n_new = 0;
    for (int i = 0; i < e->n_waiting; i++)
        n_new += e->waiting[i]->n_preempted == 0;
    return n_new < (int)floor(e->n_running * e->waiting_served_ratio);
}

/* One scheduling step; returns 1 if it ran a forward, 0 if idle. */
static int step(vrt_engine *e)
{
    vrt_runtime *rt = e->rt;
    vrt_err err = {0};
    take_incoming(e);

    /* 2. Decoding requests need one more slot each; when the blocks run
     * out, the most recently admitted request is preempted (possibly the
     * one asking, which then waits). */
    for (int i = 0; i < e->n_running;) {
        ereq *r = e->running[i];
        if (r->computed < r->len - 1) {
            i++;
            continue; /* still prefilling */
        }
        int preempted_self = 0;
        while (vrt_block_pool_reserve(&rt->pool, &r->blocks, r->len, &err) != 0) {
            int v = pick_victim(e);
            preempted_self = e->running[v] == r;
            preempt_at(e, v);
            if (preempted_self)
                break;
            if (v < i)
                i--; /* r moved one place up */
        }
        if (!preempted_self)
            i++;
    }

    /* 3. Build the batch: decodes, ongoing prefills, then admissions. */
    int budget = rt->max_prefill, n_seqs = 0, T = 0, n_rows = 0;
    int cap = e->n_running + e->n_waiting;
    int max_tokens = cap + budget;
    if (grow_batch(e, max_tokens, cap > 0 ? cap : 1, max_tokens, &err)) {
        VRT_ERROR("%s", err.msg);
        return 0;
    }
    for (int i = 0; i < e->n_running; i++) {
        ereq *r = e->running[i];
        int todo = r->len - r->computed;
        int take = todo;
        if (todo > 1) { /* a chunked prefill in progress */
            if (budget <= 0)
                continue;
            take = todo < budget ? todo : budget;
            if (vrt_block_pool_reserve(&rt->pool, &r->blocks, r->computed + take, &err) != 0)
                continue; /* wait for blocks */
            budget -= take;
        }
        e->b_seqs[n_seqs] = r;
        e->b_take[n_seqs++] = take;
    }
    int defer_new = defer_new_requests(e), admitted_new = 0;
    while (e->n_waiting > 0 && budget > 0) {
        int wi = 0;
        ereq *r = e->waiting[wi];
        if (e->max_batch_size > 0 && e->n_running >= e->max_batch_size)
            break; /* batching.max_batch_size: the others wait */
        if (defer_new && r->n_preempted == 0)
            break; /* batching.max_waiting_tokens: not yet */
        /* Full blocks of the prompt that are in the prefix cache are taken
         * over instead of computed (not when prompt logprobs are asked). */
        int base = r->swap_buf ? r->swap_tokens : 0;
        if (!r->swap_buf && r->computed == 0 && r->blocks.n == 0 && !r->prompt_logprobs)
            r->computed = vrt_block_pool_match_prefix(&rt->pool, &r->blocks, r->toks, r->len);
        if (!r->swap_buf)
            base = r->computed;
        int todo = r->len - base;
        int take = todo < budget ? todo : budget;
        if (!e->chunked_prefill && take < todo && todo <= rt->max_prefill) {
            /* batching.chunked_prefill = false: the prefill runs in one
             * step; it waits for a step with room for all of it. (Only a
             * recompute longer than the whole budget is chunked.) */
            vrt_block_pool_release(&rt->pool, &r->blocks);
            r->computed = 0;
            break;
        }
        if (vrt_block_pool_reserve(&rt->pool, &r->blocks, base + take, &err) != 0) {
            /* No room now: it waits, holding nothing. */
            vrt_block_pool_release(&rt->pool, &r->blocks);
            r->computed = 0;
            break;
        }
        if (r->swap_buf && swap_in(e, r, &err) != 0) {
            VRT_WARN("engine: swap in of request %s failed (%s); recomputing it", r->lid, err.msg);
            r->computed = 0;
            take = r->len < budget ? r->len : budget;
            if (vrt_block_pool_reserve(&rt->pool, &r->blocks, take, &err) != 0) {
                vrt_block_pool_release(&rt->pool, &r->blocks);
                break;
            }
        }
        remove_at(e->waiting, &e->n_waiting, wi);
        if (push(&e->running, &e->n_running, &e->cap_running, r)) {
            fail(e, r, VRT_ENOMEM, "engine: out of memory");
            continue;
        }
        if (r->t_sched == 0) {
            r->t_sched = now_s();
            REQ_DEBUG(e,
                      "engine: request %s scheduled (%d prompt tokens, %d from the prefix "
                      "cache; waited %.3f s)",
                      r->lid, r->n_prompt, r->computed, r->t_sched - r->t_submit);
        }
        if (r->n_preempted == 0)
            admitted_new = 1;
        r->state = RQ_RUNNING;
        budget -= take;
        e->b_seqs[n_seqs] = r;
        e->b_take[n_seqs++] = take;
    }
    if (n_seqs == 0)
        return 0;
    if (admitted_new)
        e->steps_since_admit = 0;
    else if (e->steps_since_admit < INT32_MAX)
        e->steps_since_admit++;

    /* 4. Flatten and run. */
    e->b_qstart[0] = 0;
    for (int s = 0; s < n_seqs; s++) {
        ereq *r = e->b_seqs[s];
        int take = e->b_take[s];
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
    int rows_needed = n_rows > 0 ? n_rows : 1;
    if (grow_batch(e, T, n_seqs, rows_needed, &err)) {
        VRT_ERROR("%s", err.msg);
        return 0;
    }
    vrt_batch b = {.n_seqs = n_seqs,
                   .tokens = e->b_tokens,
                   .q_start = e->b_qstart,
                   .ctx_len = e->b_ctx,
                   .block_table = e->b_table,
                   .max_blocks_per_seq = rt->max_blocks,
                   .out_rows = e->b_rows,
                   .n_out = n_rows};
    double t0 = now_s();
    int rc = n_rows > 0 ? vrt_model_forward(rt->m, &rt->kv, &b, e->logits, &err) : 0;
    double dt = now_s() - t0;
    if (n_rows == 0) {
        /* Only partial prefill chunks without logits: still a forward. */
        int32_t last = T - 1;
        b.out_rows = &last;
        b.n_out = 1;
        rc = vrt_model_forward(rt->m, &rt->kv, &b, e->logits, &err);
        dt = now_s() - t0;
    }
    if (rc) {
        /* A failed forward fails the requests of this batch, not the server. */
        VRT_ERROR("engine: forward failed: %s", err.msg);
        for (int s = 0; s < n_seqs; s++) {
            ereq *r = e->b_seqs[s];
            for (int i = 0; i < e->n_running; i++)
                if (e->running[i] == r) {
                    remove_at(e->running, &e->n_running, i);
                    break;
                }
            fail(e, r, rc, err.msg);
        }
        return 1;
    }
    int n_prefill_tokens = 0, n_sampled = 0, n_decode = 0;
    for (int s = 0; s < n_seqs; s++) {
        ereq *r = e->b_seqs[s];
        /* One token after the prompt, computed alone: a decode. Anything
         * else (a prompt, a chunk, a recompute) is prefill. */
        int decode = e->b_take[s] == 1 && r->len > r->n_prompt && r->computed == r->len - 1;
        if (decode)
            n_decode++;
        else
            n_prefill_tokens += e->b_take[s];
        e->b_trace[s] = (vrt_engine_step_seq){r->id, e->b_take[s], !decode};
        r->computed += e->b_take[s];
        vrt_block_pool_commit(&rt->pool, &r->blocks, r->toks, r->computed);
    }
    if (e->step_fn)
        e->step_fn(e->step_ud, dt, n_prefill_tokens, n_decode);
    if (e->trace_fn) {
        vrt_engine_step_info info = {.step = e->stats.steps + 1,
                                     .n_seqs = n_seqs,
                                     .n_prefill_tokens = n_prefill_tokens,
                                     .n_decode = n_decode,
                                     .waiting = e->n_waiting,
                                     .seqs = e->b_trace};
        e->trace_fn(e->trace_ud, &info);
    }

    /* 5. Prompt logprobs and sampling. */
    const int V = rt->m->cfg.vocab_size;
    int row = 0;
    for (int s = 0; s < n_seqs; s++) {
        ereq *r = e->b_seqs[s];
        const float *last_logits = NULL;
        while (row < n_rows && e->b_row_owner[row] == s) {
            int pos = e->b_row_pos[row];
            const float *lg = e->logits + (size_t)row * V;
            if (r->plp && pos < r->n_prompt - 1)
                r->plp[pos + 1] = (float)vrt_token_logprob(lg, V, r->toks[pos + 1]);
            if (pos == r->len - 1)
                last_logits = lg;
            row++;
        }
        if (!last_logits || r->computed != r->len)
            continue;
        /* r caught up: it samples; it leaves running when it ends. */
        int idx = -1;
        for (int i = 0; i < e->n_running; i++)
            if (e->running[i] == r) {
                idx = i;
                break;
            }
        n_sampled++;
        if (advance(e, r, last_logits) != 0 && idx >= 0)
            remove_at(e->running, &e->n_running, idx);
    }
    pthread_mutex_lock(&e->mu);
    e->stats.steps++;
    e->stats.last_step_s = dt;
    e->stats.batch_size = n_seqs;
    e->stats.prompt_tokens += (uint64_t)n_prefill_tokens;
    e->stats.generation_tokens += (uint64_t)n_sampled;
    e->stats.prefix_cache_queries = rt->pool.queries;
    e->stats.prefix_cache_hits = rt->pool.hits;
    vrt_policy_stats ps = {.running = e->n_running,
                           .waiting = e->n_waiting,
                           .free_blocks = rt->pool.n_free,
                           .num_blocks = rt->pool.num_blocks,
                           .steps = e->stats.steps,
                           .preemptions = e->stats.preemptions,
                           .last_step_s = dt};
    pthread_mutex_unlock(&e->mu);
    if (vrt_policy_on_step(e->policy, &ps, &err) != 0 && !policy_disabled_now(e, NULL, &err)) {
        double t = now_s();
        if (t - e->last_on_step_warn > 10.0) { /* at most one warning per 10 s */
            VRT_WARN("engine: %s", err.msg);
            e->last_on_step_warn = t;
        }
    }
    return 1;
}

static void update_gauges(vrt_engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->stats.running = e->n_running;
    e->stats.waiting = e->in_flight - e->n_running;
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
    if (!ran && e->n_waiting > 0 && e->n_running == 0) {
        /* Nothing fits although nothing runs: the head of the queue can
         * never be scheduled (cannot happen with a valid plan). */
        ereq *r = e->waiting[0];
        remove_at(e->waiting, &e->n_waiting, 0);
        VRT_WARN("engine: request %s failed: the KV cache (%d blocks of %d tokens) cannot "
                 "hold its %d tokens",
                 r->lid, e->rt->pool.num_blocks, e->rt->pool.block_size, r->len);
        fail(e, r, VRT_ENOSPC, "the KV cache cannot hold this request");
    } else if (!ran && e->n_running > 0) {
        /* Chunked prefills each holding part of the blocks and none
         * able to go on: free the newest one's blocks. */
        preempt_at(e, e->n_running - 1);
    }
}

/* Shutdown: everything still in flight ends with an error. */
static void fail_all(vrt_engine *e)
{
    take_incoming(e);
    while (e->n_running > 0) {
        ereq *r = e->running[--e->n_running];
        fail(e, r, VRT_ECANCELED, "the server is shutting down");
    }
    while (e->n_waiting > 0) {
        ereq *r = e->waiting[--e->n_waiting];
        fail(e, r, VRT_ECANCELED, "the server is shutting down");
    }
    update_gauges(e);
}

static void *engine_main(void *arg)
{
    vrt_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stopping && !e->incoming_head && e->n_cancels == 0 && e->n_running == 0 &&
               e->n_waiting == 0)
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
    e->t_start = now_s();
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
    e->max_batch_size = cfg->batching.max_batch_size;
    e->max_waiting_tokens = cfg->batching.max_waiting_tokens;
    e->waiting_served_ratio = cfg->batching.waiting_served_ratio;
    e->chunked_prefill = cfg->batching.chunked_prefill;
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        vrt_policy_free(e->policy);
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        free(e);
        return vrt_err_set(err, VRT_ENOMEM, "cannot start the engine thread");
    }
    e->thread_started = 1;
    char mbs[48] = "any number of sequences";
    if (e->max_batch_size > 0)
        snprintf(mbs, sizeof mbs, "at most %d sequences", e->max_batch_size);
    VRT_INFO("engine: policy \"%s\", %d KV blocks of %d tokens (%.1f MiB), up to %d requests "
             "in flight; steps of %s and %d prefill tokens (%s); new requests join a running "
             "batch after up to %d steps (max_waiting_tokens)",
             vrt_policy_name(e->policy), rt->pool.num_blocks, rt->pool.block_size,
             (double)rt->pool.num_blocks * vrt_kv_block_bytes(&rt->m->cfg, rt->pool.block_size) /
                 (1024.0 * 1024.0),
             max_concurrent, mbs, rt->max_prefill,
             e->chunked_prefill ? "prompts in chunks" : "every prompt in one step",
             e->max_waiting_tokens);
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
    free(e->running);
    free(e->waiting);
    free(e->b_tokens);
    free(e->b_qstart);
    free(e->b_ctx);
    free(e->b_table);
    free(e->b_rows);
    free(e->b_row_owner);
    free(e->b_row_pos);
    free(e->b_seqs);
    free(e->b_take);
    free(e->b_trace);
    free(e->logits);
    free(e->views);
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
    e->chunked_prefill = 1;
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
    for (int i = 0; i < e->n_running; i++)
        if (e->running[i]->id == id) {
            ereq *r = e->running[i];
            remove_at(e->running, &e->n_running, i);
            finish(e, r, "length");
            update_gauges(e);
            return 1;
        }
    for (int i = 0; i < e->n_waiting; i++)
        if (e->waiting[i]->id == id) {
            ereq *r = e->waiting[i];
            remove_at(e->waiting, &e->n_waiting, i);
            finish(e, r, "length");
            update_gauges(e);
            return 1;
        }
    return 0;
}
