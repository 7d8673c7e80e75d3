/* test_generate.c — the runtime's generate is a synchronous client of the
 * engine: its request runs in the runtime's own engine (the trace and step
 * hooks and the stats see it, with the prefill chunks and decode steps the
 * engine schedules), greedy output is the argmax of the full sequence's
 * logits (a reference outside the engine), a caller that stops streaming
 * ends the request as "length", and nothing is left holding KV blocks
 * between calls. The model is a tiny random Llama from mkmodel.
 */
#include "test.h"

#include "core/err.h"
#include "engine/engine.h"
#include "engine/runtime_int.h"
#include "model/mkmodel.h"

#include <stdlib.h>
#include <unistd.h>

static char g_dir[256];

static const char *model_dir(void)
{
    return vrt_test_tiny_model(g_dir, sizeof g_dir, "generate", 23);
}

static void cleanup(void)
{
    vrt_test_tiny_model_rm(g_dir);
}

/* Opens the model with `batching = { <batching> }`. */
static int open_rt(vrt_runtime **rt, const char *batching, vrt_err *err)
{
    if (!model_dir())
        return vrt_err_set(err, VRT_EIO, "mkmodel failed");
    char path[300];
    snprintf(path, sizeof path, "%s.lua", g_dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return vrt_err_set(err, VRT_EIO, "cannot write %s", path);
    fprintf(f,
            "local v100rt = require \"v100rt\"\n"
            "return v100rt.config{ model = { path = \"%s\", dtype = \"float32\" },\n"
            "  device = { kind = \"cpu\", threads = 2 }, batching = { %s } }\n",
            g_dir, batching);
    fclose(f);
    return vrt_runtime_open(rt, path, err);
}

static int prompt_of(int n, int32_t *ids)
{
    uint32_t x = 2654435761u * (uint32_t)n;
    ids[0] = 1;
    for (int j = 1; j < n; j++) {
        x = x * 1664525u + 1013904223u;
        ids[j] = 3 + (int32_t)(x % 2900);
    }
    return n;
}

/* What the hooks of the runtime's engine saw. */
typedef struct seen {
    int steps, step_hook_calls;
    uint64_t last_id;
    int prefill[16], n_prefill; /* prefill chunks, in order */
    int decodes;
    int other_seqs; /* sequences in a step other than the one request */
} seen;

static void on_trace(void *ud, const vrt_engine_step_info *st)
{
    seen *s = ud;
    s->steps++;
    if (st->n_seqs != 1)
        s->other_seqs += st->n_seqs;
    for (int i = 0; i < st->n_seqs; i++) {
        s->last_id = st->seqs[i].id;
        if (st->seqs[i].prefill && s->n_prefill < 16)
            s->prefill[s->n_prefill++] = st->seqs[i].n_tokens;
        else if (!st->seqs[i].prefill)
            s->decodes++;
    }
}

static void on_step(void *ud, double seconds, int n_prefill_tokens, int n_decode)
{
    (void)seconds;
    (void)n_prefill_tokens;
    (void)n_decode;
    ((seen *)ud)->step_hook_calls++;
}

/* A generate call goes through the runtime's engine: its trace shows the
 * prompt prefilled in chunks of max_batch_prefill_tokens, then one decode
 * step per further token; the stats count them; the blocks are all free
 * again afterwards, and the next call is the engine's next request. */
TEST(generate_runs_in_the_runtimes_engine)
{
    vrt_err err = {0};
    vrt_runtime *rt;
    ASSERT_OK(open_rt(&rt, "max_batch_prefill_tokens = 4, max_input_tokens = 64", &err), &err);
    vrt_engine *e;
    ASSERT_OK(vrt__runtime_engine(rt, &e, &err), &err);
    seen s = {0};
    vrt_engine_set_trace_hook(e, on_trace, &s);
    vrt_engine_set_step_hook(e, on_step, &s);
    int32_t ids[16];
    int np = prompt_of(10, ids);
    vrt_gen_params g;
    vrt_gen_params_init(&g);
    g.max_new_tokens = 6;
    g.ignore_eos = 1;
    vrt_gen_result r;
    ASSERT_OK(vrt_runtime_generate_ids(rt, ids, np, &g, NULL, NULL, &r, &err), &err);
    ASSERT_EQ_INT(r.n_tokens, 6);
    ASSERT_EQ_STR(r.finish_reason, "length");
    ASSERT_EQ_INT(r.n_prompt_tokens, 10);
    ASSERT(r.prefill_s >= 0 && r.decode_s >= 0);
    /* 10 prompt tokens in chunks of 4, 4, 2; the first token comes from the
     * last chunk, the other 5 from one decode step each. */
    ASSERT_EQ_INT(s.n_prefill, 3);
    ASSERT_EQ_INT(s.prefill[0], 4);
    ASSERT_EQ_INT(s.prefill[1], 4);
    ASSERT_EQ_INT(s.prefill[2], 2);
    ASSERT_EQ_INT(s.decodes, 5);
    ASSERT_EQ_INT(s.steps, 8);
    ASSERT_EQ_INT(s.step_hook_calls, 8);
    ASSERT_EQ_INT(s.other_seqs, 0);
    ASSERT_EQ_INT(s.last_id, 1);
    vrt_engine_stats st;
    vrt_engine_stats_get(e, &st);
    ASSERT_EQ_INT(st.steps, 8);
    ASSERT_EQ_INT(st.prompt_tokens, 10);
    ASSERT_EQ_INT(st.generation_tokens, 6);
    ASSERT_EQ_INT(st.running + st.waiting, 0);
    ASSERT_EQ_INT(vrt_engine_in_flight(e), 0);
    ASSERT_EQ_INT(rt->pool.n_free, rt->pool.num_blocks);
    vrt_gen_result_free(&r);
    /* The next call: the same engine, its next request. */
    g.max_new_tokens = 2;
    ASSERT_OK(vrt_runtime_generate_ids(rt, ids, 3, &g, NULL, NULL, &r, &err), &err);
    ASSERT_EQ_INT(s.last_id, 2);
    ASSERT_EQ_INT(s.steps, 10);
    vrt_engine_stats_get(e, &st);
    ASSERT_EQ_INT(st.generation_tokens, 8);
    ASSERT_EQ_INT(rt->pool.n_free, rt->pool.num_blocks);
    vrt_gen_result_free(&r);
    /* A request the engine refuses is refused by generate, with its words. */
    g.max_new_tokens = 0;
    ASSERT_EQ_INT(vrt_runtime_generate_ids(rt, ids, 3, &g, NULL, NULL, &r, &err), VRT_EINVAL);
    ASSERT(strstr(err.msg, "max_new_tokens must be >= 1") != NULL);
    ASSERT(r.tokens == NULL && r.text == NULL);
    vrt_runtime_close(rt);
    cleanup();
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* Greedy generate against a reference outside the engine: each token is
 * the argmax of the last row of the logits of prompt + the tokens before
 * it, run as one sequence (vrt_runtime_logits, between and after generate
 * calls on the same runtime). */
TEST(generate_greedy_is_the_argmax_of_the_full_logits)
{
    vrt_err err = {0};
    vrt_runtime *rt;
    ASSERT_OK(open_rt(&rt, "max_batch_prefill_tokens = 5, max_input_tokens = 64", &err), &err);
    int32_t ids[64];
    int np = prompt_of(12, ids);
    vrt_gen_params g;
    vrt_gen_params_init(&g);
    g.max_new_tokens = 12;
    g.ignore_eos = 1;
    vrt_gen_result r;
    ASSERT_OK(vrt_runtime_generate_ids(rt, ids, np, &g, NULL, NULL, &r, &err), &err);
    ASSERT_EQ_INT(r.n_tokens, 12);
    const int V = vrt_runtime_vocab_size(rt);
    float *logits = malloc((size_t)(np + r.n_tokens) * V * sizeof *logits);
    ASSERT(logits != NULL);
    for (int i = 0; i < r.n_tokens; i++) {
        int n = np + i;
        if (vrt_runtime_logits(rt, ids, n, logits, &err) != 0) {
            free(logits);
            TFAIL("logits: %s", err.msg);
        }
        int want = argmax(logits + (size_t)(n - 1) * V, V);
        if (r.tokens[i] != want) {
            free(logits);
            TFAIL("token %d: generate chose %d, the argmax of the full logits is %d", i,
                  r.tokens[i], want);
        }
        ids[n] = r.tokens[i];
    }
    free(logits);
    ASSERT_EQ_INT(rt->pool.n_free, rt->pool.num_blocks);
    /* And generate again after the logits calls: the same tokens. */
    vrt_gen_result r2;
    ASSERT_OK(vrt_runtime_generate_ids(rt, ids, np, &g, NULL, NULL, &r2, &err), &err);
    ASSERT_EQ_INT(r2.n_tokens, r.n_tokens);
    ASSERT(memcmp(r2.tokens, r.tokens, (size_t)r.n_tokens * sizeof *r.tokens) == 0);
    vrt_gen_result_free(&r);
    vrt_gen_result_free(&r2);
    vrt_runtime_close(rt);
    cleanup();
}

typedef struct streamer {
    vrt_runtime *rt;
    int calls, stop_after;
    char got[4096];
    size_t len;
    int nested_rc; /* what a generate from inside the callback returned */
    char nested_msg[256];
} streamer;

static int on_text(void *ud, const char *text, size_t len)
{
    streamer *s = ud;
    s->calls++;
    if (s->len + len < sizeof s->got) {
        memcpy(s->got + s->len, text, len);
        s->len += len;
    }
    if (s->calls == 1 && s->rt) {
        int32_t ids[2] = {1, 5};
        vrt_gen_params g;
        vrt_gen_params_init(&g);
        vrt_gen_result r;
        vrt_err err = {0};
        s->nested_rc = vrt_runtime_generate_ids(s->rt, ids, 2, &g, NULL, NULL, &r, &err);
        snprintf(s->nested_msg, sizeof s->nested_msg, "%.200s", err.msg);
    }
    return s->stop_after > 0 && s->calls >= s->stop_after;
}

/* The stream callback sees the result's text as it becomes final; when it
 * asks to stop, the request ends at once as "length" with the tokens so
 * far (a prefix of the full run), the callback is not called again, and
 * the engine holds nothing. A generate from inside the callback is
 * refused. */
TEST(generate_stream_and_caller_stop)
{
    vrt_err err = {0};
    vrt_runtime *rt;
    ASSERT_OK(open_rt(&rt, "", &err), &err);
    int32_t ids[16];
    int np = prompt_of(6, ids);
    vrt_gen_params g;
    vrt_gen_params_init(&g);
    g.max_new_tokens = 40;
    g.ignore_eos = 1;
    streamer full = {.rt = rt};
    vrt_gen_result r;
    ASSERT_OK(vrt_runtime_generate_ids(rt, ids, np, &g, on_text, &full, &r, &err), &err);
    ASSERT_EQ_INT(r.n_tokens, 40);
    ASSERT(full.calls >= 3); /* the case under test: several pieces */
    ASSERT_EQ_INT(full.len, r.text_len);
    ASSERT(memcmp(full.got, r.text, r.text_len) == 0);
    ASSERT_EQ_INT(full.nested_rc, VRT_EINVAL);
    ASSERT(strstr(full.nested_msg, "one generation at a time") != NULL);

    streamer part = {.stop_after = 2};
    vrt_gen_result p;
    ASSERT_OK(vrt_runtime_generate_ids(rt, ids, np, &g, on_text, &part, &p, &err), &err);
    ASSERT_EQ_INT(part.calls, 2);
    ASSERT_EQ_STR(p.finish_reason, "length");
    ASSERT(p.n_tokens >= 2 && p.n_tokens < r.n_tokens);
    ASSERT(memcmp(p.tokens, r.tokens, (size_t)p.n_tokens * sizeof *p.tokens) == 0);
    ASSERT(p.text_len >= part.len && memcmp(p.text, part.got, part.len) == 0);
    vrt_engine *e;
    ASSERT_OK(vrt__runtime_engine(rt, &e, &err), &err);
    ASSERT_EQ_INT(vrt_engine_in_flight(e), 0);
    ASSERT_EQ_INT(rt->pool.n_free, rt->pool.num_blocks);
    vrt_gen_result_free(&r);
    vrt_gen_result_free(&p);
    vrt_runtime_close(rt);
    cleanup();
}
