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
#include "model/hf_config.h"
#include "model/mkmodel.h"
#include "model/safetensors.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    O_ARCH,
    O_PRESET,
    O_DIM,
    O_LAYERS,
    O_HEADS,
    O_KV_HEADS,
    O_FFN,
    O_VOCAB,
    O_HEAD_DIM,
    O_MAX_POS,
    O_ROPE_THETA,
    O_SLIDING_WINDOW,
    O_TIE,
    O_DTYPE,
    O_SEED,
    O_FORCE,
    O_COUNT
};

/* A usage error naming the option and what it takes. */
static int bad_value(const vrt_cmd *self, const char *opt, const char *value, const char *want)
{
    char msg[512];
    snprintf(msg, sizeof msg, "--%s: expected %s, got \"%s\"", opt, want, value);
    return vrt_cli_usage(self, msg);
}

/* Parses an integer in [lo, hi] into *out; 0 or a usage error. */
static int parse_int(const vrt_cmd *self, const vrt_opt *o, long long lo, long long hi,
                     long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(o->value, &end, 10);
    if (errno || end == o->value || *end || v < lo || v > hi) {
        char want[96];
        snprintf(want, sizeof want, "an integer in %lld..%lld", lo, hi);
        return bad_value(self, o->name, o->value, want);
    }
    *out = v;
    return 0;
}

/* A usage error for a word that is not one of choices (with a suggestion). */
static int bad_choice(const vrt_cmd *self, const char *opt, const char *value,
                      const char *const *choices, size_t n)
{
    const char *s = vrt_suggest(value, choices, n);
    char list[128] = "", msg[512];
    for (size_t i = 0; i < n; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, choices[i], sizeof list - strlen(list) - 1);
    }
    if (s)
        snprintf(msg, sizeof msg, "--%s: unknown value \"%s\"; did you mean \"%s\"? (one of: %s)",
                 opt, value, s, list);
    else
        snprintf(msg, sizeof msg, "--%s: unknown value \"%s\" (one of: %s)", opt, value, list);
    return vrt_cli_usage(self, msg);
}

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

int vrt_cmd_mkmodel(int argc, char **argv)
{
    const vrt_cmd *self = vrt_cmd_find("mkmodel");
    vrt_opt opts[O_COUNT] = {
        [O_ARCH] = {"arch", 1, NULL},
        [O_PRESET] = {"preset", 1, NULL},
        [O_DIM] = {"dim", 1, NULL},
        [O_LAYERS] = {"layers", 1, NULL},
        [O_HEADS] = {"heads", 1, NULL},
        [O_KV_HEADS] = {"kv-heads", 1, NULL},
        [O_FFN] = {"ffn", 1, NULL},
        [O_VOCAB] = {"vocab", 1, NULL},
        [O_HEAD_DIM] = {"head-dim", 1, NULL},
        [O_MAX_POS] = {"max-pos", 1, NULL},
        [O_ROPE_THETA] = {"rope-theta", 1, NULL},
        [O_SLIDING_WINDOW] = {"sliding-window", 1, NULL},
        [O_TIE] = {"tie", 0, NULL},
        [O_DTYPE] = {"dtype", 1, NULL},
        [O_SEED] = {"seed", 1, NULL},
        [O_FORCE] = {"force", 0, NULL},
    };
    char *pos[1];
    int npos = 0;
    int rc = vrt_cli_parse(self, opts, O_COUNT, argc, argv, pos, 1, &npos);
    if (rc)
        return rc;
    if (npos != 1)
        return vrt_cli_usage(self, "needs one output directory");
    const char *dir = pos[0];

    int arch = VRT_ARCH_LLAMA;
    if (opts[O_ARCH].value && !(arch = vrt_arch_by_model_type(opts[O_ARCH].value))) {
        const char *archs[16]; /* the model_types of arch.h's table */
        size_t n = 0;
        for (int id = 1; id <= vrt_arch_count() && n < 16; id++)
            archs[n++] = vrt_arch_get(id)->model_type;
        return bad_choice(self, "arch", opts[O_ARCH].value, archs, n);
    }
    const char *preset = opts[O_PRESET].value ? opts[O_PRESET].value : "tiny";
    vrt_mkmodel_opts mo;
    vrt_err err = {0};
    if (vrt_mkmodel_preset(&mo, preset, arch, &err) != 0) {
        size_t n = 0;
        while (vrt_mkmodel_presets[n])
            n++;
        return bad_choice(self, "preset", preset, vrt_mkmodel_presets, n);
    }

    struct {
        int opt;
        int *field;
        long long lo, hi;
    } ints[] = {
        {O_DIM, &mo.hidden_size, 1, INT_MAX},
        {O_LAYERS, &mo.num_hidden_layers, 1, INT_MAX},
        {O_HEADS, &mo.num_attention_heads, 1, INT_MAX},
        {O_KV_HEADS, &mo.num_key_value_heads, 1, INT_MAX},
        {O_FFN, &mo.intermediate_size, 1, INT_MAX},
        {O_VOCAB, &mo.vocab_size, 1, INT_MAX},
        {O_HEAD_DIM, &mo.head_dim, 1, INT_MAX},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        long long v;
        if (!opts[ints[i].opt].value)
            continue;
        if ((rc = parse_int(self, &opts[ints[i].opt], ints[i].lo, ints[i].hi, &v)) != 0)
            return rc;
        *ints[i].field = (int)v;
    }
    /* A new head count without --head-dim derives head_dim again. */
    if (opts[O_HEADS].value && !opts[O_HEAD_DIM].value)
        mo.head_dim = 0;
    long long v;
    if (opts[O_MAX_POS].value) {
        if ((rc = parse_int(self, &opts[O_MAX_POS], 1, (long long)1 << 30, &v)) != 0)
            return rc;
        mo.max_position_embeddings = v;
    }
    if (opts[O_SLIDING_WINDOW].value) {
        if ((rc = parse_int(self, &opts[O_SLIDING_WINDOW], 0, (long long)1 << 30, &v)) != 0)
            return rc;
        mo.sliding_window = v;
    }
    if (opts[O_SEED].value) {
        char *end;
        errno = 0;
        const char *s = opts[O_SEED].value;
        unsigned long long seed = strtoull(s, &end, 10);
        if (errno || end == s || *end || *s == '-')
            return bad_value(self, "seed", s, "a non-negative integer");
        mo.seed = seed;
    }
    if (opts[O_ROPE_THETA].value) {
        char *end;
        const char *s = opts[O_ROPE_THETA].value;
        double t = strtod(s, &end);
        if (end == s || *end || !isfinite(t) || t <= 0)
            return bad_value(self, "rope-theta", s, "a positive number such as 10000 or 1e6");
        mo.rope_theta = t;
    }
    if (opts[O_DTYPE].value) {
        static const char *const dtypes[] = {"f16", "f32"};
        if (strcmp(opts[O_DTYPE].value, "f16") == 0)
            mo.dtype = VRT_ST_F16;
        else if (strcmp(opts[O_DTYPE].value, "f32") == 0)
            mo.dtype = VRT_ST_F32;
        else
            return bad_choice(self, "dtype", opts[O_DTYPE].value, dtypes, 2);
    }
    if (opts[O_TIE].value)
        mo.tie_word_embeddings = true;
    mo.force = opts[O_FORCE].value != NULL;

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
