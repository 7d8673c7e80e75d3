/* hf_config.c — config.json / generation_config.json for the architectures
 * of arch.h's table and the rotary inverse-frequency tables (see
 * hf_config.h, docs/formats.md §2.0–2.2, §6.3).
 *
 * Defaults, the keys an architecture names differently and which of its
 * keys are read at all come from the architecture's row (arch.c).
 * The rope tables follow transformers' modeling_rope_utils.py step by step
 * in float32 (python scalars are rounded to float32 where torch does), so
 * the values match what a transformers model uses to within an ulp of powf.
 */
#include "model/hf_config.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUPPORTED_ROPE "default, linear, dynamic, llama3"
/* config.json files are a few KB; refuse absurd ones. */
#define MAX_CONFIG_BYTES (16u << 20)

const char *vrt_rope_type_name(int type)
{
    switch (type) {
    case VRT_ROPE_DEFAULT: return "default";
    case VRT_ROPE_LINEAR: return "linear";
    case VRT_ROPE_DYNAMIC: return "dynamic";
    case VRT_ROPE_LLAMA3: return "llama3";
    }
    return "?";
}

/* ---- typed JSON access -------------------------------------------------
 * Each getter returns 1 when the key holds a value, 0 when it is absent or
 * null, and a negative error code (with a message naming file and key) when
 * it holds the wrong type. */

static int get_num(const cJSON *o, const char *key, const char *file, double *out, vrt_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return 0;
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
        return vrt_err_set(err, VRT_ECONFIG, "%s: %s must be a number", file, key);
    *out = j->valuedouble;
    return 1;
}

static int get_i64(const cJSON *o, const char *key, const char *file, int64_t *out, vrt_err *err)
{
    double d;
    int r = get_num(o, key, file, &d, err);
    if (r <= 0)
        return r;
    if (d != floor(d) || fabs(d) > 9007199254740992.0)
        return vrt_err_set(err, VRT_ECONFIG, "%s: %s must be an integer, got %g", file, key, d);
    *out = (int64_t)d;
    return 1;
}

static int get_int(const cJSON *o, const char *key, const char *file, int *out, vrt_err *err)
{
    int64_t v;
    int r = get_i64(o, key, file, &v, err);
    if (r <= 0)
        return r;
    if (v < INT_MIN || v > INT_MAX)
        return vrt_err_set(err, VRT_ECONFIG, "%s: %s = %lld is out of range", file, key,
                           (long long)v);
    *out = (int)v;
    return 1;
}

static int get_bool(const cJSON *o, const char *key, const char *file, bool *out, vrt_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return 0;
    if (!cJSON_IsBool(j))
        return vrt_err_set(err, VRT_ECONFIG, "%s: %s must be true or false", file, key);
    *out = cJSON_IsTrue(j);
    return 1;
}

static int get_str(const cJSON *o, const char *key, const char *file, const char **out,
                   vrt_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return 0;
    if (!cJSON_IsString(j) || !j->valuestring)
        return vrt_err_set(err, VRT_ECONFIG, "%s: %s must be a string", file, key);
    *out = j->valuestring;
    return 1;
}

/* A required positive integer. */
static int need_pos_int(const cJSON *o, const char *key, const char *file, int *out, vrt_err *err)
{
    int r = get_int(o, key, file, out, err);
    if (r < 0)
        return r;
    if (r == 0)
        return vrt_err_set(err, VRT_ECONFIG, "%s: required key %s is missing", file, key);
    if (*out <= 0)
        return vrt_err_set(err, VRT_ECONFIG, "%s: %s must be positive, got %d", file, key, *out);
    return 0;
}

/* Token ids: an int or a list of ints, added to ids (deduplicated).
 * Returns 1 when present, 0 when absent/null, < 0 on error. */
static int get_ids(const cJSON *o, const char *key, const char *file, int *ids, int *n,
                   vrt_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return 0;
    const cJSON *one = j, *it;
    int is_list = cJSON_IsArray(j);
    if (!is_list && !cJSON_IsNumber(j))
        return vrt_err_set(err, VRT_ECONFIG, "%s: %s must be a token id or a list of token ids",
                           file, key);
    for (it = is_list ? j->child : one; it; it = is_list ? it->next : NULL) {
        double d = cJSON_IsNumber(it) ? it->valuedouble : -1.0;
        if (!(d >= 0.0) || d != floor(d) || d > INT_MAX)
            return vrt_err_set(err, VRT_ECONFIG,
                               "%s: %s must hold non-negative integer token "
                               "ids",
                               file, key);
        int id = (int)d, dup = 0;
        for (int k = 0; k < *n; k++)
            dup |= ids[k] == id;
        if (dup)
            continue;
        if (*n == VRT_MAX_EOS)
            return vrt_err_set(err, VRT_EUNSUPPORTED,
                               "%s: %s: more than %d distinct stop token ids "
                               "are not supported",
                               file, key, VRT_MAX_EOS);
        ids[(*n)++] = id;
    }
    return 1;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* ---- rope scaling ------------------------------------------------------ */

static int parse_rope(vrt_model_config *c, const cJSON *root, const char *file,
                      const vrt_arch_info *A, vrt_err *err)
{
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    int r;
    if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params))
        return vrt_err_set(err, VRT_ECONFIG, "%s: rope_parameters must be an object or null", file);
    if (scaling && !cJSON_IsNull(scaling) && !cJSON_IsObject(scaling))
        return vrt_err_set(err, VRT_ECONFIG, "%s: rope_scaling must be an object or null", file);
    /* theta = rope_parameters.rope_theta ?? rope_theta ?? 10000 */
    c->rope_theta = A->defaults.rope_theta;
    if ((r = get_num(root, vrt_arch_key(A, "rope_theta"), file, &c->rope_theta, err)) < 0)
        return r;
    /* Type errors inside the rope objects say which object they are in. */
    char in_params[320], in_scaling[320];
    snprintf(in_params, sizeof in_params, "%s: rope_parameters", file);
    snprintf(in_scaling, sizeof in_scaling, "%s: rope_scaling", file);
    if (cJSON_IsObject(params) &&
        (r = get_num(params, "rope_theta", in_params, &c->rope_theta, err)) < 0)
        return r;
    if (!(c->rope_theta > 1.0))
        return vrt_err_set(err, VRT_ECONFIG, "%s: rope_theta must be greater than 1, got %g", file,
                           c->rope_theta);
    /* scaling = rope_parameters (unless its type is default) ?? rope_scaling */
    const cJSON *s = cJSON_IsObject(scaling) ? scaling : NULL;
    const char *key = "rope_scaling";
    if (cJSON_IsObject(params)) {
        const char *pt = NULL;
        if ((r = get_str(params, "rope_type", in_params, &pt, err)) < 0)
            return r;
        if (!pt && (r = get_str(params, "type", in_params, &pt, err)) < 0)
            return r;
        if (pt && strcmp(pt, "default") != 0) {
            s = params;
            key = "rope_parameters";
        }
    }
    memset(&c->rope_scaling, 0, sizeof c->rope_scaling);
    c->rope_scaling.type = VRT_ROPE_DEFAULT;
    c->rope_scaling.factor = 1.0;
    if (!s)
        return 0;
    const char *in = s == params ? in_params : in_scaling;
    const char *type = NULL;
    if ((r = get_str(s, "rope_type", in, &type, err)) < 0)
        return r;
    if (!type && (r = get_str(s, "type", in, &type, err)) < 0)
        return r;
    if (!type)
        return vrt_err_set(err, VRT_ECONFIG,
                           "%s: %s has no rope_type (or type); supported: " SUPPORTED_ROPE, file,
                           key);
    if (strcmp(type, "default") == 0)
        return 0;
    if (strcmp(type, "linear") == 0)
        c->rope_scaling.type = VRT_ROPE_LINEAR;
    else if (strcmp(type, "dynamic") == 0)
        c->rope_scaling.type = VRT_ROPE_DYNAMIC;
    else if (strcmp(type, "llama3") == 0)
        c->rope_scaling.type = VRT_ROPE_LLAMA3;
    else
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "%s: %s type '%.64s' is not supported (supported: " SUPPORTED_ROPE ")",
                           file, key, type);
    double f = 0;
    if ((r = get_num(s, "factor", in, &f, err)) < 0)
        return r;
    if (r == 0)
        return vrt_err_set(err, VRT_ECONFIG, "%s: %s of type %s needs a factor", file, key, type);
    if (!(f > 0))
        return vrt_err_set(err, VRT_ECONFIG, "%s: %s factor must be positive, got %g", file, key,
                           f);
    if (f < 1.0)
        VRT_WARN("%s: %s factor %g is below 1 (transformers expects >= 1)", file, key, f);
    c->rope_scaling.factor = f;
    if (c->rope_scaling.type != VRT_ROPE_LLAMA3)
        return 0;
    static const char *const need[] = {"low_freq_factor", "high_freq_factor",
                                       "original_max_position_embeddings"};
    for (int i = 0; i < 3; i++)
        if (!cJSON_GetObjectItemCaseSensitive(s, need[i]) ||
            cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s, need[i])))
            return vrt_err_set(err, VRT_ECONFIG,
                               "%s: %s of type llama3 needs %s (llama3 needs "
                               "factor, low_freq_factor, high_freq_factor, "
                               "original_max_position_embeddings)",
                               file, key, need[i]);
    if ((r = get_num(s, "low_freq_factor", in, &c->rope_scaling.low_freq_factor, err)) < 0 ||
        (r = get_num(s, "high_freq_factor", in, &c->rope_scaling.high_freq_factor, err)) < 0 ||
        (r = get_i64(s, "original_max_position_embeddings", in,
                     &c->rope_scaling.original_max_position_embeddings, err)) < 0)
        return r;
    if (!(c->rope_scaling.high_freq_factor > c->rope_scaling.low_freq_factor) ||
        !(c->rope_scaling.low_freq_factor > 0) ||
        c->rope_scaling.original_max_position_embeddings <= 0)
        return vrt_err_set(err, VRT_ECONFIG,
                           "%s: %s llama3 needs 0 < low_freq_factor < "
                           "high_freq_factor and a positive "
                           "original_max_position_embeddings (got %g, %g, "
                           "%lld)",
                           file, key, c->rope_scaling.low_freq_factor,
                           c->rope_scaling.high_freq_factor,
                           (long long)c->rope_scaling.original_max_position_embeddings);
    return 0;
}

/* ---- config.json ------------------------------------------------------- */

static int parse_config(vrt_model_config *c, const cJSON *root, const char *file, vrt_err *err)
{
    int r;
    const char *mt = NULL, *an = NULL;
    if ((r = get_str(root, "model_type", file, &mt, err)) < 0)
        return r;
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (archs && !cJSON_IsNull(archs)) {
        if (!cJSON_IsArray(archs) || (archs->child && !cJSON_IsString(archs->child)))
            return vrt_err_set(err, VRT_ECONFIG, "%s: architectures must be a list of strings",
                               file);
        if (archs->child)
            an = archs->child->valuestring;
    }
    char sup[256];
    if (an) {
        if (!(c->arch = vrt_arch_by_class(an)))
            return vrt_err_set(err, VRT_EUNSUPPORTED,
                               "%s: architectures[0] '%.64s' is not "
                               "supported (supported: %s)",
                               file, an, vrt_arch_supported(sup, sizeof sup));
    } else if (mt) {
        if (!(c->arch = vrt_arch_by_model_type(mt)))
            return vrt_err_set(err, VRT_EUNSUPPORTED,
                               "%s: model_type '%.64s' is not supported "
                               "(supported: %s)",
                               file, mt, vrt_arch_supported(sup, sizeof sup));
    } else {
        return vrt_err_set(err, VRT_ECONFIG,
                           "%s: neither architectures nor model_type is set "
                           "(supported: %s)",
                           file, vrt_arch_supported(sup, sizeof sup));
    }
    const vrt_arch_info *A = vrt_arch_get(c->arch);
    copy_str(c->arch_name, sizeof c->arch_name, A->class_names[0]);
    copy_str(c->model_type, sizeof c->model_type, A->model_type);
#define K(key) vrt_arch_key(A, key)

    if ((r = need_pos_int(root, K("hidden_size"), file, &c->hidden_size, err)) ||
        (r = need_pos_int(root, K("intermediate_size"), file, &c->intermediate_size, err)) ||
        (r = need_pos_int(root, K("num_hidden_layers"), file, &c->num_hidden_layers, err)) ||
        (r = need_pos_int(root, K("num_attention_heads"), file, &c->num_attention_heads, err)) ||
        (r = need_pos_int(root, K("vocab_size"), file, &c->vocab_size, err)))
        return r;
    int H = c->num_attention_heads;

    /* num_key_value_heads: null -> H; a missing key is the class default
     * (Llama: H, Mistral: 8). */
    const cJSON *jkv = cJSON_GetObjectItemCaseSensitive(root, K("num_key_value_heads"));
    c->num_key_value_heads =
        (!jkv && A->defaults.num_key_value_heads) ? A->defaults.num_key_value_heads : H;
    if ((r = get_int(root, K("num_key_value_heads"), file, &c->num_key_value_heads, err)) < 0)
        return r;
    if (c->num_key_value_heads <= 0 || c->num_key_value_heads > H ||
        H % c->num_key_value_heads != 0)
        return vrt_err_set(err, VRT_ECONFIG, "%s: %s (%d) must be a multiple of %s (%d)", file,
                           K("num_attention_heads"), H, K("num_key_value_heads"),
                           c->num_key_value_heads);

    c->head_dim = 0;
    if ((r = get_int(root, K("head_dim"), file, &c->head_dim, err)) < 0)
        return r;
    if (r == 0) {
        if (c->hidden_size % H != 0)
            return vrt_err_set(err, VRT_ECONFIG,
                               "%s: hidden_size (%d) is not divisible by "
                               "num_attention_heads (%d) and head_dim is not "
                               "set; hidden_size must equal heads * head_dim",
                               file, c->hidden_size, H);
        c->head_dim = c->hidden_size / H;
    }
    if (c->head_dim <= 0 || c->head_dim % 2 != 0)
        return vrt_err_set(err, VRT_ECONFIG,
                           "%s: head_dim must be a positive even number, got "
                           "%d",
                           file, c->head_dim);
    /* partial_rotary_factor: transformers v5 may move it into
     * rope_parameters (docs/formats.md §2.0). A class that does not read it
     * accepts only 1.0 in either place; one that does rotates
     * int(head_dim * factor) dims of each head. */
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    static const char *const prf_keys[] = {"partial_rotary_factor", "rope_parameters."
                                                                    "partial_rotary_factor"};
    double prf_default = A->partial_rotary && A->defaults.partial_rotary_factor > 0
                             ? A->defaults.partial_rotary_factor
                             : 1.0;
    double prf_used = prf_default;
    for (int k = 0; k < 2; k++) {
        const cJSON *o = k == 0 ? root : cJSON_IsObject(rp) ? rp : NULL;
        double prf = prf_default;
        if (o && (r = get_num(o, "partial_rotary_factor", file, &prf, err)) < 0)
            return r;
        if (r == 1 && o)
            prf_used = prf;
        if (!A->partial_rotary && prf != 1.0)
            return vrt_err_set(err, VRT_EUNSUPPORTED,
                               "%s: %s %g is not supported for %s (only 1.0)", file, prf_keys[k],
                               prf, c->arch_name);
        r = 0;
    }
    c->rotary_dim = (int)(c->head_dim * prf_used);
    if (!(prf_used > 0 && prf_used <= 1) || c->rotary_dim < 2 || c->rotary_dim % 2 != 0)
        return vrt_err_set(err, VRT_ECONFIG,
                           "%s: partial_rotary_factor %g gives %d rotary dims of head_dim %d; "
                           "it must be in (0, 1] and give an even number",
                           file, prf_used, c->rotary_dim, c->head_dim);

    c->max_position_embeddings = A->defaults.max_position_embeddings;
    if ((r = get_i64(root, K("max_position_embeddings"), file, &c->max_position_embeddings, err)) <
        0)
        return r;
    if (c->max_position_embeddings <= 0)
        return vrt_err_set(err, VRT_ECONFIG, "%s: %s must be positive", file,
                           K("max_position_embeddings"));
    c->rms_norm_eps = A->defaults.rms_norm_eps;
    if ((r = get_num(root, K("rms_norm_eps"), file, &c->rms_norm_eps, err)) < 0)
        return r;
    if (!(c->rms_norm_eps > 0))
        return vrt_err_set(err, VRT_ECONFIG, "%s: %s must be positive", file, K("rms_norm_eps"));
    if ((r = parse_rope(c, root, file, A, err)) != 0)
        return r;

    c->tie_word_embeddings = A->defaults.tie_word_embeddings;
    if ((r = get_bool(root, K("tie_word_embeddings"), file, &c->tie_word_embeddings, err)) < 0)
        return r;
    const char *act = A->hidden_act;
    if ((r = get_str(root, K("hidden_act"), file, &act, err)) < 0)
        return r;
    if (strcmp(act, A->hidden_act) != 0)
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "%s: %s '%.32s' is not supported for %s "
                           "(supported: %s)",
                           file, K("hidden_act"), act, c->arch_name, A->hidden_act);
    copy_str(c->hidden_act, sizeof c->hidden_act, act);
    bool ab = false, mb = false;
    if ((r = get_bool(root, K("attention_bias"), file, &ab, err)) < 0 ||
        (r = get_bool(root, K("mlp_bias"), file, &mb, err)) < 0)
        return r;
    if (A->bias_kind == VRT_BIAS_CONFIG) {
        c->attention_bias = ab;
        c->mlp_bias = mb;
    } else if (ab || mb) {
        /* transformers' class has no such flags; it ignores them. */
        VRT_WARN("%s: attention_bias/mlp_bias are ignored for "
                 "%s (as in transformers)",
                 file, c->arch_name);
    }

    c->sliding_window = 0;
    if (A->desc.window_kind != VRT_WINDOW_NONE) {
        const cJSON *jsw = cJSON_GetObjectItemCaseSensitive(root, K("sliding_window"));
        if (!jsw)
            c->sliding_window = A->defaults.sliding_window;
        else if ((r = get_i64(root, K("sliding_window"), file, &c->sliding_window, err)) < 0)
            return r;
        if (c->sliding_window < 0)
            return vrt_err_set(err, VRT_ECONFIG, "%s: %s must be null or positive", file,
                               K("sliding_window"));
    }

    const char *dt = NULL;
    if ((r = get_str(root, "torch_dtype", file, &dt, err)) < 0)
        return r;
    if (!dt && (r = get_str(root, "dtype", file, &dt, err)) < 0)
        return r;
    copy_str(c->torch_dtype, sizeof c->torch_dtype, dt);

    /* Special tokens: the class defaults (Llama: bos 1, eos 2) when the
     * key is absent; null means none. */
    c->bos_token_id = -1;
    const cJSON *jb = cJSON_GetObjectItemCaseSensitive(root, "bos_token_id");
    if (!jb)
        c->bos_token_id = A->defaults.bos_token_id;
    else if ((r = get_int(root, "bos_token_id", file, &c->bos_token_id, err)) < 0)
        return r;
    c->pad_token_id = -1;
    if ((r = get_int(root, "pad_token_id", file, &c->pad_token_id, err)) < 0)
        return r;
    /* eos: the class default stands in only while no file sets the key;
     * parse_gen drops it when generation_config.json has eos_token_id (as
     * transformers, which then stops on generation_config's ids alone). */
    c->n_eos = 0;
    if (!cJSON_GetObjectItemCaseSensitive(root, "eos_token_id")) {
        if (A->defaults.eos_token_id >= 0)
            c->eos_token_ids[c->n_eos++] = A->defaults.eos_token_id;
    } else if ((r = get_ids(root, "eos_token_id", file, c->eos_token_ids, &c->n_eos, err)) < 0) {
        return r;
    }
#undef K
    return 0;
}

/* ---- generation_config.json ------------------------------------------- */

static int parse_gen(vrt_model_config *c, const cJSON *g, const char *file, bool eos_is_default,
                     vrt_err *err)
{
    int r, v;
    c->gen.present = true;
    const cJSON *ge = cJSON_GetObjectItemCaseSensitive(g, "eos_token_id");
    if (eos_is_default && ge && !cJSON_IsNull(ge))
        c->n_eos = 0;
    if ((r = get_int(g, "bos_token_id", file, &v, err)) < 0)
        return r;
    if (r)
        c->bos_token_id = v;
    if ((r = get_int(g, "pad_token_id", file, &v, err)) < 0)
        return r;
    if (r)
        c->pad_token_id = v;
    if ((r = get_ids(g, "eos_token_id", file, c->eos_token_ids, &c->n_eos, err)) < 0)
        return r;
    if ((r = get_bool(g, "do_sample", file, &c->gen.do_sample, err)) < 0)
        return r;
    c->gen.has_do_sample = r;
    if ((r = get_num(g, "temperature", file, &c->gen.temperature, err)) < 0)
        return r;
    c->gen.has_temperature = r;
    if ((r = get_int(g, "top_k", file, &c->gen.top_k, err)) < 0)
        return r;
    c->gen.has_top_k = r;
    if ((r = get_num(g, "top_p", file, &c->gen.top_p, err)) < 0)
        return r;
    c->gen.has_top_p = r;
    if ((r = get_num(g, "repetition_penalty", file, &c->gen.repetition_penalty, err)) < 0)
        return r;
    c->gen.has_repetition_penalty = r;
    if ((r = get_i64(g, "max_new_tokens", file, &c->gen.max_new_tokens, err)) < 0)
        return r;
    c->gen.has_max_new_tokens = r;
    if ((r = get_i64(g, "max_length", file, &c->gen.max_length, err)) < 0)
        return r;
    c->gen.has_max_length = r;
    if ((c->gen.has_temperature && c->gen.temperature < 0) ||
        (c->gen.has_top_k && c->gen.top_k < 0) ||
        (c->gen.has_top_p && (c->gen.top_p < 0 || c->gen.top_p > 1)) ||
        (c->gen.has_repetition_penalty && c->gen.repetition_penalty <= 0))
        return vrt_err_set(err, VRT_ECONFIG,
                           "%s: temperature >= 0, top_k >= 0, 0 <= top_p <= "
                           "1 and repetition_penalty > 0 are required",
                           file);
    return 0;
}

static int parse_text(const char *text, const char *file, cJSON **out, vrt_err *err)
{
    /* Nothing but whitespace may follow the object: Python's json.load
     * rejects "extra data", and two objects pasted together must not parse
     * as the first one. */
    cJSON *j = cJSON_ParseWithOpts(text, NULL, 1);
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        for (const char *p = text; at && p < at && *p; p++)
            line += *p == '\n';
        return vrt_err_set(err, VRT_ECONFIG, "%s: not valid JSON (line %d)", file, line);
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return vrt_err_set(err, VRT_ECONFIG, "%s: not a JSON object", file);
    }
    *out = j;
    return 0;
}

int vrt_model_config_parse(vrt_model_config *c, const char *config_json, const char *config_name,
                           const char *gen_json, const char *gen_name, vrt_err *err)
{
    memset(c, 0, sizeof *c);
    cJSON *root = NULL, *g = NULL;
    int rc = parse_text(config_json, config_name, &root, err);
    if (rc == 0)
        rc = parse_config(c, root, config_name, err);
    if (rc == 0 && gen_json && (rc = parse_text(gen_json, gen_name, &g, err)) == 0)
        rc =
            parse_gen(c, g, gen_name, !cJSON_GetObjectItemCaseSensitive(root, "eos_token_id"), err);
    cJSON_Delete(root);
    cJSON_Delete(g);
    return rc;
}

/* Reads a whole small text file; 1 when it does not exist. */
static int slurp(const char *path, char **out, vrt_err *err)
{
    int rc = vrt_read_file(path, MAX_CONFIG_BYTES, "a config", 1, out, NULL, err);
    if (rc == VRT_EFORMAT)
        err->code = rc = VRT_ECONFIG;
    return rc;
}

int vrt_model_config_load(vrt_model_config *c, const char *dir, vrt_err *err)
{
    memset(c, 0, sizeof *c);
    size_t dl = strlen(dir);
    char *cp = malloc(dl + 32), *gp = malloc(dl + 32);
    char *ct = NULL, *gt = NULL;
    int rc;
    if (!cp || !gp) {
        rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
        goto done;
    }
    const char *sep = dl && dir[dl - 1] == '/' ? "" : "/";
    snprintf(cp, dl + 32, "%s%sconfig.json", dir, sep);
    snprintf(gp, dl + 32, "%s%sgeneration_config.json", dir, sep);
    rc = slurp(cp, &ct, err);
    if (rc == 1) {
        rc = vrt_err_set(err, VRT_ENOENT,
                         "%s: not found (a model directory needs the Hugging "
                         "Face config.json)",
                         cp);
        goto done;
    }
    if (rc != 0)
        goto done;
    rc = slurp(gp, &gt, err);
    if (rc < 0)
        goto done;
    rc = vrt_model_config_parse(c, ct, cp, gt, gp, err);
done:
    free(ct);
    free(gt);
    free(cp);
    free(gp);
    return rc;
}

/* ---- rope tables -------------------------------------------------------- */

/* transformers _compute_default_rope_parameters:
 *   1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
 * in float32: exponent = float(2i) / float(dim), pow in float, reciprocal. */
static void default_inv_freq(float base, int dim, float *out)
{
    for (int i = 0; i < dim / 2; i++) {
        float e = (float)(2 * i) / (float)dim;
        out[i] = 1.0f / powf(base, e);
    }
}

int vrt_rope_inv_freq(const vrt_model_config *c, int seq_len, float *inv_freq,
                      float *attention_scaling, vrt_err *err)
{
    int dim = c->rotary_dim ? c->rotary_dim : c->head_dim;
    if (dim <= 2 || dim % 2 != 0)
        return vrt_err_set(err, VRT_EINVAL, "rope: rotary dim %d must be even and > 2", dim);
    if (attention_scaling)
        *attention_scaling = 1.0f;
    double base = c->rope_theta;
    float factor = (float)c->rope_scaling.factor;
    switch (c->rope_scaling.type) {
    case VRT_ROPE_DEFAULT: default_inv_freq((float)base, dim, inv_freq); return 0;
    case VRT_ROPE_LINEAR:
        default_inv_freq((float)base, dim, inv_freq);
        for (int i = 0; i < dim / 2; i++)
            inv_freq[i] /= factor;
        return 0;
    case VRT_ROPE_DYNAMIC: {
        /* Python doubles: base * ((factor*S/Lmax) - (factor-1)) ** (d/(d-2))
         * with S = max(seq_len, Lmax). */
        double lmax = (double)c->max_position_embeddings;
        double s = seq_len > c->max_position_embeddings ? (double)seq_len : lmax;
        double f = c->rope_scaling.factor;
        base = base * pow((f * s / lmax) - (f - 1.0), (double)dim / (double)(dim - 2));
        default_inv_freq((float)base, dim, inv_freq);
        return 0;
    }
    case VRT_ROPE_LLAMA3: {
        default_inv_freq((float)base, dim, inv_freq);
        double lo = c->rope_scaling.low_freq_factor;
        double hi = c->rope_scaling.high_freq_factor;
        double old = (double)c->rope_scaling.original_max_position_embeddings;
        /* Python scalars, rounded to float32 where torch meets a tensor. */
        float low_wl = (float)(old / lo), high_wl = (float)(old / hi);
        float two_pi = (float)(2.0 * M_PI);
        float oldf = (float)old, lof = (float)lo, span = (float)(hi - lo);
        for (int i = 0; i < dim / 2; i++) {
            float inv = inv_freq[i];
            /* scalar / tensor is reciprocal(tensor) * scalar in torch. */
            float wl = (1.0f / inv) * two_pi;
            float llama = wl > low_wl ? inv / factor : inv;
            float smooth = ((1.0f / wl) * oldf - lof) / span;
            float smoothed = (1.0f - smooth) * llama / factor + smooth * llama;
            int medium = !(wl < high_wl) && !(wl > low_wl);
            inv_freq[i] = medium ? smoothed : llama;
        }
        return 0;
    }
    }
    return vrt_err_set(err, VRT_EINVAL, "rope: unknown scaling type %d", c->rope_scaling.type);
}
