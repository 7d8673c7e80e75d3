/* cmd_plan.c — `v100rt plan CONFIG.lua`: the GPU memory plan of a config
 * (engine/plan.h) for a given card, without a GPU: weights, activations and
 * KV cache per GPU, and whether one sequence of max_total_tokens fits. It
 * proposes only what v100rt runs (no tensor parallelism yet). */
#include "cli/cli.h"
#include "core/err.h"
#include "engine/plan.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct plan_opts {
    double gib;
    const char *model_config;
} plan_opts;

const vrt_opt vrt_cli_plan_opts[] = {
    {.name = "device-memory",
     .type = VRT_OPT_DOUBLE,
     .off = offsetof(plan_opts, gib),
     .lo = 0,
     .hi = 4096,
     .flags = VRT_OPT_LO_OPEN,
     .arg = "GIB",
     .help = "GPU memory in GiB (default 16)",
     .msg = "--device-memory is the GPU memory in GiB, e.g. 16 or 32"},
    {.name = "model-config",
     .type = VRT_OPT_STR,
     .off = offsetof(plan_opts, model_config),
     .arg = "DIR",
     .help = "read config.json from DIR instead of model.path"},
    {NULL},
};

int vrt_cmd_plan(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("plan");
    plan_opts o = {.gib = 16.0};
    /* plan's own options; every other word goes to the config loader (the
     * config or model directory, then flags as `serve` takes them). */
    enum { MAX_WORDS = 256 };
    char *words[MAX_WORDS];
    int taken[MAX_WORDS];
    int npos = 0, nwords = 0;
    int rc =
        vrt_cli_config_words(self, &o, NULL, argc, argv, words, taken, MAX_WORDS, &npos, &nwords);
    if (rc)
        return rc;
    const double gb = o.gib;
    vrt_err err = {0};
    vrt_config cfg;
    /* As `serve` loads it (flags and TGI's environment variables
     * included); the config refuses parallel.tensor > 1 like `check` does. */
    vrt_config_source src = {
        .path = NULL, .argv = (const char *const *)words, .argc = nwords, .use_env = 1};
    if (vrt_config_load_src(&cfg, &src, &err) != 0) {
        fprintf(stderr, "v100rt plan: %s\n", err.msg);
        vrt_config_free(&cfg);
        return VRT_EXIT_FAIL;
    }
    vrt_model_config mc;
    const char *dir = o.model_config ? o.model_config : cfg.model.path;
    if (vrt_model_config_load(&mc, dir, &err) != 0) {
        fprintf(stderr,
                "v100rt plan: %s\n(--model-config DIR reads config.json from another "
                "directory)\n",
                err.msg);
        vrt_config_free(&cfg);
        return VRT_EXIT_FAIL;
    }
    int64_t total = cfg.batching.max_total_tokens;
    if (mc.max_position_embeddings > 0 && total > mc.max_position_embeddings)
        total = mc.max_position_embeddings;
    vrt_plan_input in = {
        .model = &mc,
        .device_bytes = (int64_t)(gb * 1024.0 * 1024.0 * 1024.0),
        .memory_fraction = cfg.device.memory_fraction,
        .weight_bytes_per_param = vrt_plan_weight_bytes(cfg.model.dtype, cfg.model.quantize),
        .tensor = cfg.parallel.tensor,
        .block_size = cfg.cache.block_size,
        .max_total_tokens = total,
        .max_batch_prefill_tokens = cfg.batching.max_batch_prefill_tokens,
        .max_concurrent_requests = cfg.batching.max_concurrent_requests,
        .graph_pool_bytes = 0,
    };
    vrt_plan p;
    rc = vrt_plan_compute(&in, &p, &err);
    char *s = vrt_plan_format(&in, &p);
    if (s)
        fputs(s, stdout);
    free(s);
    if (rc)
        fprintf(stderr, "v100rt plan: %s\n", err.msg);
    vrt_config_free(&cfg);
    return rc ? VRT_EXIT_FAIL : VRT_EXIT_OK;
}
