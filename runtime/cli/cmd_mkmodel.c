/* cmd_mkmodel.c — `v100rt mkmodel [options] OUT_DIR`: write a Hugging
 * Face-style model directory with seeded random weights (model/mkmodel.h).
 *
 * A preset gives every size; explicit options override it. Bad options are
 * usage errors (exit 2) that say what was expected; a directory that is not
 * empty is refused (exit 1) unless --force.
 */
#include "cli/cli.h"
#include "core/err.h"
#include "core/util.h"
#include "model/arch.h"
#include "model/hf_config.h"
#include "model/mkmodel.h"
#include "model/safetensors.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Shows "[ 12/47] name" on one rewritten terminal line. */
static void progress(void *ctx, int i, int n, const char *name, uint64_t nbytes)
{
    (void)ctx;
    fprintf(stderr, "\r\033[K[%*d/%d] %s (%.1f MiB)", n >= 100 ? 3 : 2, i + 1, n, name,
            (double)nbytes / (1 << 20));
    fflush(stderr);
}

static void human(char *buf, size_t cap, double v, const char *const *units)
{
    int u = 0;
    while (v >= 1000 && units[u + 1])
        v /= 1000, u++;
    snprintf(buf, cap, u ? "%.2f%s" : "%.0f%s", v, units[u]);
}

typedef struct mk_args {
    int arch, preset, dims[7], max_pos, sliding_window, tie, dtype, force;
    double rope_theta;
    uint64_t seed;
} mk_args;

enum { D_DIM, D_LAYERS, D_HEADS, D_KV_HEADS, D_FFN, D_VOCAB, D_HEAD_DIM };

/* --arch: the model_types of the architecture table (arch.h), filled in
 * at startup (the table is static data) so that a new row needs no edit
 * here. */
static const char *archs[17];

__attribute__((constructor)) static void fill_archs(void)
{
    int n = 0;
    for (int id = 1; id <= vrt_arch_count() && n < 16; id++)
        archs[n++] = vrt_arch_get(id)->model_type;
    archs[n] = NULL;
}
static const char *const dtypes[] = {"f16", "f32", NULL};

#define MK_DIM(nm, k, text)                                                                        \
    {                                                                                              \
        .name = nm, .type = VRT_OPT_INT, .off = offsetof(mk_args, dims) + (k) * sizeof(int),       \
        .lo = 1, .hi = INT_MAX, .arg = "N", .help = text                                           \
    }

/* --preset's values are described in the help text above the options. */
const vrt_opt vrt_cli_mkmodel_opts[] = {
    {.name = "arch",
     .type = VRT_OPT_CHOICE,
     .off = offsetof(mk_args, arch),
     .choices = archs,
     .arg = "TYPE",
     .help = "the architecture by its model_type: llama (LlamaForCausalLM, the default),\n"
             "mistral, ... (any other word lists them all)"},
    {.name = "preset",
     .type = VRT_OPT_CHOICE,
     .off = offsetof(mk_args, preset),
     .choices = vrt_mkmodel_presets,
     .flags = VRT_OPT_HIDDEN},
    MK_DIM("dim", D_DIM, NULL),
    MK_DIM("layers", D_LAYERS, NULL),
    MK_DIM("heads", D_HEADS, NULL),
    MK_DIM("kv-heads", D_KV_HEADS, NULL),
    MK_DIM("ffn", D_FFN, NULL),
    MK_DIM("vocab", D_VOCAB,
           "hidden size, layers, attention and key/value heads,\n"
           "intermediate size, vocabulary rows (>= 3000)"),
    MK_DIM("head-dim", D_HEAD_DIM, "head dimension (default dim / heads)"),
    {.name = "max-pos",
     .type = VRT_OPT_INT,
     .off = offsetof(mk_args, max_pos),
     .lo = 1,
     .hi = 1 << 30,
     .arg = "N",
     .help = "max_position_embeddings (default 2048)"},
    {.name = "rope-theta",
     .type = VRT_OPT_DOUBLE,
     .off = offsetof(mk_args, rope_theta),
     .lo = 0,
     .hi = INFINITY,
     .flags = VRT_OPT_LO_OPEN,
     .arg = "X",
     .help = "rope_theta (default 10000)",
     .want = "a positive number such as 10000 or 1e6"},
    {.name = "sliding-window",
     .type = VRT_OPT_INT,
     .off = offsetof(mk_args, sliding_window),
     .lo = 0,
     .hi = 1 << 30,
     .arg = "N",
     .help = "Mistral only: attention window (default 4096; 0 = none)"},
    {.name = "tie",
     .type = VRT_OPT_FLAG,
     .off = offsetof(mk_args, tie),
     .help = "tie lm_head to the embeddings (no lm_head.weight)"},
    {.name = "dtype",
     .type = VRT_OPT_CHOICE,
     .off = offsetof(mk_args, dtype),
     .choices = dtypes,
     .arg = "f16|f32",
     .help = "weight dtype (default f16)"},
    {.name = "seed",
     .type = VRT_OPT_U64,
     .off = offsetof(mk_args, seed),
     .arg = "N",
     .help = "random seed (default 0); same seed, same bytes"},
    {.name = "force",
     .type = VRT_OPT_FLAG,
     .off = offsetof(mk_args, force),
     .help = "write into a non-empty directory"},
    {NULL},
};

int vrt_cmd_mkmodel(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("mkmodel");
    mk_args a = {.arch = 0, .preset = 0, .dtype = -1};
    const char *raw[VRT_CLI_MAX_OPTS];
    char *pos[1];
    int npos = 0;
    int rc = vrt_cli_parse(self, &a, raw, argc, argv, pos, &npos);
    if (rc)
        return rc;
    const char *dir = pos[0];
    int arch = vrt_arch_by_model_type(archs[a.arch]);
    vrt_mkmodel_opts mo;
    vrt_err err = {0};
    if (vrt_mkmodel_preset(&mo, vrt_mkmodel_presets[a.preset], arch, &err) != 0)
        return vrt_cli_usage(self, err.msg);
    int *fields[] = {[D_DIM] = &mo.hidden_size,           [D_LAYERS] = &mo.num_hidden_layers,
                     [D_HEADS] = &mo.num_attention_heads, [D_KV_HEADS] = &mo.num_key_value_heads,
                     [D_FFN] = &mo.intermediate_size,     [D_VOCAB] = &mo.vocab_size,
                     [D_HEAD_DIM] = &mo.head_dim};
    static const char *const dim_names[] = {"dim", "layers", "heads",   "kv-heads",
                                            "ffn", "vocab",  "head-dim"};
    for (int k = 0; k < 7; k++)
        if (vrt_cli_raw(self, raw, dim_names[k]))
            *fields[k] = a.dims[k];
    /* A new head count without --head-dim derives head_dim again. */
    if (vrt_cli_raw(self, raw, "heads") && !vrt_cli_raw(self, raw, "head-dim"))
        mo.head_dim = 0;
    if (vrt_cli_raw(self, raw, "max-pos"))
        mo.max_position_embeddings = a.max_pos;
    if (vrt_cli_raw(self, raw, "sliding-window"))
        mo.sliding_window = a.sliding_window;
    if (vrt_cli_raw(self, raw, "seed"))
        mo.seed = a.seed;
    if (vrt_cli_raw(self, raw, "rope-theta"))
        mo.rope_theta = a.rope_theta;
    if (a.dtype >= 0)
        mo.dtype = a.dtype == 1 ? VRT_ST_F32 : VRT_ST_F16;
    if (a.tie)
        mo.tie_word_embeddings = true;
    mo.force = a.force;

    if (vrt_mkmodel_validate(&mo, &err) != 0)
        return vrt_cli_usage(self, err.msg);

    int tty = isatty(STDERR_FILENO);
    if (tty)
        mo.progress = progress;
    rc = vrt_mkmodel_write(&mo, dir, &err);
    if (tty)
        fputs("\r\033[K", stderr);
    if (rc != 0) {
        fprintf(stderr, "v100rt mkmodel: %s\n", err.msg);
        return VRT_EXIT_FAIL;
    }

    uint64_t params, bytes;
    vrt_mkmodel_size(&mo, &params, &bytes);
    static const char *const pu[] = {"", "K", "M", "B", NULL};
    static const char *const bu[] = {" B", " kB", " MB", " GB", NULL};
    char ps[32], bs[32];
    human(ps, sizeof ps, (double)params, pu);
    human(bs, sizeof bs, (double)bytes, bu);
    printf("wrote %s: %s, %s parameters (%llu), %s of %s weights, seed %llu\n", dir,
           vrt_arch_get(arch)->class_names[0], ps, (unsigned long long)params, bs,
           mo.dtype == VRT_ST_F32 ? "F32" : "F16", (unsigned long long)mo.seed);
    printf("  hidden %d, %d layers, %d heads (%d kv, head_dim %d), ffn %d, vocab %d%s\n",
           mo.hidden_size, mo.num_hidden_layers, mo.num_attention_heads, mo.num_key_value_heads,
           mo.head_dim ? mo.head_dim : mo.hidden_size / mo.num_attention_heads,
           mo.intermediate_size, mo.vocab_size, mo.tie_word_embeddings ? ", tied embeddings" : "");
    printf("  files: config.json generation_config.json model.safetensors tokenizer.json "
           "tokenizer_config.json\n");
    return VRT_EXIT_OK;
}
