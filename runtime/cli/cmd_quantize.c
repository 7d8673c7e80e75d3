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

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

typedef struct quant_args {
    int method, bits, group, act_order, sym, samples, seqlen, threads, force, quiet;
    double damp;
    const char *calib;
} quant_args;

static const char *const methods[] = {"rtn", "gptq", "awq", NULL}; /* VRT_QM_* order */

#define Q_INT(nm, field, l, h, a, text)                                                            \
    {                                                                                              \
        .name = nm, .type = VRT_OPT_INT, .off = offsetof(quant_args, field), .lo = l, .hi = h,     \
        .arg = a, .help = text                                                                     \
    }
#define Q_FLAG(nm, field, text)                                                                    \
    {                                                                                              \
        .name = nm, .type = VRT_OPT_FLAG, .off = offsetof(quant_args, field), .help = text         \
    }

/* --method's values are described in the help text above the options. */
const vrt_opt vrt_cli_quantize_opts[] = {
    {.name = "method",
     .type = VRT_OPT_CHOICE,
     .off = offsetof(quant_args, method),
     .choices = methods,
     .flags = VRT_OPT_HIDDEN},
    Q_INT("bits", bits, 1, 16, "4", "bits per weight (4 only)"),
    Q_INT("group-size", group, -1, 1 << 20, "N",
          "inputs per scale/zero group (default 128; -1 = whole row);\n"
          "AWQ needs in_features % N == 0, else the linear stays\n"
          "float16 (listed in modules_to_not_convert)"),
    Q_FLAG("act-order", act_order,
           "gptq: columns by descending Hessian diagonal (desc_act, g_idx)"),
    Q_FLAG("sym", sym, "rtn/gptq: symmetric (zero point 8); default asymmetric"),
    {.name = "calibration",
     .type = VRT_OPT_STR,
     .off = offsetof(quant_args, calib),
     .arg = "FILE",
     .help = "gptq/awq: calibration text, tokenized with the model's\n"
             "tokenizer (required for gptq and awq)"},
    Q_INT("samples", samples, 1, 1 << 20, "N", NULL),
    Q_INT("seqlen", seqlen, 2, 1 << 20, "N",
          "calibration sequences and their length in tokens\n"
          "(default 128 x 512, fewer when the text is shorter)"),
    {.name = "damp",
     .type = VRT_OPT_DOUBLE,
     .off = offsetof(quant_args, damp),
     .lo = 0,
     .hi = 1,
     .flags = VRT_OPT_LO_OPEN | VRT_OPT_HI_OPEN,
     .arg = "X",
     .help = "gptq: dampening, fraction of mean diag(H) (default 0.01)",
     .msg = "--damp: expected a fraction in (0, 1), e.g. 0.01"},
    Q_INT("threads", threads, 0, 4096, "N",
          "cpu threads for the calibration forward pass (0 = all)"),
    Q_FLAG("force", force, "write into a non-empty OUT_DIR"),
    Q_FLAG("quiet", quiet, "no progress on stderr"),
    {NULL},
};

int vrt_cmd_quantize(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("quantize");
    vrt_quantize_opts o;
    vrt_quantize_opts_init(&o);
    quant_args a = {.method = -1,
                    .bits = o.bits,
                    .group = o.group_size,
                    .samples = o.samples,
                    .seqlen = o.seqlen,
                    .threads = o.threads,
                    .damp = o.damp_percent};
    char *pos[2];
    int npos = 0;
    int rc = vrt_cli_parse(self, &a, NULL, argc, argv, pos, &npos);
    if (rc)
        return rc;
    if (a.method < 0)
        return vrt_cli_usage(self, "needs --method gptq, awq or rtn");
    o.method = a.method;
    o.bits = a.bits;
    o.group_size = a.group;
    o.samples = a.samples;
    o.seqlen = a.seqlen;
    o.threads = a.threads;
    o.damp_percent = a.damp;
    if (o.bits != 4)
        return vrt_cli_usage(self, "--bits: only 4 is implemented (the GPTQ and AWQ formats "
                                   "v100rt loads are 4-bit)");
    if (o.group_size == 0)
        return vrt_cli_usage(self, "--group-size: use -1 (one group per row) or a positive size");
    o.act_order = a.act_order;
    o.sym = a.sym;
    o.force = a.force;
    int quiet = a.quiet;
    if (o.act_order && o.method != VRT_QM_GPTQ)
        return vrt_cli_usage(self, "--act-order needs --method gptq (it orders columns by the "
                                   "GPTQ Hessian; the AWQ format has no g_idx)");
    if (o.sym && o.method == VRT_QM_AWQ)
        return vrt_cli_usage(self, "--sym: AWQ GEMM checkpoints are asymmetric (zero_point: "
                                   "true); drop --sym");
    const char *calib = a.calib;
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
