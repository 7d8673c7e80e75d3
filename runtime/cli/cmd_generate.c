/* cmd_generate.c — `v100rt generate CONFIG.lua|MODEL_DIR "prompt"`: loads the
 * model, streams the continuation of the prompt to stdout and prints the
 * prefill and decode speeds to stderr.
 */
#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <math.h>
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

/* Parses an option value; prints a usage error on junk. */
static int num(const vrt_cmd *self, const char *name, const char *s, double lo, double hi,
               double *out)
{
    if (!s)
        return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < lo || v > hi) {
        char msg[256];
        snprintf(msg, sizeof msg, "--%s \"%s\" must be a number in [%g, %g]", name, s, lo, hi);
        return vrt_cli_usage(self, msg);
    }
    *out = v;
    return 0;
}

static char *read_stdin(void)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, stdin);
        n += got;
        if (got == 0)
            break;
        if (n + 1 == cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
    }
    if (buf)
        buf[n] = 0;
    return buf;
}

enum {
    O_MAX,
    O_TEMP,
    O_TOPK,
    O_TOPP,
    O_TYP,
    O_MINP,
    O_REP,
    O_FREQ,
    O_PRES,
    O_SEED,
    O_STOP,
    O_IGNORE_EOS,
    O_NO_BOS,
    O_QUIET,
    O_DEVICE,
    O_N
};

int vrt_cmd_generate(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("generate");
    vrt_opt opts[O_N] = {
        [O_MAX] = {"max-new-tokens", 1, NULL},
        [O_TEMP] = {"temperature", 1, NULL},
        [O_TOPK] = {"top-k", 1, NULL},
        [O_TOPP] = {"top-p", 1, NULL},
        [O_TYP] = {"typical-p", 1, NULL},
        [O_MINP] = {"min-p", 1, NULL},
        [O_REP] = {"repetition-penalty", 1, NULL},
        [O_FREQ] = {"frequency-penalty", 1, NULL},
        [O_PRES] = {"presence-penalty", 1, NULL},
        [O_SEED] = {"seed", 1, NULL},
        [O_STOP] = {"stop", 1, NULL},
        [O_IGNORE_EOS] = {"ignore-eos", 0, NULL},
        [O_NO_BOS] = {"no-special-tokens", 0, NULL},
        [O_QUIET] = {"quiet", 0, NULL},
        [O_DEVICE] = {"device", 1, NULL},
    };
    char *pos[2];
    int npos = 0;
    int rc = vrt_cli_parse(self, opts, O_N, argc, argv, pos, 2, &npos);
    if (rc)
        return rc;
    if (npos != 2)
        return vrt_cli_usage(self, npos == 0 ? "needs a config file (or model directory) and a "
                                               "prompt"
                                             : "needs a prompt (use - to read it from stdin)");
    vrt_gen_params p;
    vrt_gen_params_init(&p);
    double v = p.max_new_tokens;
    if ((rc = num(self, "max-new-tokens", opts[O_MAX].value, 1, 1e7, &v)))
        return rc;
    p.max_new_tokens = (int)v;
    double t = -1;
    if ((rc = num(self, "temperature", opts[O_TEMP].value, 0, 100, &t)))
        return rc;
    if (t > 0) {
        p.do_sample = 1;
        p.temperature = (float)t;
    }
    struct {
        int o;
        float *f;
        double lo, hi;
    } fl[] = {{O_TOPP, &p.top_p, 0, 1},
              {O_TYP, &p.typical_p, 0, 1},
              {O_MINP, &p.min_p, 0, 1},
              {O_REP, &p.repetition_penalty, 0, 100},
              {O_FREQ, &p.frequency_penalty, -2, 2},
              {O_PRES, &p.presence_penalty, -2, 2}};
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
        v = *fl[i].f;
        if ((rc = num(self, opts[fl[i].o].name, opts[fl[i].o].value, fl[i].lo, fl[i].hi, &v)))
            return rc;
        *fl[i].f = (float)v;
    }
    v = 0;
    if ((rc = num(self, "top-k", opts[O_TOPK].value, 0, 1e9, &v)))
        return rc;
    p.top_k = (int)v;
    if ((p.top_k || p.top_p < 1 || p.typical_p < 1 || p.min_p > 0) && !p.do_sample) {
        p.do_sample = 1; /* a sampling filter asks for sampling, as in TGI */
        p.temperature = 1.0f;
    }
    if (opts[O_SEED].value) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(opts[O_SEED].value, &end, 10);
        if (end == opts[O_SEED].value || *end || errno)
            return vrt_cli_usage(self, "--seed must be a non-negative integer");
        p.seed = s;
        p.has_seed = 1;
    }
    const char *stops[1] = {opts[O_STOP].value};
    if (stops[0]) {
        p.stop = stops;
        p.n_stop = 1;
    }
    p.ignore_eos = opts[O_IGNORE_EOS].value != NULL;
    p.add_special_tokens = opts[O_NO_BOS].value == NULL;
    int quiet = opts[O_QUIET].value != NULL;

    char *prompt = strcmp(pos[1], "-") == 0 ? read_stdin() : strdup(pos[1]);
    if (!prompt) {
        fprintf(stderr, "v100rt generate: cannot read the prompt\n");
        return VRT_EXIT_FAIL;
    }
    vrt_err err = {0};
    vrt_runtime *rt;
    if (quiet)
        vrt_log_set_level(VRT_LOG_WARN);
    int rc_open = vrt_cli_open_runtime(pos[0], opts[O_DEVICE].value, quiet, &rt, &err);
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
