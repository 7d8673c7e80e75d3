/* test_engine.c — continuous batching: requests run together give exactly
 * what they give alone (greedy and seeded sampling), preemption under a tiny
 * KV cache loses nothing, cancel frees blocks, overload is refused, limits
 * are checked at submit. The model is a tiny random Llama from mkmodel; the
 * references come from the same runtime generating one request at a time.
 */
#include "test.h"

#include "core/err.h"
#include "core/log.h"
#include "engine/engine.h"
#include "engine/runtime_int.h"
#include "model/mkmodel.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static char g_dir[256];

/* A tiny model shared by the tests of this process. */
static const char *model_dir(void)
{
    return vrt_test_tiny_model(g_dir, sizeof g_dir, "engine", 11);
}

static void cleanup(void)
{
    vrt_test_tiny_model_rm(g_dir);
}

/* Writes a config for the model with extra Lua settings (top level, and
 * inside `batching`); returns its path. */
static const char *config_b(const char *extra, const char *batching)
{
    static char path[300];
    snprintf(path, sizeof path, "%s.lua", g_dir);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "local v100rt = require \"v100rt\"\n"
            "return v100rt.config{ model = { path = \"%s\", dtype = \"float32\" },\n"
            "  device = { kind = \"cpu\", threads = 2 }, %s\n"
            "  batching = { %s } }\n",
            g_dir, extra, batching);
    fclose(f);
    return path;
}

static const char *config(const char *extra)
{
    return config_b(extra, "");
}

/* The engine for rt, with the config last written (config_b). */
static int engine_open(vrt_engine **e, vrt_runtime *rt, vrt_err *err)
{
    char path[300];
    snprintf(path, sizeof path, "%s.lua", g_dir);
    vrt_config cfg;
    int rc = vrt_config_load(&cfg, path, err);
    if (!rc)
        rc = vrt_engine_create(e, rt, &cfg, err);
    vrt_config_free(&cfg);
    return rc;
}

enum { MAXR = 40, MAXT = 96 };

typedef struct collect {
    pthread_mutex_t mu;
    int tokens[MAXR][MAXT];
    int n[MAXR];
    int done[MAXR];
    int err[MAXR];
    char finish[MAXR][16];
    char msg[MAXR][512]; /* VRT_EV_ERROR's message */
    char text[MAXR][1024];
    size_t text_len[MAXR];
    int n_done;
    uint64_t ids[MAXR];
} collect;

typedef struct slot {
    collect *c;
    int i;
} slot;

static void on_event(void *ud, const vrt_engine_event *ev)
{
    slot *s = ud;
    collect *c = s->c;
    pthread_mutex_lock(&c->mu);
    int i = s->i;
    if (ev->kind == VRT_EV_TOKEN && c->n[i] < MAXT)
        c->tokens[i][c->n[i]++] = ev->token;
    if (ev->text_len && c->text_len[i] + ev->text_len < sizeof c->text[i]) {
        memcpy(c->text[i] + c->text_len[i], ev->text, ev->text_len);
        c->text_len[i] += ev->text_len;
    }
    if (ev->kind == VRT_EV_FINISH)
        snprintf(c->finish[i], sizeof c->finish[i], "%s", ev->finish_reason);
    if (ev->kind == VRT_EV_ERROR) {
        c->err[i] = ev->err_code;
        snprintf(c->msg[i], sizeof c->msg[i], "%s", ev->err_msg ? ev->err_msg : "");
    }
    if (ev->kind != VRT_EV_TOKEN) {
        c->done[i] = 1;
        c->n_done++;
    }
    pthread_mutex_unlock(&c->mu);
}

static int wait_all(collect *c, int n, double timeout_s)
{
    for (int t = 0; t < (int)(timeout_s * 100); t++) {
        pthread_mutex_lock(&c->mu);
        int d = c->n_done;
        pthread_mutex_unlock(&c->mu);
        if (d >= n)
            return 0;
        usleep(10000);
    }
    return -1;
}

/* Prompt i: a pseudo-random id sequence of 3 + 7*i % 40 tokens. */
static int prompt_of(int i, int32_t *ids)
{
    int n = 3 + (7 * i) % 40;
    uint32_t x = 2654435761u * (uint32_t)(i + 1);
    ids[0] = 1;
    for (int j = 1; j < n; j++) {
        x = x * 1664525u + 1013904223u;
        ids[j] = 3 + (int32_t)(x % 2900);
    }
    return n;
}

static vrt_request_params params_of(int i, int sample)
{
    vrt_request_params p = {0};
    p.sampling = vrt_sampling_params_default();
    if (sample) {
        p.sampling.do_sample = 1;
        p.sampling.temperature = 0.9f;
        p.sampling.top_p = 0.95f;
        p.sampling.seed = 1000 + (uint64_t)i;
    }
    p.max_new_tokens = 8 + (5 * i) % 40;
    p.ignore_eos = 1;
    return p;
}

/* Runs n requests one at a time through the runtime (the reference). */
static int reference(vrt_runtime *rt, int n, int sample, int out[][MAXT], int *n_out)
{
    for (int i = 0; i < n; i++) {
        int32_t ids[64];
        int np = prompt_of(i, ids);
        vrt_request_params q = params_of(i, sample);
        vrt_gen_params g;
        vrt_gen_params_init(&g);
        g.max_new_tokens = q.max_new_tokens;
        g.ignore_eos = 1;
        if (sample) {
            g.do_sample = 1;
            g.temperature = q.sampling.temperature;
            g.top_p = q.sampling.top_p;
            g.seed = q.sampling.seed;
            g.has_seed = 1;
        }
        vrt_gen_result r;
        vrt_err err = {0};
        if (vrt_runtime_generate_ids(rt, ids, np, &g, NULL, NULL, &r, &err) != 0) {
            fprintf(stderr, "reference %d: %s\n", i, err.msg);
            return -1;
        }
        n_out[i] = r.n_tokens;
        memcpy(out[i], r.tokens, (size_t)r.n_tokens * sizeof(int));
        vrt_gen_result_free(&r);
    }
    return 0;
}

static vrt_engine_stats g_last_stats;

/* What the trace hook saw: the largest step, and per request id the
 * prefill chunks it ran and the step of its first one. */
typedef struct trace {
    pthread_mutex_t mu;
    int max_seqs, steps;
    int chunks[MAXR + 8][8]; /* by engine id (1-based ids, small) */
    int n_chunks[MAXR + 8];
    int first_step[MAXR + 8];
    int n_decode_steps[MAXR + 8];
} trace;

static void on_trace(void *ud, const vrt_engine_step_info *st)
{
    trace *t = ud;
    pthread_mutex_lock(&t->mu);
    t->steps = (int)st->step;
    if (st->n_seqs > t->max_seqs)
        t->max_seqs = st->n_seqs;
    for (int i = 0; i < st->n_seqs; i++) {
        uint64_t id = st->seqs[i].id;
        if (id >= MAXR + 8)
            continue;
        if (!t->first_step[id])
            t->first_step[id] = (int)st->step;
        if (st->seqs[i].prefill && t->n_chunks[id] < 8)
            t->chunks[id][t->n_chunks[id]++] = st->seqs[i].n_tokens;
        if (!st->seqs[i].prefill)
            t->n_decode_steps[id]++;
    }
    pthread_mutex_unlock(&t->mu);
}

static trace g_trace;

/* Runs n requests at once with the engine (config: extra at the top level,
 * batching inside `batching`) and checks that each gives what it gives
 * alone; g_trace has what the steps ran. */
static void check_batched_b(const char *extra, const char *batching, int n, int sample,
                            int want_preemptions)
{
    ASSERT(model_dir() != NULL);
    vrt_err err = {0};
    vrt_runtime *rt;
    char b[2048];
    snprintf(b, sizeof b, "max_concurrent_requests = 64, %s", batching);
    ASSERT_OK(vrt_runtime_open(&rt, config_b(extra, b), &err), &err);
    static int ref[MAXR][MAXT];
    int n_ref[MAXR];
    ASSERT_EQ_INT(reference(rt, n, sample, ref, n_ref), 0);
    vrt_engine *e;
    ASSERT_OK(engine_open(&e, rt, &err), &err);
    memset(&g_trace, 0, sizeof g_trace);
    pthread_mutex_init(&g_trace.mu, NULL);
    vrt_engine_set_trace_hook(e, on_trace, &g_trace);
    collect *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    slot slots[MAXR];
    static char log_ids[MAXR][32];
    for (int i = 0; i < n; i++) {
        int32_t ids[64];
        int np = prompt_of(i, ids);
        vrt_request_params p = params_of(i, sample);
        snprintf(log_ids[i], sizeof log_ids[i], "cmpl-test-%d", i);
        p.log_id = log_ids[i];
        slots[i] = (slot){c, i};
        ASSERT_OK(vrt_engine_submit(e, ids, np, &p, on_event, &slots[i], &c->ids[i], &err), &err);
    }
    ASSERT_EQ_INT(wait_all(c, n, 60), 0);
    for (int i = 0; i < n; i++) {
        ASSERT_EQ_INT(c->err[i], 0);
        ASSERT_EQ_STR(c->finish[i], "length");
        if (c->n[i] != n_ref[i])
            TFAIL("request %d: %d tokens batched, %d alone", i, c->n[i], n_ref[i]);
        for (int j = 0; j < c->n[i]; j++)
            if (c->tokens[i][j] != ref[i][j])
                TFAIL("request %d token %d: %d batched, %d alone", i, j, c->tokens[i][j],
                      ref[i][j]);
    }
    vrt_engine_stats st;
    vrt_engine_stats_get(e, &st);
    fprintf(stderr, "  steps %llu preemptions %llu prefix hits %llu\n",
            (unsigned long long)st.steps, (unsigned long long)st.preemptions,
            (unsigned long long)st.prefix_cache_hits);
    g_last_stats = st;
    if (want_preemptions && st.preemptions == 0)
        TFAIL("no preemption happened with %d blocks", st.num_blocks);
    ASSERT_EQ_INT(st.free_blocks, st.num_blocks);
    vrt_engine_destroy(e);
    vrt_runtime_close(rt);
    free(c);
}

TEST(engine_batched_greedy_equals_alone)
{
    check_batched_b("", "", 32, 0, 0);
    cleanup();
}

TEST(engine_batched_seeded_sampling_equals_alone)
{
    check_batched_b("", "", 24, 1, 0);
    cleanup();
}

TEST(engine_preemption_loses_nothing)
{
    /* 12 blocks of 16 = 192 slots for 16 requests of up to ~90 tokens, and
     * prefill chunks of 16 tokens: requests must be preempted and resumed.
     * By default (preemption "auto", swap_space 4 GiB) they are swapped. */
    check_batched_b("cache = { num_blocks = 12 },",
                    "max_total_tokens = 128, max_input_tokens = 64, max_batch_prefill_tokens = 16",
                    16, 1, 1);
    if (g_last_stats.swap_outs == 0)
        TFAIL("no preemption swapped (%llu preemptions)",
              (unsigned long long)g_last_stats.preemptions);
    /* By recompute only, and without the prefix cache to help. */
    check_batched_b("cache = { num_blocks = 12, prefix_caching = false },",
                    "max_total_tokens = 128, max_input_tokens = 64, max_batch_prefill_tokens = 16, "
                    "preemption = \"recompute\"",
                    16, 1, 1);
    ASSERT_EQ_INT(g_last_stats.swap_outs, 0);
    cleanup();
}

TEST(engine_cancel_frees_blocks_and_overload_is_refused)
{
    ASSERT(model_dir() != NULL);
    vrt_err err = {0};
    vrt_runtime *rt;
    ASSERT_OK(vrt_runtime_open(&rt, config_b("", "max_concurrent_requests = 2"), &err), &err);
    vrt_engine *e;
    ASSERT_OK(engine_open(&e, rt, &err), &err);
    collect *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    slot slots[3] = {{c, 0}, {c, 1}, {c, 2}};
    int32_t ids[64];
    int np = prompt_of(3, ids);
    vrt_request_params p = params_of(0, 0);
    p.max_new_tokens = 1000;
    ASSERT_OK(vrt_engine_submit(e, ids, np, &p, on_event, &slots[0], &c->ids[0], &err), &err);
    ASSERT_OK(vrt_engine_submit(e, ids, np, &p, on_event, &slots[1], &c->ids[1], &err), &err);
    ASSERT_EQ_INT(vrt_engine_submit(e, ids, np, &p, on_event, &slots[2], &c->ids[2], &err),
                  VRT_EOVERLOADED);
    ASSERT_CONTAINS(err.msg, "max_concurrent_requests");
    /* Let them generate a little, then cancel both. */
    for (int t = 0; t < 500; t++) {
        pthread_mutex_lock(&c->mu);
        int go = c->n[0] > 2 && c->n[1] > 2;
        pthread_mutex_unlock(&c->mu);
        if (go)
            break;
        usleep(10000);
    }
    vrt_engine_cancel(e, c->ids[0]);
    vrt_engine_cancel(e, c->ids[1]);
    vrt_engine_cancel(e, 999999); /* unknown: ignored */
    ASSERT_EQ_INT(wait_all(c, 2, 30), 0);
    ASSERT_EQ_INT(c->err[0], VRT_ECANCELED);
    ASSERT_EQ_INT(c->err[1], VRT_ECANCELED);
    ASSERT_EQ_INT(vrt_engine_in_flight(e), 0);
    vrt_engine_stats st;
    for (int t = 0; t < 100; t++) {
        vrt_engine_stats_get(e, &st);
        if (st.free_blocks == st.num_blocks)
            break;
        usleep(10000);
    }
    ASSERT_EQ_INT(st.free_blocks, st.num_blocks);
    ASSERT(st.kv_usage == 0.0);
    /* Limits at the door. */
    vrt_request_params q = params_of(0, 0);
    q.max_new_tokens = 100000;
    ASSERT_EQ_INT(vrt_engine_submit(e, ids, np, &q, on_event, &slots[2], &c->ids[2], &err),
                  VRT_ERANGE);
    ASSERT_CONTAINS(err.msg, "max_total_tokens");
    int32_t bad[2] = {1, 5000};
    q.max_new_tokens = 4;
    ASSERT_EQ_INT(vrt_engine_submit(e, bad, 2, &q, on_event, &slots[2], &c->ids[2], &err),
                  VRT_ERANGE);
    ASSERT_CONTAINS(err.msg, "outside the vocabulary");
    vrt_engine_destroy(e);
    vrt_runtime_close(rt);
    free(c);
    cleanup();
}

TEST(engine_stop_strings_and_eos_end_requests)
{
    ASSERT(model_dir() != NULL);
    vrt_err err = {0};
    vrt_runtime *rt;
    ASSERT_OK(vrt_runtime_open(&rt, config(""), &err), &err);
    /* The greedy text of a prompt, alone. */
    int32_t ids[64];
    int np = prompt_of(5, ids);
    vrt_gen_params g;
    vrt_gen_params_init(&g);
    g.max_new_tokens = 30;
    g.ignore_eos = 1;
    vrt_gen_result r;
    ASSERT_OK(vrt_runtime_generate_ids(rt, ids, np, &g, NULL, NULL, &r, &err), &err);
    ASSERT(r.text_len > 8);
    char stop[8];
    memcpy(stop, r.text + 4, 3);
    stop[3] = 0;
    const char *first = strstr(r.text, stop);
    size_t want_len = (size_t)(first - r.text);
    vrt_engine *e;
    ASSERT_OK(engine_open(&e, rt, &err), &err);
    collect *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    slot s0 = {c, 0}, s1 = {c, 1};
    vrt_request_params p = params_of(0, 0);
    p.max_new_tokens = 30;
    const char *stops[1] = {stop};
    p.stop = stops;
    p.n_stop = 1;
    ASSERT_OK(vrt_engine_submit(e, ids, np, &p, on_event, &s0, &c->ids[0], &err), &err);
    /* The 4th greedy token as a stop id. */
    vrt_request_params q = params_of(0, 0);
    q.max_new_tokens = 30;
    q.stop_ids = &r.tokens[3];
    q.n_stop_ids = 1;
    ASSERT_OK(vrt_engine_submit(e, ids, np, &q, on_event, &s1, &c->ids[1], &err), &err);
    ASSERT_EQ_INT(wait_all(c, 2, 30), 0);
    ASSERT_EQ_STR(c->finish[0], "stop_sequence");
    ASSERT_EQ_INT(c->text_len[0], want_len);
    ASSERT(memcmp(c->text[0], r.text, want_len) == 0);
    ASSERT_EQ_STR(c->finish[1], "stop_sequence");
    int first_stop = 0;
    while (r.tokens[first_stop] != r.tokens[3])
        first_stop++;
    ASSERT_EQ_INT(c->n[1], first_stop + 1);
    vrt_gen_result_free(&r);
    vrt_engine_destroy(e);
    vrt_runtime_close(rt);
    free(c);
    cleanup();
}

/* ---- scheduling policies (Lua hooks) ---------------------------------------- */

static int submit_tenant(vrt_engine *e, const char *tenant, int i, slot *sl, collect *c,
                         vrt_err *err)
{
    int32_t ids[64];
    int np = prompt_of(i, ids);
    vrt_request_params p = params_of(i, 0);
    p.max_new_tokens = 6;
    p.tenant = tenant;
    return vrt_engine_submit(e, ids, np, &p, on_event, sl, &c->ids[sl->i], err);
}

TEST(engine_policy_hook_errors_fail_only_their_request)
{
    ASSERT(model_dir() != NULL);
    vrt_err err = {0};
    vrt_runtime *rt;
    ASSERT_OK(
        vrt_runtime_open(&rt,
                         config_b("", "policy = {\n"
                                      "  priority = function(req)\n"
                                      "    local t = require('ffi').string(req.tenant)\n"
                                      "    if t == 'bad' then error('no priority for you') end\n"
                                      "    if t == 'loop' then while true do end end\n"
                                      "    return req.prompt_tokens\n"
                                      "  end,\n"
                                      "  admit = function(req) return req.prompt_tokens < 40 end,\n"
                                      "}"),
                         &err),
        &err);
    vrt_engine *e;
    ASSERT_OK(engine_open(&e, rt, &err), &err);
    collect *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    slot sl[5] = {{c, 0}, {c, 1}, {c, 2}, {c, 3}, {c, 4}};
    ASSERT_OK(submit_tenant(e, "ok", 0, &sl[0], c, &err), &err);
    ASSERT_OK(submit_tenant(e, "bad", 1, &sl[1], c, &err), &err);
    ASSERT_OK(submit_tenant(e, "loop", 2, &sl[2], c, &err), &err);
    ASSERT_OK(submit_tenant(e, "ok", 3, &sl[3], c, &err), &err);
    ASSERT_OK(submit_tenant(e, "ok", 5, &sl[4], c, &err), &err); /* 3 + 35 = 38 tokens */
    ASSERT_EQ_INT(wait_all(c, 5, 60), 0);
    ASSERT_EQ_INT(c->err[0], 0);
    ASSERT_EQ_STR(c->finish[0], "length");
    ASSERT_EQ_INT(c->err[1], VRT_EPOLICY);
    ASSERT_EQ_INT(c->err[2], VRT_EPOLICY);
    ASSERT_EQ_INT(c->err[3], 0);
    ASSERT_EQ_INT(c->err[4], 0);
    /* admit: a 45-token prompt is refused. */
    int32_t ids[64];
    for (int i = 0; i < 45; i++)
        ids[i] = 5 + i;
    vrt_request_params p = params_of(0, 0);
    p.max_new_tokens = 3;
    p.tenant = "ok";
    collect *c2 = calloc(1, sizeof *c2);
    pthread_mutex_init(&c2->mu, NULL);
    slot s2 = {c2, 0};
    ASSERT_OK(vrt_engine_submit(e, ids, 45, &p, on_event, &s2, &c2->ids[0], &err), &err);
    ASSERT_EQ_INT(wait_all(c2, 1, 30), 0);
    ASSERT_EQ_INT(c2->err[0], VRT_EOVERLOADED);
    vrt_engine_destroy(e);
    vrt_runtime_close(rt);
    free(c);
    free(c2);
    cleanup();
}

TEST(engine_policy_pick_victim_and_builtins)
{
    /* A Lua pick_victim (the oldest request) under preemption: outputs are
     * still those of the requests run alone. */
    check_batched_b("cache = { num_blocks = 12 },",
                    "max_total_tokens = 128, max_input_tokens = 64, max_batch_prefill_tokens = 16, "
                    "policy = {\n"
                    "  pick_victim = function(running) return 1 end,\n"
                    "  on_step = function(stats) assert(stats.num_blocks == 12) end }",
                    12, 1, 1);
    /* The built-in policies load and run. */
    check_batched_b("", "policy = \"fair\"", 6, 0, 0);
    check_batched_b("", "policy = \"priority\"", 6, 0, 0);
    cleanup();
}

TEST(engine_prefix_cache_hits_and_changes_nothing)
{
    ASSERT(model_dir() != NULL);
    vrt_err err = {0};
    vrt_runtime *rt;
    ASSERT_OK(vrt_runtime_open(&rt, config(""), &err), &err);
    /* Three prompts sharing their first 40 tokens; references alone. */
    int32_t base[64];
    prompt_of(20, base); /* 3 + 140 % 40 = 23 tokens; extend to 60 */
    for (int j = 23; j < 60; j++)
        base[j] = 10 + j;
    int32_t prompts[3][64];
    int n[3] = {50, 55, 60};
    int ref[3][MAXT], n_ref[3];
    for (int k = 0; k < 3; k++) {
        memcpy(prompts[k], base, sizeof base);
        prompts[k][45] = 1000 + k; /* differ after 45 tokens */
        vrt_gen_params g;
        vrt_gen_params_init(&g);
        g.max_new_tokens = 10;
        g.ignore_eos = 1;
        vrt_gen_result r;
        ASSERT_OK(vrt_runtime_generate_ids(rt, prompts[k], n[k], &g, NULL, NULL, &r, &err), &err);
        n_ref[k] = r.n_tokens;
        memcpy(ref[k], r.tokens, (size_t)r.n_tokens * sizeof(int));
        vrt_gen_result_free(&r);
    }
    vrt_engine *e;
    ASSERT_OK(engine_open(&e, rt, &err), &err);
    collect *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    slot sl[3] = {{c, 0}, {c, 1}, {c, 2}};
    for (int k = 0; k < 3; k++) { /* one after the other: the cache is warm */
        vrt_request_params p = params_of(0, 0);
        p.max_new_tokens = 10;
        ASSERT_OK(vrt_engine_submit(e, prompts[k], n[k], &p, on_event, &sl[k], &c->ids[k], &err),
                  &err);
        ASSERT_EQ_INT(wait_all(c, k + 1, 30), 0);
    }
    for (int k = 0; k < 3; k++) {
        ASSERT_EQ_INT(c->n[k], n_ref[k]);
        for (int j = 0; j < c->n[k]; j++)
            if (c->tokens[k][j] != ref[k][j])
                TFAIL("prompt %d token %d: %d with the prefix cache, %d without", k, j,
                      c->tokens[k][j], ref[k][j]);
    }
    vrt_engine_stats st;
    vrt_engine_stats_get(e, &st);
    /* Prompts 2 and 3 find at least the first two 16-token blocks. */
    if (st.prefix_cache_hits < 64)
        TFAIL("prefix cache hits %llu tokens, expected >= 64",
              (unsigned long long)st.prefix_cache_hits);
    vrt_engine_destroy(e);
    vrt_runtime_close(rt);
    free(c);
    cleanup();
}

/* A model whose vocabulary is larger than its tokenizer's (padded
 * embedding rows, as many real checkpoints have): sampling such an id gives
 * no text instead of failing the request (it failed with "token id ... is
 * not in the vocabulary" before). */
TEST(engine_ids_beyond_the_tokenizer_decode_to_nothing)
{
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/vrt-test-padvocab-%d", (int)getpid());
    vrt_mkmodel_opts o;
    vrt_err err = {0};
    ASSERT_OK(vrt_mkmodel_preset(&o, "tiny", 1, &err), &err);
    o.seed = 5;
    o.force = true;
    o.vocab_size = vrt_mkmodel_tokenizer_vocab() + 1000; /* a third of the rows have no token */
    ASSERT_OK(vrt_mkmodel_write(&o, dir, &err), &err);
    vrt_runtime *rt;
    ASSERT_OK(vrt_runtime_open(&rt, dir, &err), &err);
    vrt_gen_params g;
    vrt_gen_params_init(&g);
    g.max_new_tokens = 48;
    g.ignore_eos = 1;
    g.do_sample = 1;
    g.temperature = 1.5f;
    g.seed = 3;
    g.has_seed = 1;
    int32_t prompt[3] = {1, 100, 200};
    vrt_gen_result r;
    ASSERT_OK(vrt_runtime_generate_ids(rt, prompt, 3, &g, NULL, NULL, &r, &err), &err);
    int beyond = 0;
    for (int i = 0; i < r.n_tokens; i++)
        beyond += r.tokens[i] >= vrt_mkmodel_tokenizer_vocab();
    ASSERT_EQ_INT(r.n_tokens, 48);
    ASSERT(beyond > 0); /* the case under test happened */
    ASSERT(r.text != NULL);
    vrt_gen_result_free(&r);
    vrt_runtime_close(rt);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ_INT(system(cmd), 0);
}

/* ---- batching: max_batch_size, max_waiting_tokens, chunked_prefill ---------- */

/* batching.max_batch_size (TGI --max-batch-size, vLLM --max-num-seqs): no
 * step runs more than 3 sequences, decodes and prefills together, though
 * 10 requests are in flight; the others wait and every output is the one
 * the request gives alone. */
TEST(engine_max_batch_size_limits_every_step)
{
    check_batched_b("", "max_batch_size = 3", 10, 0, 0);
    if (g_trace.max_seqs > 3)
        TFAIL("a step ran %d sequences with max_batch_size = 3", g_trace.max_seqs);
    ASSERT_EQ_INT(g_trace.max_seqs, 3); /* and the limit was reached */
    /* Without the limit the same requests run more at once. */
    check_batched_b("", "", 10, 0, 0);
    ASSERT(g_trace.max_seqs > 3);
    cleanup();
}

/* A prompt of n ids (the same generator as prompt_of). */
static void prompt_len(int i, int n, int32_t *ids)
{
    uint32_t x = 2654435761u * (uint32_t)(i + 101);
    ids[0] = 1;
    for (int j = 1; j < n; j++) {
        x = x * 1664525u + 1013904223u;
        ids[j] = 3 + (int32_t)(x % 2900);
    }
}

/* Requests submitted from inside the trace hook, after the first step in
 * which n_first requests decode together: they reach the engine exactly at
 * the next step, whatever the test's own thread does. */
typedef struct late {
    trace *t;
    vrt_engine *e;
    collect *c;
    slot slots[MAXR];
    int n_first, n_late;
    int late_len; /* prompt tokens of each late request; 0: prompt_of */
    int late_max_new;
    int at_step; /* the step after which they were submitted */
    int rc;
} late;

static void late_prompt(const late *l, int i, int32_t *ids, int *np)
{
    if (l->late_len > 0) {
        prompt_len(i, l->late_len, ids);
        *np = l->late_len;
    } else {
        *np = prompt_of(i, ids);
    }
}

static void on_trace_late(void *ud, const vrt_engine_step_info *st)
{
    late *l = ud;
    on_trace(l->t, st);
    if (l->at_step || st->n_decode < l->n_first)
        return;
    l->at_step = (int)st->step;
    for (int k = 0; k < l->n_late; k++) {
        int i = l->n_first + k, np;
        int32_t ids[64];
        late_prompt(l, i, ids, &np);
        vrt_request_params p = params_of(i, 0);
        p.max_new_tokens = l->late_max_new;
        vrt_err err = {0};
        if (vrt_engine_submit(l->e, ids, np, &p, on_event, &l->slots[i], &l->c->ids[i], &err))
            l->rc = err.code;
    }
}

/* Runs n_first requests of 40 new tokens, then the late ones; checks that
 * all finish and that the late ones give what they give alone. Returns in
 * *last_admit the step the last first request started (its prefill). */
static void run_late(const char *batching, late *l, int *last_admit)
{
    ASSERT(model_dir() != NULL);
    vrt_err err = {0};
    vrt_runtime *rt;
    char b[1024];
    snprintf(b, sizeof b, "max_concurrent_requests = 16, %s", batching);
    ASSERT_OK(vrt_runtime_open(&rt, config_b("", b), &err), &err);
    int n = l->n_first + l->n_late;
    static int ref[MAXR][MAXT];
    int n_ref[MAXR];
    for (int i = l->n_first; i < n; i++) {
        int32_t ids[64];
        int np;
        late_prompt(l, i, ids, &np);
        vrt_gen_params g;
        vrt_gen_params_init(&g);
        g.max_new_tokens = l->late_max_new;
        g.ignore_eos = 1;
        vrt_gen_result r;
        ASSERT_OK(vrt_runtime_generate_ids(rt, ids, np, &g, NULL, NULL, &r, &err), &err);
        n_ref[i] = r.n_tokens;
        memcpy(ref[i], r.tokens, (size_t)r.n_tokens * sizeof(int));
        vrt_gen_result_free(&r);
    }
    static trace t;
    memset(&t, 0, sizeof t);
    pthread_mutex_init(&t.mu, NULL);
    collect *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    l->t = &t;
    l->c = c;
    for (int i = 0; i < n; i++)
        l->slots[i] = (slot){c, i};
    ASSERT_OK(engine_open(&l->e, rt, &err), &err);
    vrt_engine_set_trace_hook(l->e, on_trace_late, l);
    for (int i = 0; i < l->n_first; i++) {
        int32_t ids[64];
        int np = prompt_of(i, ids);
        vrt_request_params p = params_of(i, 0);
        p.max_new_tokens = 40;
        ASSERT_OK(vrt_engine_submit(l->e, ids, np, &p, on_event, &l->slots[i], &c->ids[i], &err),
                  &err);
    }
    ASSERT_EQ_INT(wait_all(c, n, 60), 0);
    ASSERT_EQ_INT(l->rc, 0);
    *last_admit = 0;
    for (int i = 0; i < n; i++) {
        ASSERT_EQ_INT(c->err[i], 0);
        ASSERT_EQ_STR(c->finish[i], "length");
        ASSERT_EQ_INT(c->ids[i], i + 1); /* the trace is by engine id */
        if (i < l->n_first && t.first_step[i + 1] > *last_admit)
            *last_admit = t.first_step[i + 1];
        if (i >= l->n_first) {
            ASSERT_EQ_INT(c->n[i], n_ref[i]);
            for (int j = 0; j < c->n[i]; j++)
                if (c->tokens[i][j] != ref[i][j])
                    TFAIL("late request %d token %d: %d, %d alone", i, j, c->tokens[i][j],
                          ref[i][j]);
        }
    }
    vrt_engine_destroy(l->e);
    vrt_runtime_close(rt);
    free(c);
}

/* batching.max_waiting_tokens, TGI's rule: while 4 requests decode, one new
 * request joins at the next step with 0; with 8 it waits until 8 steps
 * have run since requests last joined; 5 new requests (at least 1.2 x the
 * 4 running, TGI's waiting_served_ratio) join at once even with 8. */
TEST(engine_max_waiting_tokens_defers_new_prefills)
{
    int a = 0;
    late l = {.n_first = 4, .n_late = 1, .late_max_new = 4};
    run_late("max_waiting_tokens = 0", &l, &a);
    ASSERT(l.at_step > 0);
    ASSERT_EQ_INT(l.t->first_step[5], l.at_step + 1);

    l = (late){.n_first = 4, .n_late = 1, .late_max_new = 4};
    run_late("max_waiting_tokens = 8", &l, &a);
    ASSERT(a + 9 > l.at_step + 1); /* the rule makes a difference here */
    ASSERT_EQ_INT(l.t->first_step[5], a + 9);
    /* Meanwhile the 4 ran alone: 4 sequences in steps a+1 .. a+8. */

    l = (late){.n_first = 4, .n_late = 5, .late_max_new = 4};
    run_late("max_waiting_tokens = 8", &l, &a);
    for (int id = 5; id <= 9; id++)
        ASSERT_EQ_INT(l.t->first_step[id], l.at_step + 1);
    cleanup();
}

/* batching.waiting_served_ratio: the same 5 new requests next to 4
 * running ones wait for max_waiting_tokens steps when the ratio asks for
 * 2 x 4 = 8 waiting, and join at once with the ratio 1.2 (above) or 0. */
TEST(engine_waiting_served_ratio_sets_when_waiting_requests_join)
{
    int a = 0;
    late l = {.n_first = 4, .n_late = 5, .late_max_new = 4};
    run_late("max_waiting_tokens = 8, waiting_served_ratio = 2", &l, &a);
    ASSERT(a + 9 > l.at_step + 1);
    for (int id = 5; id <= 9; id++)
        ASSERT_EQ_INT(l.t->first_step[id], a + 9);

    l = (late){.n_first = 4, .n_late = 1, .late_max_new = 4};
    run_late("max_waiting_tokens = 8, waiting_served_ratio = 0", &l, &a);
    ASSERT_EQ_INT(l.t->first_step[5], l.at_step + 1);
    cleanup();
}

/* batching.chunked_prefill: two 30-token prompts arrive together next to a
 * decoding request, with a prefill budget of 40 tokens per step. Chunked,
 * the second is split (10 now, 20 next step); not chunked, each prompt is
 * prefilled in one step of all its tokens, the second one step later. The
 * outputs are the same either way. */
TEST(engine_chunked_prefill_false_prefills_each_prompt_in_one_step)
{
    const char *common = "max_input_tokens = 40, max_batch_prefill_tokens = 40, "
                         "max_total_tokens = 128, max_waiting_tokens = 0, ";
    char b[512];
    int a = 0;
    snprintf(b, sizeof b, "%s chunked_prefill = true", common);
    late l = {.n_first = 1, .n_late = 2, .late_len = 30, .late_max_new = 6};
    run_late(b, &l, &a);
    trace *t = l.t;
    ASSERT_EQ_INT(t->n_chunks[2], 1);
    ASSERT_EQ_INT(t->chunks[2][0], 30);
    ASSERT_EQ_INT(t->n_chunks[3], 2);
    ASSERT_EQ_INT(t->chunks[3][0], 10);
    ASSERT_EQ_INT(t->chunks[3][1], 20);
    ASSERT_EQ_INT(t->first_step[3], t->first_step[2]);

    snprintf(b, sizeof b, "%s chunked_prefill = false", common);
    l = (late){.n_first = 1, .n_late = 2, .late_len = 30, .late_max_new = 6};
    run_late(b, &l, &a);
    t = l.t;
    ASSERT_EQ_INT(t->n_chunks[2], 1);
    ASSERT_EQ_INT(t->chunks[2][0], 30);
    ASSERT_EQ_INT(t->n_chunks[3], 1);
    ASSERT_EQ_INT(t->chunks[3][0], 30);
    ASSERT_EQ_INT(t->first_step[3], t->first_step[2] + 1);
    cleanup();
}

/* chunked_prefill = false under preemption by recompute: every prompt is
 * still prefilled in one step; a preempted request whose prompt + generated
 * tokens exceed the whole budget is recomputed in chunks (it could never
 * run otherwise), and every output is the one of the request alone. */
TEST(engine_chunked_prefill_false_with_preemption_loses_nothing)
{
    check_batched_b("cache = { num_blocks = 12, prefix_caching = false },",
                    "max_total_tokens = 128, max_input_tokens = 48, max_batch_prefill_tokens = 48, "
                    "chunked_prefill = false, preemption = \"recompute\"",
                    16, 1, 1);
    for (int i = 0; i < 16; i++) {
        int32_t ids[64];
        int np = prompt_of(i, ids);
        uint64_t id = (uint64_t)i + 1;
        if (g_trace.n_chunks[id] < 1 || g_trace.chunks[id][0] != np)
            TFAIL("request %d: its %d-token prompt ran as a first chunk of %d", i, np,
                  g_trace.n_chunks[id] ? g_trace.chunks[id][0] : 0);
    }
    cleanup();
}

/* ---- logs tell one story -------------------------------------------------------- */

/* Every engine log line about a request names it by the server's id
 * (vrt_request_params.log_id), and each preemption is one INFO line with
 * its kind. */
TEST(engine_logs_use_the_request_log_id_and_one_line_per_preemption)
{
    char path[64];
    strcpy(path, "/tmp/vrt-englog-XXXXXX");
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    FILE *f = fdopen(fd, "w+");
    /* The config sets the level when the runtime opens: the log goes to f
     * at debug from the engine's creation on (check_batched's open). */
    vrt_log_set_stream(f);
    check_batched_b("cache = { num_blocks = 12 }, logging = { level = \"debug\" },",
                    "max_total_tokens = 128, max_input_tokens = 64, max_batch_prefill_tokens = 16",
                    16, 1, 1);
    vrt_log_set_stream(NULL);
    fflush(f);
    char *log = vrt_test_read_file(path, NULL);
    fclose(f);
    remove(path);
    ASSERT(log != NULL);
    int n_pre = 0, n_lines = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(line, "engine: ") || !strstr(line, "request "))
            continue;
        n_lines++;
        if (!strstr(line, "request cmpl-test-"))
            TFAIL("an engine line without the request's log id: %s", line);
        if (strstr(line, "preempted request")) {
            n_pre++;
            ASSERT_CONTAINS(line, " INFO ");
            if (!strstr(line, "(swap: ") && !strstr(line, "(recompute: "))
                TFAIL("a preemption without its kind: %s", line);
        }
    }
    free(log);
    ASSERT(n_lines > 16); /* scheduled + finished lines at least */
    ASSERT_EQ_INT(n_pre, g_last_stats.preemptions);
    cleanup();
}

/* ---- policy hooks that never return ---------------------------------------------- */

#define STUCK "string.find(('a'):rep(40), ('a*'):rep(20) .. 'b')"

static int submit_as(vrt_engine *e, const char *tenant, const char *log_id, int i, int max_new,
                     slot *sl, collect *c, vrt_err *err)
{
    int32_t ids[64];
    int np = prompt_of(i, ids);
    vrt_request_params p = params_of(i, 0);
    p.max_new_tokens = max_new;
    p.tenant = tenant;
    p.log_id = log_id;
    return vrt_engine_submit(e, ids, np, &p, on_event, sl, &c->ids[sl->i], err);
}

static int wait_one(collect *c, int i, double timeout_s)
{
    for (int t = 0; t < (int)(timeout_s * 100); t++) {
        pthread_mutex_lock(&c->mu);
        int d = c->done[i];
        pthread_mutex_unlock(&c->mu);
        if (d)
            return 0;
        usleep(10000);
    }
    return -1;
}

/* A policy whose admit or priority hook is stuck in C for one tenant: the
 * request of that tenant fails with VRT_EPOLICY, the request running
 * meanwhile finishes, the policy is disabled (one ERROR line naming the
 * request), and later requests are scheduled by fcfs — the admit hook that
 * refused tenant "refused" before no longer runs. */
static void check_stuck_request_hook(const char *hook)
{
    ASSERT(model_dir() != NULL);
    vrt_err err = {0};
    vrt_runtime *rt;
    char pol[1024];
    snprintf(pol, sizeof pol,
             "policy = {\n"
             "  admit = function(req)\n"
             "    local t = req.tenant ~= nil and require('ffi').string(req.tenant) or ''\n"
             "    if t == 'stuck' and '%s' == 'admit' then " STUCK " end\n"
             "    return t ~= 'refused'\n"
             "  end,\n"
             "  priority = function(req)\n"
             "    local t = req.tenant ~= nil and require('ffi').string(req.tenant) or ''\n"
             "    if t == 'stuck' and '%s' == 'priority' then " STUCK " end\n"
             "    return 0\n"
             "  end }",
             hook, hook);
    ASSERT_OK(vrt_runtime_open(&rt, config_b("", pol), &err), &err);
    vrt_engine *e;
    ASSERT_OK(engine_open(&e, rt, &err), &err);
    char path[64];
    strcpy(path, "/tmp/vrt-englog-XXXXXX");
    FILE *f = fdopen(mkstemp(path), "w+");
    vrt_log_set_stream(f);
    collect *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    slot sl[6] = {{c, 0}, {c, 1}, {c, 2}, {c, 3}, {c, 4}, {c, 5}};
    ASSERT_OK(submit_as(e, "refused", "cmpl-r1", 1, 4, &sl[0], c, &err), &err);
    ASSERT_EQ_INT(wait_one(c, 0, 30), 0);
    ASSERT_EQ_INT(c->err[0], VRT_EOVERLOADED); /* the policy runs */
    ASSERT_OK(submit_as(e, "ok", "cmpl-ok1", 2, 30, &sl[1], c, &err), &err);
    ASSERT_OK(submit_as(e, "stuck", "cmpl-stuck", 3, 4, &sl[2], c, &err), &err);
    ASSERT_EQ_INT(wait_one(c, 2, 30), 0);
    ASSERT_EQ_INT(c->err[2], VRT_EPOLICY);
    ASSERT_CONTAINS(c->msg[2], "did not return within");
    ASSERT_CONTAINS(c->msg[2], hook);
    ASSERT(strstr(c->msg[2], ".lua:") == NULL); /* no file paths for the client */
    ASSERT_OK(submit_as(e, "refused", "cmpl-r2", 4, 4, &sl[3], c, &err), &err);
    ASSERT_OK(submit_as(e, "stuck", "cmpl-stuck2", 5, 4, &sl[4], c, &err), &err);
    ASSERT_EQ_INT(wait_all(c, 5, 60), 0);
    vrt_log_set_stream(NULL);
    ASSERT_EQ_INT(c->err[1], 0);
    ASSERT_EQ_STR(c->finish[1], "length");
    ASSERT_EQ_INT(c->n[1], 30);
    ASSERT_EQ_INT(c->err[3], 0); /* fcfs admits it */
    ASSERT_EQ_STR(c->finish[3], "length");
    ASSERT_EQ_INT(c->err[4], 0);
    vrt_engine_stats st;
    vrt_engine_stats_get(e, &st);
    ASSERT_EQ_INT(st.policy_disabled, 1);
    fflush(f);
    char *log = vrt_test_read_file(path, NULL);
    fclose(f);
    remove(path);
    ASSERT(log != NULL);
    int n_err = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, " ERROR ") && strstr(line, "did not return within")) {
            n_err++;
            ASSERT_CONTAINS(line, "request cmpl-stuck:");
        }
    free(log);
    ASSERT_EQ_INT(n_err, 1);
    vrt_engine_destroy(e); /* does not wait for the stuck hook */
    vrt_runtime_close(rt);
    free(c);
    cleanup();
}

TEST(engine_policy_priority_stuck_in_c_fails_its_request_then_fcfs)
{
    check_stuck_request_hook("priority");
}

TEST(engine_policy_admit_stuck_in_c_fails_its_request_then_fcfs)
{
    check_stuck_request_hook("admit");
}

/* on_step stuck in C (at the 3rd step): no request fails, the policy is
 * disabled, and the admit hook that refused "refused" no longer runs. */
TEST(engine_policy_on_step_stuck_in_c_disables_the_policy)
{
    ASSERT(model_dir() != NULL);
    vrt_err err = {0};
    vrt_runtime *rt;
    ASSERT_OK(vrt_runtime_open(&rt,
                               config_b("", "policy = {\n"
                                            "  on_step = function(st)\n"
                                            "    if st.steps == 3 then " STUCK " end\n"
                                            "  end,\n"
                                            "  admit = function(req)\n"
                                            "    return req.tenant == nil or "
                                            "require('ffi').string(req.tenant) ~= 'refused'\n"
                                            "  end }"),
                               &err),
              &err);
    vrt_engine *e;
    ASSERT_OK(engine_open(&e, rt, &err), &err);
    collect *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    slot sl[3] = {{c, 0}, {c, 1}, {c, 2}};
    ASSERT_OK(submit_as(e, "refused", NULL, 1, 4, &sl[0], c, &err), &err);
    ASSERT_EQ_INT(wait_one(c, 0, 30), 0);
    ASSERT_EQ_INT(c->err[0], VRT_EOVERLOADED);
    ASSERT_OK(submit_as(e, "ok", NULL, 2, 10, &sl[1], c, &err), &err);
    ASSERT_EQ_INT(wait_one(c, 1, 30), 0);
    ASSERT_EQ_INT(c->err[1], 0);
    ASSERT_EQ_INT(c->n[1], 10);
    vrt_engine_stats st;
    vrt_engine_stats_get(e, &st);
    ASSERT_EQ_INT(st.policy_disabled, 1);
    ASSERT_OK(submit_as(e, "refused", NULL, 3, 4, &sl[2], c, &err), &err);
    ASSERT_EQ_INT(wait_all(c, 3, 30), 0);
    ASSERT_EQ_INT(c->err[2], 0);
    ASSERT_EQ_STR(c->finish[2], "length");
    vrt_engine_destroy(e);
    vrt_runtime_close(rt);
    free(c);
    cleanup();
}

/* pick_victim stuck in C at the first preemption: the default victim is
 * preempted instead, nothing is lost (every output as alone), and the
 * policy is disabled. */
TEST(engine_policy_pick_victim_stuck_in_c_falls_back_and_loses_nothing)
{
    check_batched_b("cache = { num_blocks = 12 },",
                    "max_total_tokens = 128, max_input_tokens = 64, max_batch_prefill_tokens = 16, "
                    "policy = { pick_victim = function(running) " STUCK " return 1 end }",
                    12, 1, 1);
    ASSERT_EQ_INT(g_last_stats.policy_disabled, 1);
    cleanup();
}
