/* mkmodel.c — a Hugging Face-style model directory with seeded random
 * weights (see mkmodel.h).
 *
 * The tensors are registered with the safetensors writer as generated
 * tensors: the writer asks for each one chunk by chunk while it writes the
 * file, and fill_tensor computes the values from (seed, name, element
 * index) alone. Nothing larger than one chunk is ever held in memory.
 */
#include "model/mkmodel.h"

#include "backend/half.h"
#include "core/err.h"
#include "core/util.h"
#include "model/arch.h"
#include "model/hf_config.h"
#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The tokenizer files, embedded by the build (build/<variant>/gen/
 * mkmodel_assets.c, generated from tests/fixtures/tokenizers/sentencepiece). */
extern const unsigned char vrt__asset_tokenizer_json[];
extern const size_t vrt__asset_tokenizer_json_len;
extern const unsigned char vrt__asset_tokenizer_config_json[];
extern const size_t vrt__asset_tokenizer_config_json_len;

/* Standard deviation of every weight (transformers' initializer_range). */
#define INIT_STD 0.02f
/* Limits that keep every size product far from overflow. */
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 4096

const char *const vrt_mkmodel_presets[] = {"tiny", "small", "tinyllama", NULL};

int vrt_mkmodel_preset(vrt_mkmodel_opts *o, const char *name, int arch, vrt_err *err)
{
    memset(o, 0, sizeof *o);
    o->arch = arch;
    o->rope_theta = 10000.0;
    o->rms_norm_eps = 1e-5;
    o->dtype = VRT_ST_F16;
    o->max_position_embeddings = 2048;
    if (strcmp(name, "tiny") == 0) {
        /* A few MB: the demo model and the tests. */
        o->hidden_size = 128;
        o->intermediate_size = 344;
        o->num_hidden_layers = 4;
        o->num_attention_heads = 4;
        o->num_key_value_heads = 2;
        o->vocab_size = 3000;
    } else if (strcmp(name, "small") == 0) {
        /* GPT-2-small-sized Llama, tied embeddings: about 110M parameters. */
        o->hidden_size = 768;
        o->intermediate_size = 2048;
        o->num_hidden_layers = 12;
        o->num_attention_heads = 12;
        o->num_key_value_heads = 12;
        o->vocab_size = 32000;
        o->tie_word_embeddings = true;
    } else if (strcmp(name, "tinyllama") == 0) {
        /* The shapes of TinyLlama-1.1B (docs/formats.md §2.1). */
        o->hidden_size = 2048;
        o->intermediate_size = 5632;
        o->num_hidden_layers = 22;
        o->num_attention_heads = 32;
        o->num_key_value_heads = 4;
        o->vocab_size = 32000;
    } else {
        size_t n = 0;
        while (vrt_mkmodel_presets[n])
            n++;
        const char *s = vrt_suggest(name, vrt_mkmodel_presets, n);
        return vrt_err_set(err, VRT_EINVAL,
                           "unknown preset \"%s\"%s%s%s (presets: tiny, small, tinyllama)", name,
                           s ? "; did you mean \"" : "", s ? s : "", s ? "\"?" : "");
    }
    const vrt_arch_info *a = vrt_arch_get(arch);
    if (!a) {
        char sup[256];
        return vrt_err_set(err, VRT_EINVAL, "unsupported architecture %d (supported: %s)", arch,
                           vrt_arch_supported(sup, sizeof sup));
    }
    if (a->desc.window_kind != VRT_WINDOW_NONE)
        o->sliding_window = a->defaults.sliding_window; /* Mistral-7B-v0.1: 4096 */
    return 0;
}

int vrt_mkmodel_tokenizer_vocab(void)
{
    cJSON *root = cJSON_ParseWithLength((const char *)vrt__asset_tokenizer_json,
                                        vrt__asset_tokenizer_json_len);
    if (!root)
        return -1;
    int max_id = -1;
    const cJSON *it;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    cJSON_ArrayForEach(it, vocab)
    {
        if (cJSON_IsNumber(it) && it->valueint > max_id)
            max_id = it->valueint;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    cJSON_ArrayForEach(it, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (cJSON_IsNumber(id) && id->valueint > max_id)
            max_id = id->valueint;
    }
    cJSON_Delete(root);
    return max_id + 1;
}

/* "llama, mistral": the model_type of every architecture. */
static const char *model_types(char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int id = 1; id <= vrt_arch_count() && len < cap; id++) {
        int k = snprintf(buf + len, cap - len, "%s%s", id > 1 ? ", " : "",
                         vrt_arch_get(id)->model_type);
        len += k > 0 ? (size_t)k : 0;
    }
    return buf;
}

/* The first architecture that reads sliding_window (for a suggestion). */
static const char *windowed_model_type(void)
{
    for (int id = 1; id <= vrt_arch_count(); id++)
        if (vrt_arch_get(id)->desc.window_kind != VRT_WINDOW_NONE)
            return vrt_arch_get(id)->model_type;
    return "?";
}

static int head_dim_of(const vrt_mkmodel_opts *o)
{
    return o->head_dim ? o->head_dim : o->hidden_size / o->num_attention_heads;
}

static int check_size(long long v, long long max, const char *key, const char *opt, vrt_err *err)
{
    if (v <= 0 || v > max)
        return vrt_err_set(err, VRT_EINVAL, "%s (--%s) must be in 1..%lld, got %lld", key, opt, max,
                           v);
    return 0;
}

int vrt_mkmodel_validate(const vrt_mkmodel_opts *o, vrt_err *err)
{
    int rc;
    const vrt_arch_info *a = vrt_arch_get(o->arch);
    if (!a) {
        char types[256];
        return vrt_err_set(err, VRT_EINVAL, "architecture (--arch) must be one of %s",
                           model_types(types, sizeof types));
    }
    if ((rc = check_size(o->hidden_size, MAX_DIM, "hidden_size", "dim", err)) ||
        (rc = check_size(o->intermediate_size, MAX_DIM, "intermediate_size", "ffn", err)) ||
        (rc = check_size(o->num_hidden_layers, MAX_LAYERS, "num_hidden_layers", "layers", err)) ||
        (rc = check_size(o->num_attention_heads, MAX_DIM, "num_attention_heads", "heads", err)) ||
        (rc =
             check_size(o->num_key_value_heads, MAX_DIM, "num_key_value_heads", "kv-heads", err)) ||
        (rc = check_size(o->vocab_size, MAX_DIM, "vocab_size", "vocab", err)) ||
        (rc = check_size(o->max_position_embeddings, (long long)1 << 30, "max_position_embeddings",
                         "max-pos", err)))
        return rc;
    if (o->num_attention_heads % o->num_key_value_heads != 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "num_key_value_heads %d (--kv-heads) must divide "
                           "num_attention_heads %d (--heads)",
                           o->num_key_value_heads, o->num_attention_heads);
    if (o->head_dim < 0 || o->head_dim > MAX_DIM)
        return vrt_err_set(err, VRT_EINVAL, "head_dim (--head-dim) must be in 1..%d, got %d",
                           MAX_DIM, o->head_dim);
    if (o->head_dim == 0 && o->hidden_size % o->num_attention_heads != 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "hidden_size %d (--dim) is not a multiple of "
                           "num_attention_heads %d (--heads); change one or set "
                           "--head-dim",
                           o->hidden_size, o->num_attention_heads);
    int hd = head_dim_of(o);
    if (hd % 2 != 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "head_dim %d must be even (rotary embeddings rotate pairs); "
                           "change --dim/--heads or set --head-dim",
                           hd);
    if ((long long)hd * o->num_attention_heads > MAX_DIM)
        return vrt_err_set(err, VRT_EINVAL,
                           "num_attention_heads * head_dim = %lld is over %d; make "
                           "--heads or --head-dim smaller",
                           (long long)hd * o->num_attention_heads, MAX_DIM);
    int tv = vrt_mkmodel_tokenizer_vocab();
    if (tv <= 0)
        return vrt_err_set(err, VRT_EINTERNAL, "the embedded tokenizer.json cannot be parsed");
    if (o->vocab_size < tv)
        return vrt_err_set(err, VRT_EINVAL,
                           "vocab_size %d (--vocab) is smaller than the bundled "
                           "tokenizer's %d tokens; use --vocab %d or more",
                           o->vocab_size, tv, tv);
    if (!(o->rope_theta > 0) || !isfinite(o->rope_theta))
        return vrt_err_set(err, VRT_EINVAL, "rope_theta (--rope-theta) must be positive");
    if (!(o->rms_norm_eps > 0) || !(o->rms_norm_eps < 1))
        return vrt_err_set(err, VRT_EINVAL, "rms_norm_eps must be in (0, 1)");
    if (o->sliding_window < 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "sliding_window (--sliding-window) must be 0 (none) or "
                           "positive, got %lld",
                           (long long)o->sliding_window);
    if (o->sliding_window > 0 && a->desc.window_kind == VRT_WINDOW_NONE)
        return vrt_err_set(err, VRT_EINVAL,
                           "sliding_window (--sliding-window) is not read by %s; add --arch %s",
                           a->class_names[0], windowed_model_type());
    if (o->dtype != VRT_ST_F16 && o->dtype != VRT_ST_F32)
        return vrt_err_set(err, VRT_EINVAL, "dtype (--dtype) must be f16 or f32, got %s",
                           vrt_st_dtype_name(o->dtype));
    return 0;
}

/* ---- the tensors ------------------------------------------------------ */

/* One tensor to generate; the array of them lives for the whole write. */
/* Longest tensor name + 1. */
#define NAME_CAP 128

typedef struct gen_tensor {
    char name[NAME_CAP];
    int ndim;
    int64_t shape[2];
    float mean;   /* 0 for weights, 1 for norm weights */
    uint64_t key; /* (seed, name) */
    int dtype;
    struct gen_state *st;
} gen_tensor;

typedef struct gen_state {
    const vrt_mkmodel_opts *o;
    int n_tensors;
    int n_started; /* tensors whose first chunk was requested */
} gen_state;

static uint64_t mix64(uint64_t z)
{
    /* The splitmix64 finalizer. */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* Standard normal pair number p of the stream key (Box-Muller on one
 * 64-bit hash: 24 bits for each uniform). */
static void normal_pair(uint64_t key, uint64_t p, float *z0, float *z1)
{
    uint64_t x = mix64(key + (p + 1) * 0x9e3779b97f4a7c15ull);
    float u1 = ((float)(x >> 40) + 0.5f) * 0x1p-24f; /* (0, 1) */
    float u2 = (float)(x & 0xffffffu) * 0x1p-24f;    /* [0, 1) */
    float r = sqrtf(-2.0f * logf(u1));
    float a = 6.28318530717958647692f * u2;
    *z0 = r * cosf(a);
    *z1 = r * sinf(a);
}

static int fill_tensor(void *ctx, void *buf, uint64_t off, uint64_t n, vrt_err *err)
{
    gen_tensor *t = ctx;
    size_t esz = t->dtype == VRT_ST_F32 ? 4 : 2;
    uint64_t e0 = off / esz, ne = n / esz;
    if (off == 0 && t->st->o->progress)
        t->st->o->progress(t->st->o->progress_ctx, t->st->n_started, t->st->n_tensors, t->name,
                           (uint64_t)t->shape[0] * (t->ndim > 1 ? (uint64_t)t->shape[1] : 1) * esz);
    if (off == 0)
        t->st->n_started++;
    unsigned char *out = buf;
    /* Each value depends on its index only, so threads may split the chunk. */
#pragma omp parallel for schedule(static) if (ne >= 65536)
    for (uint64_t i = 0; i < ne; i++) {
        uint64_t e = e0 + i;
        float z[2];
        normal_pair(t->key, e / 2, &z[0], &z[1]);
        float v = t->mean + INIT_STD * z[e & 1];
        if (esz == 4) {
            memcpy(out + 4 * i, &v, 4);
        } else {
            uint16_t h = vrt_f32_to_f16(v);
            memcpy(out + 2 * i, &h, 2);
        }
    }
    (void)err;
    return 0;
}

/* The linears of a row that mkmodel gives a bias (arch.h's bias kinds;
 * config.json's attention_bias/mlp_bias are written false). */
static void biases_of(const vrt_arch_info *a, int *qkv, int *o_, int *mlp, int *lm_head)
{
    *qkv = a->bias_kind == VRT_BIAS_QKV || a->bias_kind == VRT_BIAS_ALL;
    *o_ = *mlp = *lm_head = a->bias_kind == VRT_BIAS_ALL;
}

/* The tensor list in HF order, names from the architecture's tensor map;
 * returns the count (t may be NULL), or -1 when a name does not fit. */
static int list_tensors(const vrt_mkmodel_opts *o, gen_tensor *t)
{
    const vrt_arch_info *a = vrt_arch_get(o->arch);
    int D = o->hidden_size, F = o->intermediate_size, V = o->vocab_size;
    int hd = head_dim_of(o);
    int q = o->num_attention_heads * hd, kv = o->num_key_value_heads * hd;
    int qkv_b, o_b, mlp_b, lm_b;
    biases_of(a, &qkv_b, &o_b, &mlp_b, &lm_b);
    int n = 0, bad = 0;
    char name[NAME_CAP];
#define ADD(mean_, r, c, role, l, suffix)                                                          \
    do {                                                                                           \
        bad |= vrt_arch_tensor(a, (role), (l), (suffix), name, sizeof name, NULL) != 0;            \
        if (t) {                                                                                   \
            memcpy(t[n].name, name, NAME_CAP);                                                     \
            t[n].ndim = (c) ? 2 : 1;                                                               \
            t[n].shape[0] = (r);                                                                   \
            t[n].shape[1] = (c);                                                                   \
            t[n].mean = (mean_);                                                                   \
            t[n].dtype = o->dtype;                                                                 \
            t[n].key = mix64(o->seed ^ mix64(fnv1a64(t[n].name)));                                 \
        }                                                                                          \
        n++;                                                                                       \
    } while (0)
#define LINEAR(r, c, role, l, has_bias)                                                            \
    do {                                                                                           \
        ADD(0.0f, r, c, role, l, ".weight");                                                       \
        if (has_bias)                                                                              \
            ADD(0.0f, r, 0, role, l, ".bias");                                                     \
    } while (0)
    ADD(0.0f, V, D, VRT_T_EMBED, 0, ".weight");
    for (int l = 0; l < o->num_hidden_layers; l++) {
        ADD(1.0f, D, 0, VRT_T_ATTN_NORM, l, ".weight");
        LINEAR(q, D, VRT_T_Q, l, qkv_b);
        LINEAR(kv, D, VRT_T_K, l, qkv_b);
        LINEAR(kv, D, VRT_T_V, l, qkv_b);
        LINEAR(D, q, VRT_T_O, l, o_b);
        ADD(1.0f, D, 0, VRT_T_FFN_NORM, l, ".weight");
        LINEAR(F, D, VRT_T_GATE, l, mlp_b);
        LINEAR(F, D, VRT_T_UP, l, mlp_b);
        LINEAR(D, F, VRT_T_DOWN, l, mlp_b);
    }
    ADD(1.0f, D, 0, VRT_T_FINAL_NORM, 0, ".weight");
    if (!o->tie_word_embeddings)
        LINEAR(V, D, VRT_T_LM_HEAD, 0, lm_b);
#undef LINEAR
#undef ADD
    return bad ? -1 : n;
}

void vrt_mkmodel_size(const vrt_mkmodel_opts *o, uint64_t *params, uint64_t *bytes)
{
    const vrt_arch_info *a = vrt_arch_get(o->arch);
    int qkv_b = 0, o_b = 0, mlp_b = 0, lm_b = 0;
    if (a)
        biases_of(a, &qkv_b, &o_b, &mlp_b, &lm_b);
    uint64_t D = (uint64_t)o->hidden_size, F = (uint64_t)o->intermediate_size;
    uint64_t V = (uint64_t)o->vocab_size, hd = (uint64_t)head_dim_of(o);
    uint64_t q = (uint64_t)o->num_attention_heads * hd;
    uint64_t kv = (uint64_t)o->num_key_value_heads * hd;
    uint64_t layer = 2 * D + q * D + 2 * kv * D + D * q + 3 * F * D;
    layer += (uint64_t)qkv_b * (q + 2 * kv) + (uint64_t)o_b * D + (uint64_t)mlp_b * (2 * F + D);
    uint64_t p = V * D + (uint64_t)o->num_hidden_layers * layer + D;
    if (!o->tie_word_embeddings)
        p += V * D + (uint64_t)lm_b * V;
    if (params)
        *params = p;
    if (bytes)
        *bytes = p * (o->dtype == VRT_ST_F32 ? 4 : 2);
}

/* ---- the JSON files --------------------------------------------------- */

/* A double as Python's json writes it (repr): the shortest digits that
 * read back exactly, fixed notation with at least one decimal for
 * 1e-4 <= |v| < 1e16, exponent notation otherwise. */
static void fmt_float(char *buf, size_t cap, double v)
{
    double a = fabs(v);
    if (a == 0 || (a >= 1e-4 && a < 1e16)) {
        for (int d = 1; d <= 20; d++) {
            snprintf(buf, cap, "%.*f", d, v);
            if (strtod(buf, NULL) == v)
                return;
        }
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

typedef struct json_kv {
    const char *key;
    char value[48];
} json_kv;

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const json_kv *)a)->key, ((const json_kv *)b)->key);
}

static int config_json(const vrt_mkmodel_opts *o, char *buf, size_t cap)
{
    const vrt_arch_info *a = vrt_arch_get(o->arch);
    json_kv kv[40];
    int n = 0;
#define KV(key_, ...)                                                                              \
    do {                                                                                           \
        kv[n].key = vrt_arch_key(a, key_);                                                         \
        snprintf(kv[n].value, sizeof kv[n].value, __VA_ARGS__);                                    \
        n++;                                                                                       \
    } while (0)
    KV("attention_dropout", "0.0");
    KV("bos_token_id", "1");
    KV("eos_token_id", "2");
    KV("head_dim", "%d", head_dim_of(o));
    KV("hidden_act", "\"%s\"", a->hidden_act);
    KV("hidden_size", "%d", o->hidden_size);
    KV("initializer_range", "0.02");
    KV("intermediate_size", "%d", o->intermediate_size);
    KV("max_position_embeddings", "%lld", (long long)o->max_position_embeddings);
    KV("model_type", "\"%s\"", a->model_type);
    KV("num_attention_heads", "%d", o->num_attention_heads);
    KV("num_hidden_layers", "%d", o->num_hidden_layers);
    KV("num_key_value_heads", "%d", o->num_key_value_heads);
    fmt_float(kv[n].value, sizeof kv[n].value, o->rms_norm_eps);
    kv[n++].key = vrt_arch_key(a, "rms_norm_eps");
    fmt_float(kv[n].value, sizeof kv[n].value, o->rope_theta);
    kv[n++].key = vrt_arch_key(a, "rope_theta");
    if (a->desc.window_kind != VRT_WINDOW_NONE) {
        if (o->sliding_window > 0)
            KV("sliding_window", "%lld", (long long)o->sliding_window);
        else
            KV("sliding_window", "null");
    }
    KV("tie_word_embeddings", "%s", o->tie_word_embeddings ? "true" : "false");
    KV("torch_dtype", "\"%s\"", o->dtype == VRT_ST_F32 ? "float32" : "float16");
    KV("use_cache", "true");
    KV("vocab_size", "%d", o->vocab_size);
    for (int i = 0; i < VRT_ARCH_MAX_EXTRA && a->extra_json[i].key; i++)
        KV(a->extra_json[i].key, "%s", a->extra_json[i].json);
#undef KV
    /* Keys sorted, two-space indent: how transformers' save_pretrained
     * writes them (legacy top-level rope_theta, torch_dtype). */
    qsort(kv, (size_t)n, sizeof kv[0], kv_cmp);
    size_t len = 0;
#define P(...)                                                                                     \
    do {                                                                                           \
        int k_ = snprintf(buf + len, len < cap ? cap - len : 0, __VA_ARGS__);                      \
        len += k_ > 0 ? (size_t)k_ : 0;                                                            \
    } while (0)
    P("{\n  \"architectures\": [\n    \"%s\"\n  ],\n", a->class_names[0]);
    for (int i = 0; i < n; i++)
        P("  \"%s\": %s%s\n", kv[i].key, kv[i].value, i + 1 < n ? "," : "");
    P("}\n");
#undef P
    return len < cap ? (int)len : -1;
}

static const char generation_config_json[] = "{\n"
                                             "  \"_from_model_config\": true,\n"
                                             "  \"bos_token_id\": 1,\n"
                                             "  \"eos_token_id\": 2\n"
                                             "}\n";

/* ---- the directory ---------------------------------------------------- */

/* Creates dir or checks that it may be written into; an index left by a
 * sharded model would shadow model.safetensors. */
static int prepare_dir(const char *dir, bool force, vrt_err *err)
{
    static const char *const stale[] = {"model.safetensors.index.json"};
    return vrt_prepare_out_dir(dir, force, stale, 1, err);
}

int vrt_mkmodel_write(const vrt_mkmodel_opts *o, const char *dir, vrt_err *err)
{
    int rc;
    if ((rc = vrt_mkmodel_validate(o, err)) != 0)
        return rc;
    if (!dir || !*dir)
        return vrt_err_set(err, VRT_EINVAL, "no output directory given");
    if ((rc = prepare_dir(dir, o->force, err)) != 0)
        return rc;

    char cfg[4096];
    int cfg_len = config_json(o, cfg, sizeof cfg);
    if (cfg_len < 0)
        return vrt_err_set(err, VRT_EINTERNAL, "config.json longer than %zu bytes", sizeof cfg);
    if ((rc = vrt_write_file(dir, "config.json", cfg, (size_t)cfg_len, err)) != 0 ||
        (rc = vrt_write_file(dir, "generation_config.json", generation_config_json,
                             sizeof generation_config_json - 1, err)) != 0 ||
        (rc = vrt_write_file(dir, "tokenizer.json", vrt__asset_tokenizer_json,
                             vrt__asset_tokenizer_json_len, err)) != 0 ||
        (rc = vrt_write_file(dir, "tokenizer_config.json", vrt__asset_tokenizer_config_json,
                             vrt__asset_tokenizer_config_json_len, err)) != 0)
        return rc;

    int n = list_tensors(o, NULL);
    if (n < 0)
        return vrt_err_set(
            err, VRT_EINVAL, "a tensor name of %s with %d layers is longer than %d bytes",
            vrt_arch_get(o->arch)->class_names[0], o->num_hidden_layers, NAME_CAP - 1);
    gen_tensor *t = calloc((size_t)n, sizeof *t);
    char *path = vrt_path_join(dir, "model.safetensors");
    if (!t || !path) {
        free(t);
        free(path);
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    }
    gen_state st = {o, n, 0};
    list_tensors(o, t);
    vrt_st_writer w;
    vrt_st_writer_init(&w);
    for (int i = 0; i < n && rc == 0; i++) {
        t[i].st = &st;
        rc = vrt_st_writer_add_fill(&w, t[i].name, o->dtype, t[i].ndim, t[i].shape, fill_tensor,
                                    &t[i], err);
    }
    if (rc == 0)
        rc = vrt_st_writer_write(&w, path, NULL, err);
    vrt_st_writer_free(&w);
    free(path);
    free(t);
    return rc;
}
