/* test_sched.c — the scheduler without a model: fake requests (token
 * counts only), a real KV block pool and real policies. Each test runs
 * steps the way the engine does (plan, "forward" = vrt_sched_update, one
 * sampled token per request that caught up) and checks what each step
 * planned: admission under the prefill budget and max_batch_size, chunked
 * prefill on and off, preemption by swap and by recompute and the
 * resumption, prefix-cache hits, the policy hooks (priority, admit,
 * pick_victim, fair), TGI's max_waiting_tokens join rule, cancellation and
 * running out of blocks.
 */
#include "test.h"

#include "core/err.h"
#include "core/log.h"
#include "engine/sched.h"

#include <stdlib.h>
#include <unistd.h>

#define MAXT 64

/* A request: the scheduler's view plus its token storage. */
typedef struct freq {
    vrt_sched_req r;
    int32_t toks[MAXT];
    int done; /* generated max_new tokens */
} freq;

typedef struct harness {
    vrt_block_pool pool;
    vrt_policy *policy;
    vrt_sched s;
    vrt_sched_plan plan;
    vrt_sched_status st;
} harness;

static vrt_sched_config config(int budget)
{
    return (vrt_sched_config){.max_batch_prefill_tokens = budget, .chunked_prefill = 1};
}

/* policy: NULL for fcfs (the harness owns it either way). */
static int setup_p(harness *h, int num_blocks, int block_size, const vrt_sched_config *cfg,
                   vrt_policy *policy)
{
    vrt_err err = {0};
    memset(h, 0, sizeof *h);
    h->policy = policy;
    if (!h->policy && vrt_policy_load(&h->policy, NULL, 0.1, 1.0, &err))
        return -1;
    if (vrt_block_pool_init(&h->pool, num_blocks, block_size, &err))
        return -1;
    vrt_sched_init(&h->s, &h->pool, h->policy, cfg, 0.0);
    return 0;
}

static int setup(harness *h, int num_blocks, int block_size, const vrt_sched_config *cfg)
{
    return setup_p(h, num_blocks, block_size, cfg, NULL);
}

static void teardown(harness *h)
{
    while (vrt_sched_pop(&h->s))
        ;
    vrt_sched_free(&h->s);
    vrt_sched_plan_free(&h->plan);
    vrt_block_pool_free(&h->pool);
    vrt_policy_free(h->policy);
}

/* Loads a policy given as Lua text (budget 0.1 s, deadline 1 s). */
static int load_policy(vrt_policy **p, const char *policy)
{
    vrt_err err = {0};
    int rc = vrt_test_load_policy(p, policy, 0.1, 1.0, &err);
    if (rc)
        fprintf(stderr, "  policy: %s\n", err.msg);
    return rc;
}

/* A request of n_prompt tokens (first token `first`, then counting up)
 * that generates max_new tokens. */
static void mkreq(freq *f, uint64_t id, int n_prompt, int max_new, int first)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < n_prompt; i++)
        f->toks[i] = first + i;
    f->r.id = id;
    f->r.lid = "test";
    f->r.toks = f->toks;
    f->r.n_prompt = f->r.len = n_prompt;
    f->r.max_new = max_new;
    f->r.t_submit = (double)id;
}

static int add(harness *h, freq *f)
{
    vrt_err err = {0};
    return vrt_sched_add(&h->s, &f->r, &err);
}

/* One step as the engine runs it: the plan, the forward (update), then a
 * token for every request that caught up; a request with max_new tokens
 * leaves. Returns the plan's status. */
static void execute(harness *h)
{
    vrt_sched_update(&h->s, &h->plan);
    for (int i = 0; i < h->plan.n_seqs; i++) {
        vrt_sched_req *r = h->plan.seqs[i].req;
        if (r->computed != r->len)
            continue;
        freq *f = (freq *)r;
        f->toks[r->len] = 1000 + r->len;
        r->len++;
        if (r->len - r->n_prompt >= r->max_new) {
            f->done = 1;
            vrt_sched_remove(&h->s, r);
        }
    }
}

static vrt_sched_status step_c(harness *h, const uint64_t *cancels, int n_cancels)
{
    h->st = vrt_sched_step(&h->s, cancels, n_cancels, &h->plan);
    if (h->st == VRT_SCHED_RUN)
        execute(h);
    return h->st;
}

static vrt_sched_status step(harness *h)
{
    return step_c(h, NULL, 0);
}

/* The take of r in the last plan, or 0 when it is not in the batch. */
static int take_of(const harness *h, const freq *f)
{
    for (int i = 0; i < h->plan.n_seqs; i++)
        if (h->plan.seqs[i].req == &f->r)
            return h->plan.seqs[i].take;
    return 0;
}

static int admitted(const harness *h, const freq *f)
{
    for (int i = 0; i < h->plan.n_admitted; i++)
        if (h->plan.admitted[i] == &f->r)
            return 1;
    return 0;
}

/* ---- admission ------------------------------------------------------------------ */

TEST(sched_admission_within_the_prefill_budget)
{
    harness h = {0};
    vrt_sched_config cfg = config(10);
    ASSERT(setup(&h, 64, 4, &cfg) == 0);
    freq a, b, c;
    mkreq(&a, 1, 6, 3, 10);
    mkreq(&b, 2, 6, 3, 20);
    mkreq(&c, 3, 8, 3, 30);
    ASSERT_OK(add(&h, &a), &(vrt_err){0});
    ASSERT_OK(add(&h, &b), &(vrt_err){0});
    ASSERT_OK(add(&h, &c), &(vrt_err){0});
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
    /* 10 prefill tokens: all of a, a chunk of 4 of b, nothing of c. */
    ASSERT_EQ_INT(h.plan.n_seqs, 2);
    ASSERT_EQ_INT(take_of(&h, &a), 6);
    ASSERT_EQ_INT(take_of(&h, &b), 4);
    ASSERT_EQ_INT(h.plan.n_prefill_tokens, 10);
    ASSERT_EQ_INT(h.plan.n_decode, 0);
    ASSERT_EQ_INT(h.plan.n_admitted, 2);
    ASSERT_EQ_INT(h.s.n_waiting, 1);
    ASSERT_EQ_INT(a.r.len, 7); /* a caught up and sampled */
    ASSERT_EQ_INT(b.r.computed, 4);
    /* Next: a decodes (not counted against the budget), b finishes its
     * prompt (2), c takes the rest of the budget: all its 8. */
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
    ASSERT_EQ_INT(take_of(&h, &a), 1);
    ASSERT_EQ_INT(take_of(&h, &b), 2);
    ASSERT_EQ_INT(take_of(&h, &c), 8);
    ASSERT_EQ_INT(h.plan.n_decode, 1);
    ASSERT_EQ_INT(h.plan.n_prefill_tokens, 10);
    ASSERT(h.plan.seqs[0].decode && !h.plan.seqs[1].decode);
    freq *all[3] = {&a, &b, &c};
    for (int k = 0; k < 20 && !(a.done && b.done && c.done); k++)
        step(&h);
    for (int i = 0; i < 3; i++) {
        ASSERT(all[i]->done);
        ASSERT_EQ_INT(all[i]->r.len, all[i]->r.n_prompt + 3);
    }
    ASSERT_EQ_INT(h.pool.n_free, 64);
    ASSERT_EQ_INT(step(&h), VRT_SCHED_IDLE);
    teardown(&h);
}

TEST(sched_max_batch_size_caps_the_running_requests)
{
    harness h = {0};
    vrt_sched_config cfg = config(100);
    cfg.max_batch_size = 2;
    ASSERT(setup(&h, 64, 4, &cfg) == 0);
    freq f[3];
    for (int i = 0; i < 3; i++) {
        mkreq(&f[i], (uint64_t)i + 1, 3, 2, 10 * i);
        ASSERT_EQ_INT(add(&h, &f[i]), 0);
    }
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
    ASSERT_EQ_INT(h.plan.n_seqs, 2); /* the budget had room for all three */
    ASSERT_EQ_INT(take_of(&h, &f[2]), 0);
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN); /* f0, f1 generate their 2nd token and end */
    ASSERT(f[0].done && f[1].done);
    ASSERT_EQ_INT(take_of(&h, &f[2]), 0);
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
    ASSERT_EQ_INT(take_of(&h, &f[2]), 3);
    teardown(&h);
}

/* ---- chunked prefill ------------------------------------------------------------ */

TEST(sched_chunked_prefill_off_prefills_each_prompt_in_one_step)
{
    for (int chunked = 0; chunked <= 1; chunked++) {
        harness h = {0};
        vrt_sched_config cfg = config(10);
        cfg.chunked_prefill = chunked;
        ASSERT(setup(&h, 64, 4, &cfg) == 0);
        freq a, b;
        mkreq(&a, 1, 6, 4, 10);
        mkreq(&b, 2, 6, 4, 20);
        ASSERT_EQ_INT(add(&h, &a), 0);
        ASSERT_EQ_INT(add(&h, &b), 0);
        ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
        ASSERT_EQ_INT(take_of(&h, &a), 6);
        /* On: b starts with a chunk of 4. Off: b waits, holding nothing. */
        ASSERT_EQ_INT(take_of(&h, &b), chunked ? 4 : 0);
        ASSERT_EQ_INT(b.r.blocks.n, chunked ? 1 : 0);
        ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
        ASSERT_EQ_INT(take_of(&h, &b), chunked ? 2 : 6);
        teardown(&h);
    }
}

/* With chunked_prefill off, only a recompute longer than the whole budget
 * is chunked (it could never run otherwise). */
TEST(sched_chunked_prefill_off_chunks_only_a_recompute_longer_than_the_budget)
{
    harness h = {0};
    vrt_sched_config cfg = config(6);
    cfg.chunked_prefill = 0;
    ASSERT(setup(&h, 4, 4, &cfg) == 0); /* 16 tokens of KV */
    freq a, b;
    mkreq(&a, 1, 4, 12, 10);
    mkreq(&b, 2, 2, 12, 20);
    ASSERT_EQ_INT(add(&h, &a), 0);
    ASSERT_EQ_INT(add(&h, &b), 0);
    int resumed_take = 0, resumed_len = 0;
    for (int k = 0; k < 60 && !(a.done && b.done); k++) {
        int was_waiting = b.r.state == VRT_SCHED_WAITING && b.r.n_preempted > 0;
        int len = b.r.len;
        if (step(&h) != VRT_SCHED_RUN)
            vrt_sched_unstick(&h.s, &h.plan);
        if (was_waiting && !resumed_take && take_of(&h, &b)) {
            resumed_take = take_of(&h, &b);
            resumed_len = len;
        }
    }
    ASSERT(a.done && b.done);
    ASSERT(b.r.n_preempted > 0);
    ASSERT(resumed_len > 6);        /* its recompute is longer than the budget... */
    ASSERT_EQ_INT(resumed_take, 6); /* ...so it runs in chunks of the budget */
    ASSERT_EQ_INT(h.pool.n_free, 4);
    teardown(&h);
}

/* ---- preemption ------------------------------------------------------------------ */

/* Two requests outgrow a 16-token cache: the most recently admitted is
 * preempted when the other needs a block for its next token. */
static void grow_until_preempted(harness *h, freq *a, freq *b)
{
    mkreq(a, 1, 4, 10, 10);
    mkreq(b, 2, 4, 10, 20);
    add(h, a);
    add(h, b);
    for (int k = 0; k < 20 && h->plan.n_preempted == 0; k++)
        step(h);
}

/* Steps (unsticking when nothing runs) until f is admitted again; *len:
 * its length before that step. Returns 0 when it never is. */
static int step_until_admitted(harness *h, freq *f, int *len)
{
    for (int k = 0; k < 40; k++) {
        *len = f->r.len;
        if (step(h) != VRT_SCHED_RUN)
            vrt_sched_unstick(&h->s, &h->plan);
        if (admitted(h, f))
            return 1;
    }
    return 0;
}

static void step_until_done(harness *h, freq *f)
{
    for (int k = 0; k < 40 && !f->done; k++)
        if (step(h) != VRT_SCHED_RUN)
            vrt_sched_unstick(&h->s, &h->plan);
}

/* The same with a swap space of swap_bytes (blocks of 100 bytes). */
static int setup_swap(harness *h, int64_t swap_bytes, freq *a, freq *b)
{
    vrt_sched_config cfg = config(64);
    cfg.swap_bytes = swap_bytes;
    cfg.block_bytes = 100;
    if (setup(h, 4, 4, &cfg))
        return -1;
    grow_until_preempted(h, a, b);
    return 0;
}

TEST(sched_preemption_by_recompute_and_resumption)
{
    harness h = {0};
    vrt_sched_config cfg = config(64);
    ASSERT(setup(&h, 4, 4, &cfg) == 0);
    freq a, b;
    grow_until_preempted(&h, &a, &b);
    ASSERT_EQ_INT(h.plan.n_preempted, 1);
    const vrt_sched_preempt *pe = &h.plan.preempted[0];
    ASSERT(pe->req == &b.r); /* fcfs: the most recent */
    ASSERT_EQ_INT(pe->swap, 0);
    ASSERT_EQ_INT(b.r.computed, 0);
    ASSERT_EQ_INT(b.r.blocks.n, 0);
    ASSERT_EQ_INT(b.r.n_preempted, 1);
    ASSERT_EQ_INT(b.r.state, VRT_SCHED_WAITING);
    ASSERT(h.s.waiting[0] == &b.r);
    ASSERT_EQ_INT(take_of(&h, &a), 1); /* a got its block and decodes */
    int b_len = b.r.len, len = 0;
    /* b resumes once a ends and recomputes all its tokens as prefill. */
    ASSERT(step_until_admitted(&h, &b, &len));
    ASSERT(a.done);
    ASSERT_EQ_INT(len, b_len);
    ASSERT_EQ_INT(take_of(&h, &b), b_len);
    ASSERT_EQ_INT(h.plan.n_swap_in, 0);
    step_until_done(&h, &b);
    ASSERT(b.done);
    ASSERT_EQ_INT(a.r.len, 14);
    ASSERT_EQ_INT(b.r.len, 14);
    ASSERT_EQ_INT(h.pool.n_free, 4);
    teardown(&h);
}

TEST(sched_preemption_by_swap_and_swap_in)
{
    harness h = {0};
    freq a, b;
    ASSERT(setup_swap(&h, 1000, &a, &b) == 0);
    ASSERT_EQ_INT(h.plan.n_preempted, 1);
    const vrt_sched_preempt *pe = &h.plan.preempted[0];
    ASSERT(pe->req == &b.r);
    ASSERT_EQ_INT(pe->swap, 1);
    ASSERT(b.r.swapped);
    ASSERT(b.r.swap_tokens > 0);
    ASSERT_EQ_INT(pe->n_blocks, vrt_blocks_for(&h.pool, b.r.swap_tokens));
    ASSERT_EQ_INT(h.s.swap_used, 100 * pe->n_blocks);
    /* The blocks to copy out were b's, now freed and given to a. */
    int gave_a = 0;
    for (int i = 0; i < pe->n_blocks; i++)
        for (int j = 0; j < a.r.blocks.n; j++)
            gave_a |= h.plan.swap_ids[pe->first + i] == a.r.blocks.ids[j];
    ASSERT(gave_a);
    int swap_tokens = b.r.swap_tokens;
    ASSERT_EQ_INT(swap_tokens, 8);
    int len = 0;
    ASSERT(step_until_admitted(&h, &b, &len));
    ASSERT_EQ_INT(h.plan.n_swap_in, 1);
    ASSERT(h.plan.swap_in[0] == &b.r);
    ASSERT(!b.r.swapped);
    ASSERT_EQ_INT(h.s.swap_used, 0);
    /* Only the tokens that were never swapped are computed. */
    ASSERT_EQ_INT(take_of(&h, &b), len - swap_tokens);
    step_until_done(&h, &b);
    ASSERT(b.done);
    ASSERT_EQ_INT(b.r.len, 14);
    ASSERT_EQ_INT(h.pool.n_free, 4);
    teardown(&h);
}

TEST(sched_swap_space_too_small_or_failed_means_recompute)
{
    harness h = {0};
    freq a, b;
    ASSERT(setup_swap(&h, 150, &a, &b) == 0); /* one block; the victim has two */
    ASSERT_EQ_INT(h.plan.n_preempted, 1);
    ASSERT_EQ_INT(h.plan.preempted[0].swap, 0);
    ASSERT(!b.r.swapped);
    ASSERT_EQ_INT(h.s.swap_used, 0);
    teardown(&h);
    ASSERT(setup_swap(&h, 200, &a, &b) == 0); /* exactly two */
    ASSERT_EQ_INT(h.plan.preempted[0].swap, 1);
    ASSERT_EQ_INT(h.s.swap_used, 200);
    teardown(&h);

    /* A swap-out the engine could not do: recomputed, the space given back. */
    ASSERT(setup_swap(&h, 1000, &a, &b) == 0);
    ASSERT_EQ_INT(h.plan.preempted[0].swap, 1);
    vrt_sched_swap_failed(&h.s, &b.r);
    ASSERT(!b.r.swapped);
    ASSERT_EQ_INT(h.s.swap_used, 0);
    int len = 0;
    ASSERT(step_until_admitted(&h, &b, &len));
    ASSERT_EQ_INT(h.plan.n_swap_in, 0);
    ASSERT_EQ_INT(take_of(&h, &b), len);
    step_until_done(&h, &b);
    ASSERT(b.done);
    teardown(&h);
}

TEST(sched_unschedule_sends_a_failed_swap_in_back_to_the_queue)
{
    harness h = {0};
    freq a, b;
    ASSERT(setup_swap(&h, 1000, &a, &b) == 0);
    /* Plan until b resumes from the swap space; stop before its forward. */
    for (int k = 0; k < 40; k++) {
        h.st = vrt_sched_step(&h.s, NULL, 0, &h.plan);
        if (h.plan.n_swap_in)
            break;
        if (h.st == VRT_SCHED_RUN)
            execute(&h);
        else
            vrt_sched_unstick(&h.s, &h.plan);
    }
    ASSERT_EQ_INT(h.plan.n_swap_in, 1);
    int i = -1;
    for (int j = 0; j < h.plan.n_seqs; j++)
        if (h.plan.seqs[j].req == &b.r)
            i = j;
    ASSERT(i >= 0);
    ASSERT_EQ_INT(b.r.computed, 8);
    int n_seqs = h.plan.n_seqs, n_decode = h.plan.n_decode;
    ASSERT(h.plan.seqs[i].decode); /* one token after its swapped 8 */
    /* The engine could not copy it in: it goes back, to be recomputed. */
    vrt_sched_unschedule(&h.s, &h.plan, i);
    ASSERT_EQ_INT(h.plan.n_seqs, n_seqs - 1);
    ASSERT_EQ_INT(h.plan.n_decode, n_decode - 1);
    ASSERT_EQ_INT(b.r.state, VRT_SCHED_WAITING);
    ASSERT_EQ_INT(b.r.computed, 0);
    ASSERT_EQ_INT(b.r.blocks.n, 0);
    ASSERT(h.s.waiting[0] == &b.r);
    ASSERT_EQ_INT(h.s.swap_used, 0);
    ASSERT_EQ_INT(h.pool.n_free, 4);
    execute(&h);
    /* Next step it is admitted as a recompute of all its tokens. */
    int len = b.r.len;
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
    ASSERT_EQ_INT(take_of(&h, &b), len);
    ASSERT_EQ_INT(h.plan.n_swap_in, 0);
    teardown(&h);
}

/* ---- prefix cache --------------------------------------------------------------- */

TEST(sched_prefix_cache_hits_skip_full_blocks)
{
    harness h = {0};
    vrt_sched_config cfg = config(64);
    ASSERT(setup(&h, 16, 4, &cfg) == 0);
    vrt_err err = {0};
    ASSERT_OK(vrt_block_pool_enable_prefix_cache(&h.pool, &err), &err);
    freq a, b, c;
    mkreq(&a, 1, 10, 5, 100);
    ASSERT_EQ_INT(add(&h, &a), 0);
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
    ASSERT_EQ_INT(take_of(&h, &a), 10);
    /* The same prompt: its 2 full blocks come from the cache. */
    mkreq(&b, 2, 10, 5, 100);
    ASSERT_EQ_INT(add(&h, &b), 0);
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
    ASSERT_EQ_INT(take_of(&h, &b), 2);
    ASSERT_EQ_INT(b.r.blocks.ids[0], a.r.blocks.ids[0]);
    ASSERT_EQ_INT(b.r.blocks.ids[1], a.r.blocks.ids[1]);
    ASSERT(h.pool.hits == 8);
    /* Asking for prompt logprobs computes the whole prompt. */
    mkreq(&c, 3, 10, 2, 100);
    c.r.prompt_logprobs = 1;
    ASSERT_EQ_INT(add(&h, &c), 0);
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
    ASSERT_EQ_INT(take_of(&h, &c), 10);
    ASSERT(h.pool.hits == 8);
    teardown(&h);
}

/* ---- policy hooks ------------------------------------------------------------------ */

#define POLICY_HOOKS                                                                               \
    "{\n"                                                                                          \
    "  admit = function(req)\n"                                                                    \
    "    local t = req.tenant ~= nil and require('ffi').string(req.tenant) or ''\n"                \
    "    return t ~= 'refused'\n"                                                                  \
    "  end,\n"                                                                                     \
    "  priority = function(req)\n"                                                                 \
    "    local t = req.tenant ~= nil and require('ffi').string(req.tenant) or ''\n"                \
    "    if t == 'raise' then error('no priority for you') end\n"                                  \
    "    return req.priority\n"                                                                    \
    "  end,\n"                                                                                     \
    "  pick_victim = function(running) return 1 end,\n"                                            \
    "}"

TEST(sched_policy_priority_orders_admission_and_admit_rejects)
{
    harness h = {0};
    vrt_policy *pol = NULL;
    ASSERT(load_policy(&pol, POLICY_HOOKS) == 0);
    vrt_sched_config cfg = config(64);
    cfg.max_batch_size = 1;
    ASSERT(setup_p(&h, 64, 4, &cfg, pol) == 0);
    freq f[5];
    int prio[5] = {1, 5, 3, 9, 0};
    const char *tenant[5] = {"x", "x", "refused", "raise", "x"};
    for (int i = 0; i < 5; i++) {
        mkreq(&f[i], (uint64_t)i + 1, 3, 1, 10 * i);
        f[i].r.priority = prio[i];
        f[i].r.tenant = tenant[i];
        ASSERT_EQ_INT(add(&h, &f[i]), 0);
    }
    vrt_log_set_level(VRT_LOG_ERROR); /* the hook's error is logged as a warning */
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
    ASSERT_EQ_INT(h.plan.n_rejected, 2);
    ASSERT(h.plan.rejected[0].req == &f[2].r);
    ASSERT_EQ_INT(h.plan.rejected[0].code, VRT_EOVERLOADED);
    ASSERT_CONTAINS(h.plan.rejected[0].msg, "admit hook");
    ASSERT(h.plan.rejected[1].req == &f[3].r);
    ASSERT_EQ_INT(h.plan.rejected[1].code, VRT_EPOLICY);
    ASSERT_CONTAINS(h.plan.rejected[1].msg, "no priority for you");
    ASSERT(strstr(h.plan.rejected[1].msg, "traceback") == NULL);
    ASSERT_EQ_INT(f[3].r.state, VRT_SCHED_OUT);
    /* One at a time (max_batch_size 1), larger priority first. */
    int order[3] = {1, 0, 4};
    ASSERT_EQ_INT(take_of(&h, &f[1]), 3);
    for (int k = 1; k < 3; k++) {
        ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
        ASSERT_EQ_INT(h.plan.n_seqs, 1);
        ASSERT(h.plan.seqs[0].req == &f[order[k]].r);
    }
    teardown(&h);
}

TEST(sched_policy_pick_victim_chooses_the_preempted_request)
{
    harness h = {0};
    vrt_policy *pol = NULL;
    ASSERT(load_policy(&pol, POLICY_HOOKS) == 0);
    vrt_sched_config cfg = config(64);
    ASSERT(setup_p(&h, 4, 4, &cfg, pol) == 0);
    freq a, b;
    grow_until_preempted(&h, &a, &b);
    /* pick_victim answers 1: the first admitted, not the most recent. */
    ASSERT_EQ_INT(h.plan.n_preempted, 1);
    ASSERT(h.plan.preempted[0].req == &a.r);
    ASSERT_EQ_INT(a.r.state, VRT_SCHED_WAITING);
    ASSERT_EQ_INT(take_of(&h, &b), 1);
    teardown(&h);
}

TEST(sched_fair_policy_alternates_tenants)
{
    harness h = {0};
    vrt_policy *pol = NULL;
    ASSERT(load_policy(&pol, "\"fair\"") == 0);
    vrt_sched_config cfg = config(64);
    cfg.max_batch_size = 1;
    ASSERT(setup_p(&h, 64, 4, &cfg, pol) == 0);
    /* A burst of 4 from tenant a, then 2 from b. */
    freq f[6];
    const char *tenant[6] = {"a", "a", "a", "a", "b", "b"};
    for (int i = 0; i < 6; i++) {
        mkreq(&f[i], (uint64_t)i + 1, 2, 1, 10 * i);
        f[i].r.tenant = tenant[i];
        ASSERT_EQ_INT(add(&h, &f[i]), 0);
    }
    int order[6] = {0, 4, 1, 5, 2, 3};
    for (int k = 0; k < 6; k++) {
        ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
        ASSERT_EQ_INT(h.plan.n_seqs, 1);
        if (h.plan.seqs[0].req != &f[order[k]].r)
            TFAIL("step %d ran request %llu, not %d", k, (unsigned long long)h.plan.seqs[0].req->id,
                  order[k] + 1);
    }
    teardown(&h);
}

/* ---- TGI's join rule ------------------------------------------------------------------ */

/* A runs; B arrives at step 2. Returns the step at which B joined; *then
 * (when not NULL): how many steps a third request arriving right after
 * B joined waited. */
static int join_step2(int max_waiting_tokens, double ratio, int second_new, int *then)
{
    harness h = {0};
    vrt_sched_config cfg = config(64);
    cfg.max_waiting_tokens = max_waiting_tokens;
    cfg.waiting_served_ratio = ratio;
    if (setup(&h, 64, 4, &cfg))
        return -1;
    freq a, b, c;
    mkreq(&a, 1, 3, 20, 10);
    mkreq(&b, 2, 3, 5, 20);
    mkreq(&c, 3, 3, 5, 30);
    add(&h, &a);
    step(&h);
    add(&h, &b);
    if (second_new)
        add(&h, &c);
    int joined = -1;
    for (int k = 2; k < 12 && joined < 0; k++) {
        step(&h);
        if (take_of(&h, &b))
            joined = k;
    }
    if (then) {
        *then = -1;
        add(&h, &c);
        for (int k = 1; k < 12 && *then < 0; k++) {
            step(&h);
            if (take_of(&h, &c))
                *then = k;
        }
    }
    teardown(&h);
    return joined;
}

static int join_step(int max_waiting_tokens, double ratio, int second_new)
{
    return join_step2(max_waiting_tokens, ratio, second_new, NULL);
}

TEST(sched_max_waiting_tokens_defers_new_requests_while_a_batch_runs)
{
    /* Ratio 2 with one running: one new request is too few to join at
     * once; it joins after max_waiting_tokens steps without a join. */
    ASSERT_EQ_INT(join_step(3, 2.0, 0), 5);
    /* A join starts the count again: the next one waits as long. */
    int then = 0;
    ASSERT_EQ_INT(join_step2(3, 2.0, 0, &then), 5);
    ASSERT_EQ_INT(then, 4);
    ASSERT_EQ_INT(join_step(1, 2.0, 0), 3);
    /* 0: at once. */
    ASSERT_EQ_INT(join_step(0, 2.0, 0), 2);
    /* Enough new requests waiting (2 >= 1 running * 2): at once. */
    ASSERT_EQ_INT(join_step(3, 2.0, 1), 2);
    /* Ratio 1.2: floor(1.2) = 1 new request suffices. */
    ASSERT_EQ_INT(join_step(3, 1.2, 0), 2);
}

/* A preempted request resumes as soon as it fits, even while new ones are
 * deferred. */
TEST(sched_preempted_requests_are_not_deferred)
{
    harness h = {0};
    vrt_sched_config cfg = config(64);
    cfg.max_waiting_tokens = 100;
    cfg.waiting_served_ratio = 100;
    ASSERT(setup(&h, 6, 4, &cfg) == 0);
    freq a, b, c;
    mkreq(&a, 1, 4, 16, 10);
    mkreq(&b, 2, 4, 6, 20);
    mkreq(&c, 3, 4, 6, 30);
    add(&h, &a);
    add(&h, &b);
    add(&h, &c); /* all join the first step: nothing runs yet */
    int resumed_while_a_runs = 0;
    for (int k = 0; k < 60 && !(a.done && b.done && c.done); k++) {
        if (step(&h) != VRT_SCHED_RUN)
            vrt_sched_unstick(&h.s, &h.plan);
        if (c.r.n_preempted > 0 && admitted(&h, &c) && !a.done)
            resumed_while_a_runs = 1;
    }
    ASSERT(a.done && b.done && c.done);
    ASSERT_EQ_INT(c.r.n_preempted, 1);
    ASSERT(resumed_while_a_runs);
    teardown(&h);
}

/* ---- cancellation and running out of blocks -------------------------------------------- */

TEST(sched_cancel_frees_blocks_of_waiting_and_running_requests)
{
    harness h = {0};
    vrt_sched_config cfg = config(4);
    ASSERT(setup(&h, 8, 4, &cfg) == 0);
    freq a, b;
    mkreq(&a, 1, 4, 10, 10);
    mkreq(&b, 2, 4, 10, 20);
    add(&h, &a);
    add(&h, &b);
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
    ASSERT_EQ_INT(a.r.state, VRT_SCHED_RUNNING);
    ASSERT_EQ_INT(b.r.state, VRT_SCHED_WAITING); /* the budget took only a */
    uint64_t ids[3] = {2, 1, 77};
    ASSERT_EQ_INT(step_c(&h, ids, 3), VRT_SCHED_IDLE);
    ASSERT_EQ_INT(h.plan.n_cancelled, 2);
    ASSERT(h.plan.cancelled[0] == &b.r && h.plan.cancelled[1] == &a.r);
    ASSERT_EQ_INT(a.r.state, VRT_SCHED_OUT);
    ASSERT_EQ_INT(h.pool.n_free, 8);
    ASSERT(!vrt_sched_busy(&h.s));
    teardown(&h);
}

TEST(sched_out_of_blocks_is_a_status_and_unstick_rejects_what_never_fits)
{
    harness h = {0};
    vrt_sched_config cfg = config(64);
    ASSERT(setup(&h, 2, 4, &cfg) == 0); /* 8 tokens */
    freq a;
    mkreq(&a, 1, 12, 1, 10);
    add(&h, &a);
    ASSERT_EQ_INT(step(&h), VRT_SCHED_NO_BLOCKS);
    ASSERT_EQ_INT(h.plan.n_seqs, 0);
    ASSERT_EQ_INT(a.r.blocks.n, 0); /* it waits holding nothing */
    vrt_log_set_level(VRT_LOG_ERROR);
    vrt_sched_unstick(&h.s, &h.plan);
    ASSERT_EQ_INT(h.plan.n_rejected, 1);
    ASSERT(h.plan.rejected[0].req == &a.r);
    ASSERT_EQ_INT(h.plan.rejected[0].code, VRT_ENOSPC);
    ASSERT_EQ_INT(step(&h), VRT_SCHED_IDLE);
    teardown(&h);
}

/* A running prefill that cannot go on and nothing else that can: unstick
 * preempts the newest running request; a request that can never fit is
 * then rejected, and the rest runs. */
TEST(sched_unstick_preempts_a_blocked_prefill)
{
    harness h = {0};
    vrt_sched_config cfg = config(4);
    ASSERT(setup(&h, 3, 4, &cfg) == 0); /* 12 tokens */
    freq a, b;
    mkreq(&a, 1, 16, 1, 10);
    mkreq(&b, 2, 11, 1, 20);
    add(&h, &a);
    add(&h, &b);
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN); /* a: a chunk of 4 */
    ASSERT_EQ_INT(a.r.blocks.n, 1);
    h.s.cfg.max_batch_prefill_tokens = 12;
    ASSERT_EQ_INT(step(&h), VRT_SCHED_NO_BLOCKS); /* a needs 3 more, b 3, 2 free */
    vrt_log_set_level(VRT_LOG_ERROR);
    vrt_sched_unstick(&h.s, &h.plan);
    ASSERT_EQ_INT(h.plan.n_preempted, 1);
    ASSERT(h.plan.preempted[0].req == &a.r);
    ASSERT_EQ_INT(a.r.blocks.n, 0);
    ASSERT_EQ_INT(h.pool.n_free, 3);
    /* a goes first (preempted); all 16 tokens in one chunk never fit. */
    h.s.cfg.max_batch_prefill_tokens = 16;
    ASSERT_EQ_INT(step(&h), VRT_SCHED_NO_BLOCKS);
    vrt_sched_unstick(&h.s, &h.plan);
    ASSERT_EQ_INT(h.plan.n_rejected, 1);
    ASSERT(h.plan.rejected[0].req == &a.r);
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
    ASSERT_EQ_INT(take_of(&h, &b), 11);
    ASSERT(b.done);
    ASSERT_EQ_INT(h.pool.n_free, 3);
    teardown(&h);
}

/* ---- capacities ------------------------------------------------------------------ */

/* Every list of the scheduler and of the plan holds more requests than its
 * first capacity: 40 requests are added, admitted together, then run out
 * of blocks on their first decode (preemptions by swap, many swap ids, a
 * victim picked among 40 running), and 20 are cancelled in one step. */
TEST(sched_lists_and_plan_grow_with_the_number_of_requests)
{
    enum { N = 40, BLOCKS = 50 };
    harness h = {0};
    vrt_sched_config cfg = config(4 * N);
    cfg.swap_bytes = 100 * N;
    cfg.block_bytes = 100;
    ASSERT(setup(&h, BLOCKS, 4, &cfg) == 0);
    freq *f = calloc(N, sizeof *f);
    ASSERT(f);
    for (int i = 0; i < N; i++) {
        mkreq(&f[i], (uint64_t)i + 1, 4, 10, 10 * i);
        ASSERT_OK(add(&h, &f[i]), &(vrt_err){0});
    }
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
    ASSERT_EQ_INT(h.plan.n_seqs, N);
    ASSERT_EQ_INT(h.plan.n_admitted, N);
    for (int i = 0; i < N; i++) {
        ASSERT(h.plan.seqs[i].req == &f[i].r);
        ASSERT(h.plan.admitted[i] == &f[i].r);
        ASSERT_EQ_INT(h.plan.seqs[i].take, 4);
        ASSERT(h.s.running[i] == &f[i].r);
    }
    /* Each needs a second block for its 5th token: 10 are free, and each
     * preemption (the newest running request, swapped out) frees one. */
    ASSERT_EQ_INT(step(&h), VRT_SCHED_RUN);
    ASSERT_EQ_INT(h.plan.n_preempted, 15);
    ASSERT_EQ_INT(h.plan.n_swap_ids, 15);
    for (int i = 0; i < h.plan.n_preempted; i++) {
        const vrt_sched_preempt *pe = &h.plan.preempted[i];
        ASSERT(pe->req == &f[N - 1 - i].r);
        ASSERT_EQ_INT(pe->swap, 1);
        ASSERT_EQ_INT(pe->n_blocks, 1);
        ASSERT_EQ_INT(pe->first, i);
        for (int j = 0; j < i; j++)
            ASSERT(h.plan.swap_ids[j] != h.plan.swap_ids[i]);
    }
    ASSERT_EQ_INT(h.plan.n_seqs, N - 15);
    ASSERT_EQ_INT(h.s.n_running, N - 15);
    ASSERT_EQ_INT(h.s.n_waiting, 15);
    ASSERT_EQ_INT(h.pool.n_free, 0);
    /* Cancel the first 20 (running) in one step. */
    uint64_t ids[20];
    for (int i = 0; i < 20; i++)
        ids[i] = (uint64_t)i + 1;
    ASSERT_EQ_INT(step_c(&h, ids, 20), VRT_SCHED_RUN);
    ASSERT_EQ_INT(h.plan.n_cancelled, 20);
    for (int i = 0; i < 20; i++)
        ASSERT_EQ_INT(f[i].r.state, VRT_SCHED_OUT);
    /* The rest all finish, the swapped ones after swapping in. */
    for (int i = 20; i < N; i++) {
        step_until_done(&h, &f[i]);
        ASSERT(f[i].done);
        ASSERT_EQ_INT(f[i].r.len, 14);
    }
    ASSERT(!vrt_sched_busy(&h.s));
    ASSERT_EQ_INT(h.s.swap_used, 0);
    ASSERT_EQ_INT(h.pool.n_free, BLOCKS);
    teardown(&h);
    free(f);
}
