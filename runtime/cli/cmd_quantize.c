/* cmd_quantize.c — `v100rt quantize --method gptq|awq|rtn [options] IN_DIR
 * OUT_DIR`: writes a 4-bit GPTQ or AWQ checkpoint of a model directory
 * (model/quantize.h). This file parses the options, tokenizes the
 * calibration text with the model's tokenizer and draws the progress bar.
 */
#include "cli/cli.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "model/quantize.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    O_METHOD,
    O_BITS,
    O_GROUP,
    O_ACT,
    O_SYM,
    O_CALIB,
    O_SAMPLES,
    O_SEQLEN,
    O_DAMP,
    O_THREADS,
    O_FORCE,
    O_QUIET,
    O_N
};

typedef struct bar {
    int tty;
    double t0;
} bar;

static void on_progress(void *ctx, int layer, int n_layers, const char *step)
{
    bar *b = ctx;
    int width = 24, fill = n_layers ? layer * width / n_layers : width;
    if (b->tty)
        fprintf(stderr, "\r\033[Kquantize [%.*s%*s] layer %d/%d %s", fill,
                "========================", width - fill, "", layer < n_layers ? layer + 1 : layer,
                n_layers, step);
    else
        fprintf(stderr, "quantize: layer %d/%d %s\n", layer < n_layers ? layer + 1 : layer,
                n_layers, step);
    fflush(stderr);
}

int vrt_cmd_quantize(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("quantize");
    vrt_opt opts[O_N] = {
        [O_METHOD] = {"method", 1, NULL},   [O_BITS] = {"bits", 1, NULL},
        [O_GROUP] = {"group-size", 1, NULL}, [O_ACT] = {"act-order", 0, NULL},
        [O_SYM] = {"sym", 0, NULL},         [O_CALIB] = {"calibration", 1, NULL},
        [O_SAMPLES] = {"samples", 1, NULL}, [O_SEQLEN] = {"seqlen", 1, NULL},
        [O_DAMP] = {"damp", 1, NULL},       [O_THREADS] = {"threads", 1, NULL},
        [O_FORCE] = {"force", 0, NULL},     [O_QUIET] = {"quiet", 0, NULL},
    };
    char *pos[2];
    int npos = 0;
    int rc = vrt_cli_parse(self, opts, O_N, argc, argv, pos, 2, &npos);
    if (rc)
        return rc;
    if (npos != 2)
        return vrt_cli_usage(self, npos == 0 ? "needs an input model directory and an output "
                                               "directory"
                                             : "needs an output directory");
    vrt_quantize_opts o;
    vrt_quantize_opts_init(&o);
    if (!opts[O_METHOD].value)
        return vrt_cli_usage(self, "needs --method gptq, awq or rtn");
    static const char *const methods[] = {"rtn", "gptq", "awq"};
    o.method = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(opts[O_METHOD].value, methods[i]) == 0)
            o.method = i;
    if (o.method < 0) {
        const char *s = vrt_suggest(opts[O_METHOD].value, methods, 3);
        char msg[256];
        snprintf(msg, sizeof msg, "--method: unknown value \"%s\"%s%s%s (one of: rtn, gptq, awq)",
                 opts[O_METHOD].value, s ? "; did you mean \"" : "", s ? s : "", s ? "\"?" : "");
        return vrt_cli_usage(self, msg);
    }
    if ((rc = vrt_cli_int(self, &opts[O_BITS], 1, 16, &o.bits)) ||
        (rc = vrt_cli_int(self, &opts[O_GROUP], -1, 1 << 20, &o.group_size)) ||
        (rc = vrt_cli_int(self, &opts[O_SAMPLES], 1, 1 << 20, &o.samples)) ||
        (rc = vrt_cli_int(self, &opts[O_SEQLEN], 2, 1 << 20, &o.seqlen)) ||
        (rc = vrt_cli_int(self, &opts[O_THREADS], 0, 4096, &o.threads)))
        return rc;
    if (o.bits != 4)
        return vrt_cli_usage(self, "--bits: only 4 is implemented (the GPTQ and AWQ formats "
                                   "v100rt loads are 4-bit)");
    if (o.group_size == 0)
        return vrt_cli_usage(self, "--group-size: use -1 (one group per row) or a positive size");
    if (opts[O_DAMP].value) {
        char *end;
        o.damp_percent = strtod(opts[O_DAMP].value, &end);
        if (end == opts[O_DAMP].value || *end || !(o.damp_percent > 0 && o.damp_percent < 1))
            return vrt_cli_usage(self, "--damp: expected a fraction in (0, 1), e.g. 0.01");
    }
    o.act_order = opts[O_ACT].value != NULL;
    o.sym = opts[O_SYM].value != NULL;
    o.force = opts[O_FORCE].value != NULL;
    int quiet = opts[O_QUIET].value != NULL;
    if (o.act_order && o.method != VRT_QM_GPTQ)
        return vrt_cli_usage(self, "--act-order needs --method gptq (it orders columns by the "
                                   "GPTQ Hessian; the AWQ format has no g_idx)");
    if (o.sym && o.method == VRT_QM_AWQ)
        return vrt_cli_usage(self, "--sym: AWQ GEMM checkpoints are asymmetric (zero_point: "
                                   "true); drop --sym");
    const char *calib = opts[O_CALIB].value;
    if (o.method == VRT_QM_RTN && calib)
        return vrt_cli_usage(self, "--calibration: round-to-nearest uses no calibration data "
                                   "(use --method gptq or awq)");
    if (o.method != VRT_QM_RTN && !calib)
        return vrt_cli_usage(self, "--method gptq and awq need calibration text: --calibration "
                                   "FILE.txt (text like what the model will see; for kjv-tiny "
                                   "tests/fixtures/kjv/calibration.txt)");

    vrt_err err = {0};
    vrt_tokenizer *tok = NULL;
    vrt_tokens ids = {0};
    char *text = NULL;
    size_t text_len = 0;
    int exit_code = VRT_EXIT_FAIL;
    if (quiet)
        vrt_log_set_level(VRT_LOG_WARN);
    if (calib) {
        if (vrt_read_file(calib, (size_t)1 << 30, "a calibration text", 0, &text, &text_len,
                          &err) != 0) {
            fprintf(stderr, "v100rt quantize: %s\n", err.msg);
            goto out;
        }
        if (vrt_tokenizer_load(&tok, pos[0], &err) != 0 ||
            vrt_tokenizer_encode(tok, text, text_len, 1, &ids, &err) != 0) {
            fprintf(stderr, "v100rt quantize: tokenizing %s with %s's tokenizer: %s\n", calib,
                    pos[0], err.msg);
            goto out;
        }
        o.calib_ids = ids.ids;
        o.n_calib = (int64_t)ids.n;
        o.calib_name = calib;
        if (ids.n < 2) {
            fprintf(stderr, "v100rt quantize: %s has %zu tokens; calibration needs text\n", calib,
                    (size_t)ids.n);
            goto out;
        }
    }
    bar b = {.tty = isatty(2)};
    if (!quiet) {
        o.progress = on_progress;
        o.progress_ctx = &b;
        fprintf(stderr, "quantize %s -> %s: %s, %d-bit, group size %d%s%s", pos[0], pos[1],
                vrt_qmethod_name(o.method), o.bits, o.group_size, o.sym ? ", sym" : "",
                o.act_order ? ", act-order" : "");
        if (calib)
            fprintf(stderr, ", calibration %s (%zu tokens)", calib, (size_t)ids.n);
        fputc('\n', stderr);
    }
    vrt_quantize_report rep;
    rc = vrt_quantize_model(pos[0], pos[1], &o, &rep, &err);
    if (!quiet && b.tty)
        fputc('\n', stderr);
    if (rc) {
        fprintf(stderr, "v100rt quantize: %s\n", err.msg);
        goto out;
    }
    printf("wrote %s: %s 4-bit, group size %d, %s format; %d linears quantized", pos[1],
           vrt_qmethod_name(o.method), o.group_size,
           o.method == VRT_QM_AWQ ? "AutoAWQ GEMM" : "GPTQ v1", rep.n_quantized);
    if (rep.n_kept)
        printf(", %d kept in float16 (modules_to_not_convert)", rep.n_kept);
    if (rep.n_samples)
        printf("; calibration %d x %d tokens", rep.n_samples, rep.seqlen);
    if (rep.awq_groups)
        printf("; mean alpha %.2f over %d groups%s", rep.awq_mean_alpha, rep.awq_groups,
               rep.awq_o_skipped ? " (o_proj not scaled: GQA)" : "");
    printf("; %.1f s\n", rep.seconds);
    exit_code = VRT_EXIT_OK;
out:
    vrt_tokens_free(&ids);
    vrt_tokenizer_free(tok);
    free(text);
    return exit_code;
}
