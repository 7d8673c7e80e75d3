/* cmd_bench.c — `v100rt bench`: decode speed of the forward pass itself.
 *
 * For each batch size B: B sequences of random tokens are prefilled with
 * --prompt tokens each, then --steps decode steps run over all B at once
 * (one forward call per step, logits of every sequence copied back, so
 * each step ends synchronized). It prints, per B: prefill tokens/s, decode
 * tokens/s, milliseconds per step, and the achieved bandwidth of the
 * weights (the bytes a step must read: every weight except the embedding
 * rows not looked up) against the device's own device-to-device copy
 * bandwidth, measured first (bytes read + written). No HTTP, no sampling:
 * what the kernels and the step loop give (`make bench` measures the
 * server).
 */
#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"
#include "engine/kv_blocks.h"
#include "engine/runtime_int.h"
#include "model/model.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Device copy bandwidth in GB/s (read + write), or 0 when it cannot be
 * measured. */
static double copy_bandwidth(vrt_backend *be, vrt_err *err)
{
    const size_t n = (size_t)256 << 20;
    if (!be->copy_on_device)
        return 0;
    void *a = be->alloc(be, n, err), *b = a ? be->alloc(be, n, err) : NULL;
    double gbs = 0;
    if (a && b && be->memset(be, a, 1, n, err) == 0 && be->copy_on_device(be, b, a, n, err) == 0 &&
        be->sync(be, err) == 0) {
        const int reps = 10;
        double t0 = now_s();
        int rc = 0;
        for (int i = 0; i < reps && !rc; i++)
            rc = be->copy_on_device(be, i % 2 ? a : b, i % 2 ? b : a, n, err);
        if (!rc)
            rc = be->sync(be, err);
        double t = now_s() - t0;
        if (!rc && t > 0)
            gbs = 2.0 * n * reps / t / 1e9;
    }
    if (a)
        be->free(be, a);
    if (b)
        be->free(be, b);
    return gbs;
}

/* What one decode step reads: every weight, except that only B rows of
 * an untied embedding table are looked up. */
static int64_t step_weight_bytes(const vrt_model *m)
{
    int64_t bytes = m->weight_bytes;
    if (m->lm_head.data != m->embed.data)
        bytes -= m->embed.rows * m->embed.cols * (m->embed.dtype == VRT_DT_F16 ? 2 : 4);
    return bytes;
}

/* One batch size: prefill B × P tokens, S decode steps. */
static int run_batch(vrt_runtime *rt, int B, int P, int S, double copy_gbs, vrt_err *err)
{
    vrt_model *m = rt->m;
    const int bs = rt->pool.block_size, V = m->cfg.vocab_size;
    const int per_seq = (P + S + 2 + bs - 1) / bs;
    int64_t need = (int64_t)B * per_seq;
    if (need < rt->max_blocks)
        need = rt->max_blocks;
    if (need > INT32_MAX)
        return vrt_err_set(err, VRT_ERANGE, "batch %d: too many KV blocks", B);
    int rc = 0;
    if (need != rt->pool.num_blocks)
        rc = vrt__runtime_resize_kv(rt, (int)need, err);
    if (rc)
        return vrt_err_prefix(err, "batch %d of %d + %d tokens: ", B, P, S);
    /* The prefill goes in chunks of whole sequences, at most 4096 tokens. */
    const int chunk = P >= 4096 ? 1 : 4096 / P < B ? 4096 / P : B;
    const int max_t = chunk * P > B ? chunk * P : B;
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)max_t);
    int32_t *q_start = malloc(sizeof(int32_t) * (size_t)(B + 1));
    int32_t *ctx = malloc(sizeof(int32_t) * (size_t)B);
    int32_t *table = malloc(sizeof(int32_t) * (size_t)B * per_seq);
    float *logits = malloc(sizeof(float) * (size_t)B * V);
    if (!tokens || !q_start || !ctx || !table || !logits) {
        rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < (int64_t)B * per_seq; i++)
        table[i] = (int32_t)i;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    /* Prefill. */
    double t0 = now_s();
    for (int s0 = 0; s0 < B && !rc; s0 += chunk) {
        int n = B - s0 < chunk ? B - s0 : chunk;
        for (int i = 0; i < n * P; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            tokens[i] = (int32_t)((rng >> 33) % (uint64_t)V);
        }
        for (int i = 0; i <= n; i++)
            q_start[i] = i * P;
        for (int i = 0; i < n; i++)
            ctx[i] = P;
        vrt_batch b = {.n_seqs = n,
                       .tokens = tokens,
                       .q_start = q_start,
                       .ctx_len = ctx,
                       .block_table = table + (int64_t)s0 * per_seq,
                       .max_blocks_per_seq = per_seq};
        rc = vrt_model_forward(m, &rt->kv, &b, logits, err);
    }
    double t_prefill = now_s() - t0;
    /* Decode: two steps to warm up (allocations, cuBLAS heuristics), then
     * S timed steps. */
    double t_decode = 0;
    for (int step = 0; step < S + 2 && !rc; step++) {
        if (step == 2)
            t0 = now_s();
        for (int i = 0; i < B; i++) {
            tokens[i] = (int32_t)((step * 7919 + i * 104729) % V);
            q_start[i] = i;
            ctx[i] = P + step + 1;
        }
        q_start[B] = B;
        vrt_batch b = {.n_seqs = B,
                       .tokens = tokens,
                       .q_start = q_start,
                       .ctx_len = ctx,
                       .block_table = table,
                       .max_blocks_per_seq = per_seq};
        rc = vrt_model_forward(m, &rt->kv, &b, logits, err);
    }
    t_decode = now_s() - t0;
    if (!rc) {
        const int64_t bytes = step_weight_bytes(m);
        double step_s = t_decode / S;
        double gbs = bytes / step_s / 1e9;
        char pct[32] = "";
        if (copy_gbs > 0)
            snprintf(pct, sizeof pct, "%.0f %%", 100.0 * gbs / copy_gbs);
        printf("| %5d | %6d | %9.0f | %9.0f | %8.2f | %8.1f | %6s |\n", B, P, B * P / t_prefill,
               B * S / t_decode, step_s * 1e3, gbs, pct);
        fflush(stdout);
    }
out:
    free(tokens);
    free(q_start);
    free(ctx);
    free(table);
    free(logits);
    return rc;
}

typedef struct bench_opts {
    const char *batch, *device;
    int prompt, steps, eager;
} bench_opts;

const vrt_opt vrt_cli_bench_opts[] = {
    {.name = "batch",
     .type = VRT_OPT_STR,
     .off = offsetof(bench_opts, batch),
     .arg = "LIST",
     .help = "comma-separated batch sizes (default 1,8,32)"},
    {.name = "prompt",
     .type = VRT_OPT_INT,
     .off = offsetof(bench_opts, prompt),
     .lo = 1,
     .hi = 1 << 20,
     .arg = "N",
     .help = "tokens per sequence before decoding (default 128)"},
    {.name = "steps",
     .type = VRT_OPT_INT,
     .off = offsetof(bench_opts, steps),
     .lo = 1,
     .hi = 1 << 20,
     .arg = "N",
     .help = "timed decode steps (default 32, after 2 warm-up steps)"},
    {.name = "device",
     .type = VRT_OPT_STR,
     .off = offsetof(bench_opts, device),
     .arg = "KIND",
     .help = "device.kind: cpu, cuda, cuda-emu or auto (overrides the config)"},
    {.name = "eager",
     .type = VRT_OPT_FLAG,
     .off = offsetof(bench_opts, eager),
     .help = "no CUDA graphs (as kernels.cuda_graphs = false)"},
    {NULL},
};

int vrt_cmd_bench(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("bench");
    bench_opts o = {.batch = "1,8,32", .prompt = 128, .steps = 32};
    char *pos[1];
    int npos = 0;
    int rc = vrt_cli_parse(self, &o, NULL, argc, argv, pos, &npos);
    if (rc)
        return rc;
    const int P = o.prompt, S = o.steps;
    int batches[32], nb = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", o.batch);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (nb == 32 || parse_int(t, 1, 4096, &batches[nb]))
            return vrt_cli_usage(self, "--batch is a comma-separated list of sizes 1..4096");
        nb++;
    }
    vrt_err err = {0};
    vrt_runtime *rt = NULL;
    rc = vrt_cli_open_runtime(pos[0], o.device, 0, &rt, &err);
    if (rc) {
        fprintf(stderr, "v100rt bench: %s\n", err.msg);
        return VRT_EXIT_FAIL;
    }
    if (P + S + 2 > rt->max_total) {
        fprintf(stderr,
                "v100rt bench: --prompt %d + --steps %d exceed the model's %d total tokens\n", P, S,
                rt->max_total);
        vrt_runtime_close(rt);
        return VRT_EXIT_USAGE;
    }
    vrt_backend *be = rt->be;
    if (o.eager)
        rt->m->graphs = 0;
    printf("model: %s\n", vrt_runtime_describe(rt));
    printf("decode steps: %s\n", rt->m->graphs && be->graph_begin
                                     ? "recorded as CUDA graphs (per batch bucket)"
                                     : "eager launches");
    if (be->device_name)
        printf("device: %s\n", be->device_name(be));
    double copy_gbs = copy_bandwidth(be, &err);
    if (copy_gbs > 0)
        printf("device copy bandwidth: %.1f GB/s (read + write, 256 MiB buffers)\n", copy_gbs);
    printf("weights read per decode step: %.1f MiB\n\n",
           (double)step_weight_bytes(rt->m) / 1048576.0);
    printf("| batch | prompt | prefill tok/s | decode tok/s | ms/step | weight GB/s | of copy |\n");
    printf("|------:|-------:|----------:|----------:|---------:|---------:|-------:|\n");
    for (int i = 0; i < nb && !rc; i++)
        rc = run_batch(rt, batches[i], P, S, copy_gbs, &err);
    if (rc)
        fprintf(stderr, "v100rt bench: %s\n", err.msg);
    vrt_runtime_close(rt);
    return rc ? VRT_EXIT_FAIL : VRT_EXIT_OK;
}
