/* sched.h — the scheduler of continuous batching: which requests run in the
 * next forward pass, and how many tokens each.
 *
 * The scheduler knows requests only as token counts (prompt, computed,
 * generated), a priority, a tenant and an arrival time, plus the KV block
 * pool and the scheduling policy's hooks. It never sees the model, the
 * logits or the backend. One engine step is (vLLM v1's split):
 *
 *   plan = vrt_sched_step()    admissions, preemptions, the batch
 *   the engine executes it     swap copies, forward, sampling, events
 *   vrt_sched_update()         the computed tokens of the batch count
 *
 * Every request keeps one invariant (vLLM's): `computed` tokens of its
 * token list (prompt + generated) have their K/V in the cache; it catches
 * up to `len`. vrt_sched_step:
 *
 *   1. takes the arrivals through the policy (admit, priority) into the
 *      waiting queue, then the cancellations;
 *   2. gives every running request that is decoding a slot for one more
 *      token; when the blocks run out a victim (the policy's pick_victim,
 *      else the most recently admitted) is preempted: its K/V go to the CPU
 *      swap space when there is room (swap), else it is computed again
 *      when it resumes (recompute); its blocks are freed and it goes back
 *      to the front of the queue;
 *   3. continues chunked prefills and admits waiting requests in policy
 *      order while the prefill token budget (max_batch_prefill_tokens),
 *      the free blocks and max_batch_size allow; with chunked_prefill off
 *      a prompt waits for a step that can take all of it; while a batch
 *      runs, new requests wait up to max_waiting_tokens steps unless enough
 *      of them wait (TGI's rule); full prompt blocks found in the prefix
 *      cache are taken over instead of computed.
 *
 * Running out of blocks is a normal outcome (VRT_SCHED_NO_BLOCKS), never
 * a formatted error. Requests are owned by the caller: the scheduler only
 * links them into its lists, and gives them back in the plan (rejected,
 * cancelled) or through vrt_sched_remove / vrt_sched_pop.
 */
#ifndef VRT_ENGINE_SCHED_H
#define VRT_ENGINE_SCHED_H

#include "engine/kv_blocks.h"
#include "engine/policy.h"
#include "vrt.h"

#include <stdint.h>

/* Where a request is. */
enum {
    VRT_SCHED_OUT = 0, /* in no list (new, or given back) */
    VRT_SCHED_ARRIVED, /* added; the policy has not seen it yet */
    VRT_SCHED_WAITING,
    VRT_SCHED_RUNNING,
};

/* A request as the scheduler sees it. The caller fills the first group
 * before vrt_sched_add and appends generated tokens to toks (len++); the
 * rest is the scheduler's. Zero-initialize. */
typedef struct vrt_sched_req {
    uint64_t id;
    const char *lid; /* the id in logs */
    int32_t *toks;   /* prompt then generated: [len] (the prefix cache hashes them) */
    int n_prompt, len;
    int max_new, priority;
    int prompt_logprobs; /* asked: the prompt is computed, never taken from the cache */
    const char *tenant;  /* may be NULL */
    double t_submit;     /* arrival, on the clock of the scheduler's t_start */
    /* The scheduler's. */
    int computed; /* tokens with K/V in the cache */
    vrt_seq_blocks blocks;
    uint64_t order; /* admission order (for policies and victims) */
    double prio;    /* the policy's priority hook: larger runs first */
    int state;      /* VRT_SCHED_* */
    int n_preempted;
    int swapped;       /* its K/V of swap_tokens tokens are in the CPU swap space */
    int swap_tokens;   /* tokens swapped out by its last swap preemption */
    int64_t swap_size; /* bytes of swap space it holds while swapped */
} vrt_sched_req;

typedef struct vrt_sched_config {
    int max_batch_prefill_tokens; /* prefill token budget of a step (>= 1) */
    int max_batch_size;           /* running requests; 0 = no limit */
    int max_waiting_tokens;       /* steps new requests may wait while a batch runs */
    double waiting_served_ratio;  /* ... unless this many per running request wait */
    int chunked_prefill;          /* 0: a prompt is prefilled in one step */
    int64_t swap_bytes;           /* CPU swap space (cache.swap_space); 0 = recompute */
    int64_t block_bytes;          /* K/V bytes of one block (all layers) */
} vrt_sched_config;

/* One sequence of the batch: take tokens from computed on. */
typedef struct vrt_sched_seq {
    vrt_sched_req *req;
    int take;
    int decode; /* one token after the prompt, computed alone; else prefill */
} vrt_sched_seq;

/* A preemption. swap: the caller copies the K/V of the n_blocks blocks
 * plan->swap_ids[first..first+n_blocks) (freed by now, but nothing writes
 * them before the forward) to the CPU and keeps them with the request
 * (swap_tokens tokens); else it will be recomputed. */
typedef struct vrt_sched_preempt {
    vrt_sched_req *req;
    int swap;
    int first, n_blocks;
} vrt_sched_preempt;

typedef struct vrt_sched_reject {
    vrt_sched_req *req;
    int code;      /* VRT_EPOLICY, VRT_EOVERLOADED, VRT_ENOSPC */
    char msg[512]; /* for the client */
} vrt_sched_reject;

/* What one step decided, in the order the caller acts on it: rejected and
 * cancelled requests (out of every list; the caller fails them),
 * preemptions (swap-outs first), swap-ins (copy the swapped K/V into the
 * first vrt_blocks_for(swap_tokens) blocks of req->blocks; after every
 * swap-out), admissions, then the batch. */
typedef struct vrt_sched_plan {
    vrt_sched_seq *seqs; /* the batch: running requests in admission order, then admitted */
    int n_seqs;
    int n_prefill_tokens, n_decode; /* over seqs */
    vrt_sched_req **admitted;       /* waiting -> running this step (new or resumed) */
    int n_admitted;
    vrt_sched_preempt *preempted;
    int n_preempted;
    int32_t *swap_ids; /* block ids of the swap-outs */
    int n_swap_ids;
    vrt_sched_req **swap_in;
    int n_swap_in;
    vrt_sched_reject *rejected;
    int n_rejected;
    vrt_sched_req **cancelled;
    int n_cancelled;
    size_t cap_, cap_cancelled_, cap_swap_ids_;
} vrt_sched_plan;

typedef enum vrt_sched_status {
    VRT_SCHED_RUN = 0,   /* plan->n_seqs > 0 */
    VRT_SCHED_IDLE,      /* nothing waits or runs */
    VRT_SCHED_NO_BLOCKS, /* requests wait or run, but none has the blocks to go on */
    VRT_SCHED_NO_MEMORY, /* host memory for the plan ran out (logged); nothing changed */
} vrt_sched_status;

typedef struct vrt_sched {
    vrt_sched_config cfg;
    vrt_block_pool *pool;
    vrt_policy *policy;                             /* not owned */
    double t_start;                                 /* arrival_s = t_submit - t_start */
    vrt_sched_req **arrivals, **waiting, **running; /* running in admission order */
    int n_arrivals, n_waiting, n_running;
    size_t cap_; /* each list holds every request */
    int n_reqs;  /* in the three lists */
    uint64_t next_order;
    int steps_since_admit; /* steps since one admitted a new request */
    int64_t swap_used;     /* bytes of swap space held */
    int policy_off;        /* the policy was disabled (handled once) */
    double last_on_step_warn;
    vrt_policy_req *views; /* [cap_views] for pick_victim */
    size_t cap_views;
} vrt_sched;

void vrt_sched_init(vrt_sched *s, vrt_block_pool *pool, vrt_policy *policy,
                    const vrt_sched_config *cfg, double t_start);
/* Frees the scheduler's lists (not the requests) and releases nothing:
 * give requests back with vrt_sched_pop first. */
void vrt_sched_free(vrt_sched *s);
void vrt_sched_plan_free(vrt_sched_plan *p);

/* Queues a new request (the policy sees it in the next step). VRT_ENOMEM
 * when the lists cannot grow (r is not queued). */
int vrt_sched_add(vrt_sched *s, vrt_sched_req *r, vrt_err *err);

/* One step: arrivals, the cancellations (ids; unknown ones are ignored),
 * then the batch (see above). */
vrt_sched_status vrt_sched_step(vrt_sched *s, const uint64_t *cancels, int n_cancels,
                                vrt_sched_plan *plan);

/* After a forward of plan's batch: its tokens are computed (and their full
 * blocks offered to the prefix cache). */
void vrt_sched_update(vrt_sched *s, const vrt_sched_plan *plan);

/* When a step found no blocks for anything: the head of the queue is
 * rejected (VRT_ENOSPC) when nothing runs (it can never fit), else the
 * newest running request is preempted (chunked prefills each holding part
 * of the blocks). Fills plan like a step without a batch. */
void vrt_sched_unstick(vrt_sched *s, vrt_sched_plan *plan);

/* A swap-out of plan could not be done: r is recomputed instead. */
void vrt_sched_swap_failed(vrt_sched *s, vrt_sched_req *r);
/* Takes plan->seqs[i] out of this step (its swap-in failed): it goes back
 * to the queue, holding nothing, to be recomputed. */
void vrt_sched_unschedule(vrt_sched *s, vrt_sched_plan *plan, int i);

/* Takes r out of whatever list holds it (finished, failed) and gives back
 * its blocks and swap space; nothing for a request in no list. */
void vrt_sched_remove(vrt_sched *s, vrt_sched_req *r);
/* Some request still held (running ones first, newest first), removed;
 * NULL when none. For shutting down. */
vrt_sched_req *vrt_sched_pop(vrt_sched *s);
/* Requests held: arrived, waiting or running. */
int vrt_sched_busy(const vrt_sched *s);

/* The policy's on_step hook with the step's numbers; a failure is logged
 * (at most once per 10 s of the caller's clock, now) unless it disabled
 * the policy. The scheduler reads no clock itself. */
void vrt_sched_on_step(vrt_sched *s, const vrt_policy_stats *st, double now);

#endif
