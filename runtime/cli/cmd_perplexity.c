/* cmd_perplexity.c — `v100rt perplexity CONFIG.lua FILE.txt [--context N]
 * [--stride N]`: the perplexity of a model over a text file, so that the
 * loss of a quantization is a number.
 *
 * The method is Hugging Face's strided perplexity ("Perplexity of
 * fixed-length models" in the transformers docs; llama.cpp's perplexity
 * tool uses the same idea with fixed halves): the file is tokenized as the
 * model's tokenizer does it (BOS included), then windows of --context tokens
 * start every --stride tokens; each window scores only the tokens that the
 * previous window did not score (its last end - previous end tokens), each
 * conditioned on everything before it in the window. The first token of
 * the file (the BOS) is never scored. With a window that covers the whole
 * text this is exactly exp(-mean log p(ids[t] | ids[..t])) for t = 1..n-1.
 *
 * The model, backend (device.kind, or --device KIND), dtype and limits come
 * from the config (a model directory also works: the defaults); the window may not exceed
 * batching.max_total_tokens (which the runtime already caps at the model's
 * max_position_embeddings).
 */
#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/sampler.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct ppl_opts {
    int context, stride, quiet;
    const char *device;
} ppl_opts;

const vrt_opt vrt_cli_perplexity_opts[] = {
    {.name = "context",
     .type = VRT_OPT_INT,
     .off = offsetof(ppl_opts, context),
     .lo = 2,
     .hi = 1 << 24,
     .arg = "N",
     .help = "tokens per window (default: batching.max_total_tokens, which\n"
             "is capped by the model's max_position_embeddings)"},
    {.name = "stride",
     .type = VRT_OPT_INT,
     .off = offsetof(ppl_opts, stride),
     .lo = 1,
     .hi = 1 << 24,
     .arg = "N",
     .help = "tokens between window starts (default context/2); a stride\n"
             "equal to the context gives independent chunks"},
    {.name = "device",
     .type = VRT_OPT_STR,
     .off = offsetof(ppl_opts, device),
     .arg = "KIND",
     .help = "device.kind: cpu, cuda, cuda-emu or auto (overrides the config)"},
    {.name = "quiet",
     .type = VRT_OPT_FLAG,
     .off = offsetof(ppl_opts, quiet),
     .help = "print only the result line"},
    {NULL},
};

int vrt_cmd_perplexity(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("perplexity");
    ppl_opts o = {0};
    char *pos[2];
    int npos = 0;
    int rc = vrt_cli_parse(self, &o, NULL, argc, argv, pos, &npos);
    if (rc)
        return rc;
    const int ctx_opt = o.context, stride_opt = o.stride, quiet = o.quiet;
    vrt_err err = {0};
    char *text = NULL;
    size_t text_len = 0;
    if (vrt_read_file(pos[1], (size_t)1 << 30, "a text file", 0, &text, &text_len, &err) != 0) {
        fprintf(stderr, "v100rt perplexity: %s\n", err.msg);
        return VRT_EXIT_FAIL;
    }
    vrt_runtime *rt = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    int n = 0, exit_code = VRT_EXIT_FAIL;
    if (quiet)
        vrt_log_set_level(VRT_LOG_WARN);
    int rc_open = vrt_cli_open_runtime(pos[0], o.device, quiet, &rt, &err);
    if (rc_open != 0) {
        fprintf(stderr, "v100rt perplexity: %s\n", err.msg);
        goto out;
    }
    if (!quiet)
        fprintf(stderr, "model: %s\n", vrt_runtime_describe(rt));
    if (vrt_runtime_tokenize(rt, text, text_len, 1, &ids, &n, &err) != 0) {
        fprintf(stderr, "v100rt perplexity: tokenizing %s: %s\n", pos[1], err.msg);
        goto out;
    }
    if (n < 2) {
        fprintf(stderr,
                "v100rt perplexity: %s has %d token%s; perplexity needs at least 2 (one to "
                "condition on, one to score)\n",
                pos[1], n, n == 1 ? "" : "s");
        goto out;
    }
    const int max_total = vrt_runtime_max_total_tokens(rt), V = vrt_runtime_vocab_size(rt);
    int ctx = ctx_opt ? ctx_opt : max_total;
    if (ctx > max_total) {
        fprintf(stderr,
                "v100rt perplexity: --context %d is more than the %d tokens one sequence may "
                "have (batching.max_total_tokens, capped by the model's "
                "max_position_embeddings): use --context %d or less, or raise "
                "batching.max_total_tokens in the config\n",
                ctx, max_total, max_total);
        exit_code = VRT_EXIT_USAGE;
        goto out;
    }
    int stride = stride_opt ? stride_opt : (ctx / 2 > 0 ? ctx / 2 : 1);
    if (stride > ctx) {
        fprintf(stderr,
                "v100rt perplexity: --stride %d is more than --context %d: tokens between "
                "windows would never be scored\n",
                stride, ctx);
        exit_code = VRT_EXIT_USAGE;
        goto out;
    }
    logits = malloc((size_t)(ctx < n ? ctx : n) * (size_t)V * sizeof *logits);
    if (!logits) {
        fprintf(stderr,
                "v100rt perplexity: out of memory for %d x %d logits (try a smaller "
                "--context)\n",
                ctx, V);
        goto out;
    }
    int n_windows = 0;
    for (int begin = 0;; begin += stride) {
        n_windows++;
        if (begin + ctx >= n)
            break;
    }
    if (!quiet)
        fprintf(stderr, "%s: %d tokens (with BOS), context %d, stride %d, %d window%s\n", pos[1], n,
                ctx, stride, n_windows, n_windows == 1 ? "" : "s");
    double nll = 0, t0 = now_s();
    long long scored = 0;
    int prev_end = 0, w = 0, tty = isatty(2);
    for (int begin = 0;; begin += stride) {
        int end = begin + ctx < n ? begin + ctx : n, len = end - begin;
        /* Score the tokens this window adds: positions max(prev_end, begin+1)
         * .. end-1, each predicted from the logits of the position before. */
        int first = prev_end > begin + 1 ? prev_end : begin + 1;
        if (vrt_runtime_logits(rt, ids + begin, len, logits, &err) != 0) {
            fprintf(stderr, "\nv100rt perplexity: window %d (tokens %d..%d): %s\n", w + 1, begin,
                    end - 1, err.msg);
            goto out;
        }
        for (int t = first; t < end; t++) {
            double lp = vrt_token_logprob(logits + (size_t)(t - 1 - begin) * V, V, ids[t]);
            nll -= lp;
            scored++;
        }
        prev_end = end;
        w++;
        if (!quiet) {
            double el = now_s() - t0;
            fprintf(stderr, "%s[%d/%d] %lld tokens scored, perplexity so far %.4f, %.1f s%s",
                    tty ? "\r" : "", w, n_windows, scored, exp(nll / (double)scored), el,
                    tty ? "" : "\n");
            if (tty && w == n_windows)
                fputc('\n', stderr);
        }
        if (end == n)
            break;
    }
    double ppl = exp(nll / (double)scored);
    printf("perplexity: %.4f (%lld tokens, %d window%s of %d, stride %d, mean nll %.6f)\n", ppl,
           scored, n_windows, n_windows == 1 ? "" : "s", ctx, stride, nll / (double)scored);
    exit_code = VRT_EXIT_OK;
out:
    free(logits);
    vrt_free(ids);
    vrt_runtime_close(rt);
    free(text);
    return exit_code;
}
