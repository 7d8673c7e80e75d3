/* sched.c — admission, preemption and the batch of each step (see sched.h).
 */
#include "engine/sched.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void vrt_sched_init(vrt_sched *s, vrt_block_pool *pool, vrt_policy *policy,
                    const vrt_sched_config *cfg, double t_start)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->pool = pool;
    s->policy = policy;
    s->t_start = t_start;
}

void vrt_sched_free(vrt_sched *s)
{
    free(s->arrivals);
    free(s->waiting);
    free(s->running);
    free(s->views);
    memset(s, 0, sizeof *s);
}

void vrt_sched_plan_free(vrt_sched_plan *p)
{
    free(p->seqs);
    free(p->admitted);
    free(p->preempted);
    free(p->swap_ids);
    free(p->swap_in);
    free(p->rejected);
    free(p->cancelled);
    memset(p, 0, sizeof *p);
}

/* ---- lists ------------------------------------------------------------------ */

/* vrt_grow for n arrays that share the capacity *cap: pps[i] is the address
 * of an array (e.g. &s->waiting) of elems[i]-byte elements. Each grows from
 * *cap to the same new capacity; *cap changes only when all have grown
 * (arrays grown before a failure keep their larger storage, which the next
 * call reuses). Returns 0 or VRT_ENOMEM. */
static int grow_shared(size_t *cap, size_t need, int n, void *const pps[], const size_t elems[])
{
    size_t grown = *cap;
    for (int i = 0; i < n; i++) {
        grown = *cap;
        if (vrt_grow(pps[i], &grown, need, elems[i]))
            return VRT_ENOMEM;
    }
    *cap = grown;
    return 0;
}

/* Every list can hold every request, so moving one never allocates. */
int vrt_sched_add(vrt_sched *s, vrt_sched_req *r, vrt_err *err)
{
    void *const lists[] = {&s->arrivals, &s->waiting, &s->running};
    const size_t elems[] = {sizeof *s->arrivals, sizeof *s->waiting, sizeof *s->running};
    if (grow_shared(&s->cap_, (size_t)s->n_reqs + 1, 3, lists, elems))
        return vrt_err_set(err, VRT_ENOMEM, "engine: out of memory");
    s->arrivals[s->n_arrivals++] = r;
    s->n_reqs++;
    r->state = VRT_SCHED_ARRIVED;
    return 0;
}

static void remove_at(vrt_sched_req **arr, int *n, int i)
{
    memmove(arr + i, arr + i + 1, (size_t)(*n - i - 1) * sizeof *arr);
    (*n)--;
}

static int index_of(vrt_sched_req *const *arr, int n, const vrt_sched_req *r)
{
    for (int i = 0; i < n; i++)
        if (arr[i] == r)
            return i;
    return -1;
}

/* Does a run before b in the waiting queue? Preempted requests first (they
 * already held a place), then the policy's priority, then arrival. */
static int before(const vrt_sched_req *a, const vrt_sched_req *b)
{
    if ((a->n_preempted > 0) != (b->n_preempted > 0))
        return a->n_preempted > 0;
    if (a->prio != b->prio)
        return a->prio > b->prio;
    return a->order < b->order;
}

/* Moves waiting[i] forward past the requests it goes before (stable). */
static void sift_waiting(vrt_sched *s, int i)
{
    vrt_sched_req *r = s->waiting[i];
    while (i > 0 && before(r, s->waiting[i - 1])) {
        s->waiting[i] = s->waiting[i - 1];
        i--;
    }
    s->waiting[i] = r;
}

static void enqueue_waiting(vrt_sched *s, vrt_sched_req *r)
{
    r->state = VRT_SCHED_WAITING;
    s->waiting[s->n_waiting++] = r;
    sift_waiting(s, s->n_waiting - 1);
}

/* r leaves the scheduler: its blocks and swap space are given back. */
static void give_back(vrt_sched *s, vrt_sched_req *r)
{
    vrt_block_pool_release(s->pool, &r->blocks);
    if (r->swapped) {
        s->swap_used -= r->swap_size;
        r->swapped = 0;
        r->swap_size = 0;
    }
    r->state = VRT_SCHED_OUT;
    s->n_reqs--;
}

void vrt_sched_remove(vrt_sched *s, vrt_sched_req *r)
{
    vrt_sched_req **arr = NULL;
    int *n = NULL;
    switch (r->state) {
    case VRT_SCHED_ARRIVED: arr = s->arrivals, n = &s->n_arrivals; break;
    case VRT_SCHED_WAITING: arr = s->waiting, n = &s->n_waiting; break;
    case VRT_SCHED_RUNNING: arr = s->running, n = &s->n_running; break;
    default: vrt_block_pool_release(s->pool, &r->blocks); return;
    }
    int i = index_of(arr, *n, r);
    if (i >= 0)
        remove_at(arr, n, i);
    give_back(s, r);
}

vrt_sched_req *vrt_sched_pop(vrt_sched *s)
{
    vrt_sched_req *r = NULL;
    if (s->n_running > 0)
        r = s->running[--s->n_running];
    else if (s->n_waiting > 0)
        r = s->waiting[--s->n_waiting];
    else if (s->n_arrivals > 0)
        r = s->arrivals[--s->n_arrivals];
    if (r)
        give_back(s, r);
    return r;
}

int vrt_sched_busy(const vrt_sched *s)
{
    return s->n_reqs > 0;
}

/* ---- the plan ------------------------------------------------------------------ */

static void plan_reset(vrt_sched_plan *p)
{
    p->n_seqs = p->n_prefill_tokens = p->n_decode = 0;
    p->n_admitted = p->n_preempted = p->n_swap_ids = p->n_swap_in = 0;
    p->n_rejected = p->n_cancelled = 0;
}

/* Room for every request in each list of the plan. */
static int plan_reserve(vrt_sched_plan *p, int n, int n_cancels)
{
    void *const lists[] = {&p->seqs, &p->admitted, &p->preempted, &p->swap_in, &p->rejected};
    const size_t elems[] = {sizeof *p->seqs, sizeof *p->admitted, sizeof *p->preempted,
                            sizeof *p->swap_in, sizeof *p->rejected};
    if (grow_shared(&p->cap_, (size_t)n, 5, lists, elems) ||
        vrt_grow(&p->cancelled, &p->cap_cancelled_, (size_t)n_cancels, sizeof *p->cancelled))
        return VRT_ENOMEM;
    return 0;
}

static void reject(vrt_sched *s, vrt_sched_plan *p, vrt_sched_req *r, int code, const char *msg)
{
    give_back(s, r);
    vrt_sched_reject *rj = &p->rejected[p->n_rejected++];
    rj->req = r;
    rj->code = code;
    snprintf(rj->msg, sizeof rj->msg, "%s", msg);
}

static void add_seq(vrt_sched_plan *p, vrt_sched_req *r, int take)
{
    p->seqs[p->n_seqs++] = (vrt_sched_seq){.req = r, .take = take};
}

/* ---- the policy ------------------------------------------------------------------ */

static void view_of(const vrt_sched *s, const vrt_sched_req *r, vrt_policy_req *v)
{
    v->id = r->id;
    v->prompt_tokens = r->n_prompt;
    v->max_new_tokens = r->max_new;
    v->generated_tokens = r->len - r->n_prompt;
    v->priority = r->priority;
    v->tenant = r->tenant;
    v->arrival_s = r->t_submit - s->t_start;
    v->preempted = r->n_preempted;
}

/* A policy call failed (err). Once a call overran its deadline the policy
 * is disabled: that is logged once as an ERROR, and the waiting requests
 * are put back in arrival order (fcfs, what the policy answers since).
 * Other failures are logged as warnings by the caller. Returns 1 when this
 * failure disabled the policy. */
static int policy_disabled_now(vrt_sched *s, const vrt_sched_req *r, const vrt_err *err)
{
    if (s->policy_off || !vrt_policy_disabled(s->policy))
        return 0;
    s->policy_off = 1;
    if (r)
        VRT_ERROR("engine: request %s: %s", r->lid, err->msg);
    else
        VRT_ERROR("engine: %s", err->msg);
    for (int i = 0; i < s->n_waiting; i++)
        s->waiting[i]->prio = -(s->waiting[i]->t_submit - s->t_start);
    for (int i = 1; i < s->n_waiting; i++) /* insertion sort: stable */
        sift_waiting(s, i);
    return 1;
}

/* The arrivals in order: the policy's admit and priority, once each; a
 * refused request or a failed hook rejects it (the log has the whole
 * message with the Lua traceback, the client a short one). */
static void take_arrivals(vrt_sched *s, vrt_sched_plan *p)
{
    for (int a = 0; a < s->n_arrivals; a++) {
        vrt_sched_req *r = s->arrivals[a];
        r->order = ++s->next_order;
        vrt_policy_req v;
        view_of(s, r, &v);
        vrt_err err = {0};
        int admit = 1;
        if (vrt_policy_admit(s->policy, &v, &admit, &err) != 0 ||
            vrt_policy_priority(s->policy, &v, &r->prio, &err) != 0) {
            if (!policy_disabled_now(s, r, &err))
                VRT_WARN("engine: request %s failed: %s", r->lid, err.msg);
            char msg[512];
            vrt_policy_client_msg(err.msg, msg, sizeof msg);
            reject(s, p, r, VRT_EPOLICY, msg);
            continue;
        }
        if (!admit) {
            reject(s, p, r, VRT_EOVERLOADED,
                   "the request was refused by the scheduling policy (admit hook)");
            continue;
        }
        enqueue_waiting(s, r);
    }
    s->n_arrivals = 0;
}

static void take_cancels(vrt_sched *s, vrt_sched_plan *p, const uint64_t *cancels, int n)
{
    for (int c = 0; c < n; c++) {
        vrt_sched_req **lists[2] = {s->waiting, s->running};
        int *counts[2] = {&s->n_waiting, &s->n_running};
        for (int l = 0; l < 2; l++)
            for (int i = 0; i < *counts[l]; i++)
                if (lists[l][i]->id == cancels[c]) {
                    vrt_sched_req *r = lists[l][i];
                    remove_at(lists[l], counts[l], i);
                    give_back(s, r);
                    p->cancelled[p->n_cancelled++] = r;
                    break;
                }
    }
}

/* The running request to preempt: the policy's pick_victim, else the most
 * recently admitted. */
static int pick_victim(vrt_sched *s)
{
    int n = s->n_running, v = n - 1;
    if (vrt_grow(&s->views, &s->cap_views, (size_t)n, sizeof *s->views))
        return v;
    for (int i = 0; i < n; i++)
        view_of(s, s->running[i], &s->views[i]);
    vrt_err err = {0};
    if (vrt_policy_pick_victim(s->policy, s->views, n, &v, &err) != 0) {
        if (!policy_disabled_now(s, NULL, &err))
            VRT_WARN("engine: %s; preempting the most recent request instead", err.msg);
        v = n - 1;
    }
    return v;
}

void vrt_sched_on_step(vrt_sched *s, const vrt_policy_stats *st, double now)
{
    vrt_err err = {0};
    if (vrt_policy_on_step(s->policy, st, &err) != 0 && !policy_disabled_now(s, NULL, &err)) {
        if (now - s->last_on_step_warn > 10.0) { /* at most one warning per 10 s */
            VRT_WARN("engine: %s", err.msg);
            s->last_on_step_warn = now;
        }
    }
}

/* ---- preemption ------------------------------------------------------------------ */

/* Swap (1) or recompute (0): swap when the swap space is configured and
 * has room for r's computed blocks. The plan keeps the ids to copy. */
static int swap_out(vrt_sched *s, vrt_sched_plan *p, vrt_sched_req *r, int *first, int *n_blocks)
{
    int n_blk = vrt_blocks_for(s->pool, r->computed);
    if (n_blk == 0 || s->cfg.swap_bytes <= 0 || r->swapped)
        return 0;
    int64_t size = s->cfg.block_bytes * n_blk;
    if (s->swap_used + size > s->cfg.swap_bytes)
        return 0; /* swap space full: recompute instead */
    if (vrt_grow(&p->swap_ids, &p->cap_swap_ids_, (size_t)p->n_swap_ids + (size_t)n_blk,
                 sizeof *p->swap_ids))
        return 0;
    *first = p->n_swap_ids;
    *n_blocks = n_blk;
    memcpy(p->swap_ids + p->n_swap_ids, r->blocks.ids, (size_t)n_blk * sizeof *p->swap_ids);
    p->n_swap_ids += n_blk;
    r->swapped = 1;
    r->swap_tokens = r->computed;
    r->swap_size = size;
    s->swap_used += size;
    return 1;
}

/* Preempts running[i]: swapped or to be recomputed, its blocks freed, back
 * to the front of the queue with its tokens. */
static void preempt_at(vrt_sched *s, vrt_sched_plan *p, int i)
{
    vrt_sched_req *r = s->running[i];
    remove_at(s->running, &s->n_running, i);
    vrt_sched_preempt *pe = &p->preempted[p->n_preempted++];
    *pe = (vrt_sched_preempt){.req = r};
    pe->swap = swap_out(s, p, r, &pe->first, &pe->n_blocks);
    vrt_block_pool_release(s->pool, &r->blocks);
    r->computed = 0;
    r->n_preempted++;
    enqueue_waiting(s, r);
}

void vrt_sched_swap_failed(vrt_sched *s, vrt_sched_req *r)
{
    if (!r->swapped)
        return; /* already resumed in the same plan: its swap-in fails too */
    s->swap_used -= r->swap_size;
    r->swapped = 0;
    r->swap_size = 0;
}

void vrt_sched_unschedule(vrt_sched *s, vrt_sched_plan *p, int i)
{
    vrt_sched_seq sq = p->seqs[i];
    memmove(p->seqs + i, p->seqs + i + 1, (size_t)(p->n_seqs - i - 1) * sizeof *p->seqs);
    p->n_seqs--;
    if (sq.decode)
        p->n_decode--;
    else
        p->n_prefill_tokens -= sq.take;
    vrt_sched_req *r = sq.req;
    int ri = index_of(s->running, s->n_running, r);
    if (ri >= 0)
        remove_at(s->running, &s->n_running, ri);
    vrt_block_pool_release(s->pool, &r->blocks);
    vrt_sched_swap_failed(s, r);
    r->computed = 0;
    enqueue_waiting(s, r);
}

void vrt_sched_unstick(vrt_sched *s, vrt_sched_plan *p)
{
    plan_reset(p);
    if (plan_reserve(p, s->n_reqs, 0)) {
        VRT_ERROR("engine: out of memory");
        return;
    }
    if (s->n_waiting > 0 && s->n_running == 0) {
        /* Nothing fits although nothing runs: the head of the queue can
         * never be scheduled (cannot happen with a valid plan). */
        vrt_sched_req *r = s->waiting[0];
        remove_at(s->waiting, &s->n_waiting, 0);
        VRT_WARN("engine: request %s failed: the KV cache (%d blocks of %d tokens) cannot "
                 "hold its %d tokens",
                 r->lid, s->pool->num_blocks, s->pool->block_size, r->len);
        reject(s, p, r, VRT_ENOSPC, "the KV cache cannot hold this request");
    } else if (s->n_running > 0) {
        preempt_at(s, p, s->n_running - 1);
    }
}

/* ---- one step ---------------------------------------------------------------------- */

/* Decoding requests need one more slot each; when the blocks run out, a
 * victim is preempted (possibly the one asking, which then waits). */
static void reserve_decodes(vrt_sched *s, vrt_sched_plan *p)
{
    for (int i = 0; i < s->n_running;) {
        vrt_sched_req *r = s->running[i];
        if (r->computed < r->len - 1) {
            i++;
            continue; /* still prefilling */
        }
        int preempted_self = 0;
        while (vrt_block_pool_grow(s->pool, &r->blocks, r->len) != VRT_GROW_OK) {
            int v = pick_victim(s);
            preempted_self = s->running[v] == r;
            preempt_at(s, p, v);
            if (preempted_self)
                break;
            if (v < i)
                i--; /* r moved one place up */
        }
        if (!preempted_self)
            i++;
    }
}

/* batching.max_waiting_tokens, TGI's rule: while a batch runs, new
 * requests (never scheduled; preempted ones resume as soon as they fit)
 * join it only when max_waiting_tokens steps have run since new requests
 * last joined, or when at least waiting_served_ratio times as many new
 * requests wait as run. Each join adds prefill work to a step and so slows
 * the running requests' next token; waiting lets several join at once.
 * 0 admits at once. */
static int defer_new_requests(const vrt_sched *s)
{
    if (s->n_running == 0 || s->cfg.max_waiting_tokens == 0 ||
        s->steps_since_admit >= s->cfg.max_waiting_tokens)
        return 0;
    int n_new = 0;
    for (int i = 0; i < s->n_waiting; i++)
        n_new += s->waiting[i]->n_preempted == 0;
    return n_new < (int)floor(s->n_running * s->cfg.waiting_served_ratio);
}

/* Running requests go on (decodes, chunks of prefills in progress) within
 * the prefill budget; returns what is left of it. */
static int continue_running(vrt_sched *s, vrt_sched_plan *p, int budget)
{
    for (int i = 0; i < s->n_running; i++) {
        vrt_sched_req *r = s->running[i];
        int todo = r->len - r->computed;
        int take = todo;
        if (todo > 1) { /* a chunked prefill in progress */
            if (budget <= 0)
                continue;
            take = todo < budget ? todo : budget;
            if (vrt_block_pool_grow(s->pool, &r->blocks, r->computed + take) != VRT_GROW_OK)
                continue; /* wait for blocks */
            budget -= take;
        }
        add_seq(p, r, take);
    }
    return budget;
}

/* Admits waiting requests in queue order while the budget, the blocks and
 * max_batch_size allow; returns 1 when a new (never preempted) one joined. */
static int admit_waiting(vrt_sched *s, vrt_sched_plan *p, int budget)
{
    const int max_prefill = s->cfg.max_batch_prefill_tokens;
    int defer_new = defer_new_requests(s), admitted_new = 0;
    while (s->n_waiting > 0 && budget > 0) {
        vrt_sched_req *r = s->waiting[0];
        if (s->cfg.max_batch_size > 0 && s->n_running >= s->cfg.max_batch_size)
            break; /* batching.max_batch_size: the others wait */
        if (defer_new && r->n_preempted == 0)
            break; /* batching.max_waiting_tokens: not yet */
        /* Full blocks of the prompt that are in the prefix cache are taken
         * over instead of computed (not when prompt logprobs are asked). */
        if (!r->swapped && r->computed == 0 && r->blocks.n == 0 && !r->prompt_logprobs)
            r->computed = vrt_block_pool_match_prefix(s->pool, &r->blocks, r->toks, r->len);
        int base = r->swapped ? r->swap_tokens : r->computed;
        int todo = r->len - base;
        int take = todo < budget ? todo : budget;
        if (!s->cfg.chunked_prefill && take < todo && todo <= max_prefill) {
            /* batching.chunked_prefill = false: the prefill runs in one
             * step; it waits for a step with room for all of it. (Only a
             * recompute longer than the whole budget is chunked.) */
            vrt_block_pool_release(s->pool, &r->blocks);
            r->computed = 0;
            break;
        }
        if (vrt_block_pool_grow(s->pool, &r->blocks, base + take) != VRT_GROW_OK) {
            /* No room now: it waits, holding nothing. */
            vrt_block_pool_release(s->pool, &r->blocks);
            r->computed = 0;
            break;
        }
        if (r->swapped) { /* resumes from the swap space: the plan copies it in */
            r->computed = r->swap_tokens;
            s->swap_used -= r->swap_size;
            r->swapped = 0;
            r->swap_size = 0;
            p->swap_in[p->n_swap_in++] = r;
        }
        remove_at(s->waiting, &s->n_waiting, 0);
        s->running[s->n_running++] = r;
        r->state = VRT_SCHED_RUNNING;
        p->admitted[p->n_admitted++] = r;
        if (r->n_preempted == 0)
            admitted_new = 1;
        budget -= take;
        add_seq(p, r, take);
    }
    return admitted_new;
}

vrt_sched_status vrt_sched_step(vrt_sched *s, const uint64_t *cancels, int n_cancels,
                                vrt_sched_plan *p)
{
    plan_reset(p);
    if (plan_reserve(p, s->n_reqs, n_cancels)) {
        VRT_ERROR("engine: out of memory");
        return VRT_SCHED_NO_MEMORY;
    }
    take_arrivals(s, p);
    take_cancels(s, p, cancels, n_cancels);
    reserve_decodes(s, p);
    int budget = continue_running(s, p, s->cfg.max_batch_prefill_tokens);
    int admitted_new = admit_waiting(s, p, budget);
    if (p->n_seqs == 0)
        return s->n_reqs > 0 ? VRT_SCHED_NO_BLOCKS : VRT_SCHED_IDLE;
    if (admitted_new)
        s->steps_since_admit = 0;
    else if (s->steps_since_admit < INT32_MAX)
        s->steps_since_admit++;
    for (int i = 0; i < p->n_seqs; i++) {
        vrt_sched_seq *sq = &p->seqs[i];
        const vrt_sched_req *r = sq->req;
        /* One token after the prompt, computed alone: a decode. Anything
         * else (a prompt, a chunk, a recompute) is prefill. */
        sq->decode = sq->take == 1 && r->len > r->n_prompt && r->computed == r->len - 1;
        if (sq->decode)
            p->n_decode++;
        else
            p->n_prefill_tokens += sq->take;
    }
    return VRT_SCHED_RUN;
}

void vrt_sched_update(vrt_sched *s, const vrt_sched_plan *p)
{
    for (int i = 0; i < p->n_seqs; i++) {
        vrt_sched_req *r = p->seqs[i].req;
        r->computed += p->seqs[i].take;
        vrt_block_pool_commit(s->pool, &r->blocks, r->toks, r->computed);
    }
}
