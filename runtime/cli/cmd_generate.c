/* cmd_generate.c — `v100rt generate CONFIG.lua|MODEL_DIR "prompt"`: loads the
 * model, streams the continuation of the prompt to stdout and prints the
 * prefill and decode speeds to stderr.
 */
#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <stddef.h>
#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int stream_out(void *ud, const char *text, size_t len)
{
    (void)ud;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static char *read_stdin(void)
{
    size_t cap = 0, n = 0;
    char *buf = NULL;
    for (;;) {
        if (vrt_grow(&buf, &cap, n + 4096, 1)) {
            free(buf);
            return NULL;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, stdin);
        n += got;
        if (got == 0)
            break;
    }
    buf[n] = 0;
    return buf;
}

typedef struct gen_opts {
    double max_new, temperature, top_k, top_p, typical_p, min_p, rep, freq, pres;
    uint64_t seed;
    const char *stop, *device;
    int ignore_eos, no_bos, quiet;
} gen_opts;

#define GEN_NUM(nm, field, l, h, a, text)                                                          \
    {                                                                                              \
        .name = nm, .type = VRT_OPT_DOUBLE, .off = offsetof(gen_opts, field), .lo = l, .hi = h,    \
        .arg = a, .help = text                                                                     \
    }

/* Counts and filters are read as numbers like the others (an integer part
 * is taken), as the API parameters are. */
const vrt_opt vrt_cli_generate_opts[] = {
    GEN_NUM("max-new-tokens", max_new, 1, 1e7, "N", "tokens to generate at most (default 64)"),
    GEN_NUM("temperature", temperature, 0, 100, "T", "sample with temperature T (0 = greedy)"),
    GEN_NUM("top-k", top_k, 0, 1e9, "K", NULL),
    GEN_NUM("top-p", top_p, 0, 1, "P", NULL),
    GEN_NUM("typical-p", typical_p, 0, 1, "P", NULL),
    GEN_NUM("min-p", min_p, 0, 1, "P", "sampling filters (imply sampling)"),
    GEN_NUM("repetition-penalty", rep, 0, 100, "R", "HF/TGI repetition penalty (1 = off)"),
    GEN_NUM("frequency-penalty", freq, -2, 2, "F", NULL),
    GEN_NUM("presence-penalty", pres, -2, 2, "F", "OpenAI penalties in [-2, 2]"),
    {.name = "seed",
     .type = VRT_OPT_U64,
     .off = offsetof(gen_opts, seed),
     .arg = "N",
     .help = "seed for sampling (same seed, same text)",
     .msg = "--seed must be a non-negative integer"},
    {.name = "stop",
     .type = VRT_OPT_STR,
     .off = offsetof(gen_opts, stop),
     .arg = "STRING",
     .help = "stop when STRING is generated (not printed)"},
    {.name = "ignore-eos",
     .type = VRT_OPT_FLAG,
     .off = offsetof(gen_opts, ignore_eos),
     .help = "do not stop at the end-of-sequence token"},
    {.name = "no-special-tokens",
     .type = VRT_OPT_FLAG,
     .off = offsetof(gen_opts, no_bos),
     .help = "do not add BOS to the prompt"},
    {.name = "device",
     .type = VRT_OPT_STR,
     .off = offsetof(gen_opts, device),
     .arg = "KIND",
     .help = "device.kind: cpu, cuda, cuda-emu or auto (overrides\nthe config)"},
    {.name = "quiet",
     .type = VRT_OPT_FLAG,
     .off = offsetof(gen_opts, quiet),
     .help = "print only the generated text"},
    {NULL},
};

int vrt_cmd_generate(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("generate");
    vrt_gen_params p;
    vrt_gen_params_init(&p);
    gen_opts o = {.max_new = p.max_new_tokens,
                  .temperature = -1,
                  .top_p = p.top_p,
                  .typical_p = p.typical_p,
                  .min_p = p.min_p,
                  .rep = p.repetition_penalty,
                  .freq = p.frequency_penalty,
                  .pres = p.presence_penalty};
    const char *raw[VRT_CLI_MAX_OPTS];
    char *pos[2];
    int npos = 0;
    int rc = vrt_cli_parse(self, &o, raw, argc, argv, pos, &npos);
    if (rc)
        return rc;
    p.max_new_tokens = (int)o.max_new;
    if (o.temperature > 0) {
        p.do_sample = 1;
        p.temperature = (float)o.temperature;
    }
    p.top_p = (float)o.top_p;
    p.typical_p = (float)o.typical_p;
    p.min_p = (float)o.min_p;
    p.repetition_penalty = (float)o.rep;
    p.frequency_penalty = (float)o.freq;
    p.presence_penalty = (float)o.pres;
    p.top_k = (int)o.top_k;
    if ((p.top_k || p.top_p < 1 || p.typical_p < 1 || p.min_p > 0) && !p.do_sample) {
        p.do_sample = 1; /* a sampling filter asks for sampling, as in TGI */
        p.temperature = 1.0f;
    }
    if (vrt_cli_raw(self, raw, "seed")) {
        p.seed = o.seed;
        p.has_seed = 1;
    }
    const char *stops[1] = {o.stop};
    if (stops[0]) {
        p.stop = stops;
        p.n_stop = 1;
    }
    p.ignore_eos = o.ignore_eos;
    p.add_special_tokens = !o.no_bos;
    int quiet = o.quiet;

    char *prompt = strcmp(pos[1], "-") == 0 ? read_stdin() : strdup(pos[1]);
    if (!prompt) {
        fprintf(stderr, "v100rt generate: cannot read the prompt\n");
        return VRT_EXIT_FAIL;
    }
    vrt_err err = {0};
    vrt_runtime *rt;
    if (quiet)
        vrt_log_set_level(VRT_LOG_WARN);
    int rc_open = vrt_cli_open_runtime(pos[0], o.device, quiet, &rt, &err);
    if (rc_open != 0) {
        fprintf(stderr, "v100rt generate: %s\n", err.msg);
        free(prompt);
        return VRT_EXIT_FAIL;
    }
    if (!quiet)
        fprintf(stderr, "model: %s\n", vrt_runtime_describe(rt));
    vrt_gen_result res;
    if (!quiet) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    rc = vrt_runtime_generate(rt, prompt, strlen(prompt), &p, stream_out, NULL, &res, &err);
    if (rc) {
        fprintf(stderr, "\nv100rt generate: %s\n", err.msg);
        vrt_runtime_close(rt);
        free(prompt);
        return VRT_EXIT_FAIL;
    }
    fputc('\n', stdout);
    fflush(stdout);
    if (!quiet)
        fprintf(stderr,
                "prompt: %d tokens, %.1f tokens/s | generated: %d tokens, %.1f tokens/s | "
                "finish: %s | seed: %llu\n",
                res.n_prompt_tokens, res.prefill_tok_s, res.n_tokens, res.decode_tok_s,
                res.finish_reason, (unsigned long long)res.seed);
    vrt_gen_result_free(&res);
    vrt_runtime_close(rt);
    free(prompt);
    return VRT_EXIT_OK;
}
