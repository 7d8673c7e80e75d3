/* quant.c — GPTQ/AWQ configs and repacking their 4-bit linears into vrt_q4 (see quant.h).
 *
 * Everything here follows docs/formats.md §3 (GPTQ) and §4 (AWQ). I32 tensors are
 * read as uint32 bit containers with memcpy (the mapping may be unaligned)
 * and logical shifts. The internal layout is described in backend.h and in
 * README "Internal int4 layout": rows of packed nibbles along K (internal
 * column k in nibble k % 8 of word k / 8), per-row fp16 scales and zero
 * points per group, and for act-order checkpoints a permutation of K that
 * sorts the input rows by group, applied to the activations by the kernels.
 */
#include "model/quant.h"

#include "backend/half.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_QCONFIG_BYTES (1u << 20)

/* AWQ: column 8c + j of a word sits in nibble slot REV[j] (docs/formats.md §4.2). */
static const int AWQ_REV[8] = {0, 4, 1, 5, 2, 6, 3, 7};

const char *vrt_quant_method_name(int method)
{
    switch (method) {
    case VRT_QUANT_NONE: return "none";
    case VRT_QUANT_GPTQ: return "gptq";
    case VRT_QUANT_AWQ: return "awq";
    }
    return "unknown";
}

int vrt_quant_config_agrees(const vrt_quant_config *qc, const char *want, vrt_err *err)
{
    const char *have = vrt_quant_method_name(qc->method);
    if (!want)
        want = "none";
    if (strcasecmp(want, have) == 0)
        return 0;
    if (qc->method == VRT_QUANT_NONE)
        return vrt_err_set(err, VRT_ECONFIG,
                           "model.quantize = \"%s\" but the checkpoint is not quantized "
                           "(no quantization_config in config.json, no quantize_config.json "
                           "or quant_config.json): remove model.quantize or point "
                           "model.path at a %s checkpoint",
                           want, want);
    int none = strcmp(want, "none") == 0;
    return vrt_err_set(err, VRT_ECONFIG,
                       "the checkpoint is a %d-bit %s checkpoint (group_size %d, from "
                       "%s) but model.quantize is %s%s%s: set model.quantize = \"%s\"",
                       qc->bits, have, qc->group_size, qc->source, none ? "nil" : "\"",
                       none ? "" : want, none ? "" : "\"", have);
}

/* ---- config -------------------------------------------------------------- */

void vrt_quant_config_free(vrt_quant_config *qc)
{
    for (int i = 0; i < qc->n_not_convert; i++)
        free(qc->not_convert[i]);
    free(qc->not_convert);
    qc->not_convert = NULL;
    qc->n_not_convert = 0;
}

/* The first of the keys present: 1 with *out set, 0 absent or null, < 0 on a
 * non-integer. */
static int get_int(const cJSON *o, const char *k1, const char *k2, const char *what, int *out,
                   vrt_err *err)
{
    const char *keys[2] = {k1, k2};
    for (int i = 0; i < 2; i++) {
        if (!keys[i])
            continue;
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!j || cJSON_IsNull(j))
            continue;
        if (!cJSON_IsNumber(j) || j->valuedouble != (double)(int)j->valuedouble)
            return vrt_err_set(err, VRT_ECONFIG, "%s: %s must be an integer", what, keys[i]);
        *out = (int)j->valuedouble;
        return 1;
    }
    return 0;
}

static int get_bool(const cJSON *o, const char *key, const char *what, bool *out, vrt_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return 0;
    if (!cJSON_IsBool(j))
        return vrt_err_set(err, VRT_ECONFIG, "%s: %s must be true or false", what, key);
    *out = cJSON_IsTrue(j);
    return 1;
}

static const char *get_str(const cJSON *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

static int parse_obj(vrt_quant_config *qc, const cJSON *o, const char *what, int is_gptq_file,
                     int is_awq_file, vrt_err *err)
{
    const char *m = get_str(o, "quant_method");
    if (m && strcasecmp(m, "gptq") == 0)
        qc->method = VRT_QUANT_GPTQ;
    else if (m && strcasecmp(m, "awq") == 0)
        qc->method = VRT_QUANT_AWQ;
    else if (m)
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "%s: quant_method \"%.40s\" is not supported; v100rt loads 4-bit "
                           "\"gptq\" and \"awq\" checkpoints (or an unquantized fp16 model)",
                           what, m);
    else if (is_gptq_file)
        qc->method = VRT_QUANT_GPTQ; /* old AutoGPTQ files name no method */
    else if (is_awq_file)
        qc->method = VRT_QUANT_AWQ;
    else
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "%s: quantization_config has no quant_method; expected \"gptq\" or "
                           "\"awq\"",
                           what);
    const char *mname = vrt_quant_method_name(qc->method);
    int rc;
    qc->bits = 4;
    if ((rc = get_int(o, "bits", "w_bit", what, &qc->bits, err)) < 0)
        return rc;
    if (qc->bits != 4)
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "%s: bits = %d; v100rt runs 4-bit %s checkpoints only (use a 4-bit "
                           "one, or the fp16 model)",
                           what, qc->bits, mname);
    qc->group_size = 128;
    rc = get_int(o, "group_size", "q_group_size", what, &qc->group_size, err);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return vrt_err_set(err, VRT_ECONFIG, "%s: group_size (or q_group_size) is missing", what);
    if (qc->group_size == 0 || qc->group_size < -1)
        return vrt_err_set(err, VRT_ECONFIG, "%s: group_size = %d must be -1 or positive", what,
                           qc->group_size);
    if (qc->group_size > 0 && qc->group_size % VRT_Q4_KBLOCK != 0)
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "%s: group_size = %d is not supported; the int4 kernels take group "
                           "sizes that are multiples of %d (32, 64, 128, ...) or -1",
                           what, qc->group_size, VRT_Q4_KBLOCK);
    qc->sym = true;
    if ((rc = get_bool(o, "sym", what, &qc->sym, err)) < 0)
        return rc;
    qc->desc_act = false;
    if ((rc = get_bool(o, "desc_act", what, &qc->desc_act, err)) < 0)
        return rc;
    if (qc->method == VRT_QUANT_GPTQ) {
        bool marlin = false;
        if ((rc = get_bool(o, "is_marlin_format", what, &marlin, err)) < 0)
            return rc;
        const char *cf = get_str(o, "checkpoint_format");
        if (marlin || (cf && strcasecmp(cf, "marlin") == 0))
            return vrt_err_set(err, VRT_EUNSUPPORTED,
                               "%s: the checkpoint is in Marlin format, a repacked layout for "
                               "Ampere GPUs; use the plain GPTQ checkpoint of the model",
                               what);
        if (!cf || strcasecmp(cf, "gptq") == 0)
            qc->gptq_format = VRT_GPTQ_V1;
        else if (strcasecmp(cf, "gptq_v2") == 0)
            qc->gptq_format = VRT_GPTQ_V2;
        else
            return vrt_err_set(err, VRT_EUNSUPPORTED,
                               "%s: checkpoint_format \"%.40s\" is not supported (\"gptq\" and "
                               "\"gptq_v2\" are)",
                               what, cf);
    } else {
        bool zp = true;
        if ((rc = get_bool(o, "zero_point", what, &zp, err)) < 0)
            return rc;
        if (!zp)
            return vrt_err_set(err, VRT_EUNSUPPORTED,
                               "%s: zero_point = false: AWQ GEMM checkpoints always have zero "
                               "points; this one is not in a layout v100rt reads",
                               what);
        const char *v = get_str(o, "version");
        if (v && strcasecmp(v, "gemm") != 0)
            return vrt_err_set(err, VRT_EUNSUPPORTED,
                               "%s: AWQ version \"%.40s\" is not supported; v100rt reads the "
                               "\"gemm\" layout (the AutoAWQ default)",
                               what, v);
    }
    const cJSON *mods = cJSON_GetObjectItemCaseSensitive(o, "modules_to_not_convert");
    if (mods && !cJSON_IsNull(mods)) {
        if (!cJSON_IsArray(mods))
            return vrt_err_set(err, VRT_ECONFIG,
                               "%s: modules_to_not_convert must be null or a list of names", what);
        int n = cJSON_GetArraySize(mods);
        qc->not_convert = calloc((size_t)(n + 1), sizeof *qc->not_convert);
        if (!qc->not_convert)
            return vrt_err_set(err, VRT_ENOMEM, "out of memory");
        const cJSON *e;
        cJSON_ArrayForEach(e, mods)
        {
            if (!cJSON_IsString(e) || !e->valuestring[0])
                return vrt_err_set(err, VRT_ECONFIG,
                                   "%s: modules_to_not_convert holds a non-string or empty entry",
                                   what);
            if (!(qc->not_convert[qc->n_not_convert++] = strdup(e->valuestring)))
                return vrt_err_set(err, VRT_ENOMEM, "out of memory");
        }
    }
    return 0;
}

int vrt_quant_config_parse(vrt_quant_config *qc, const char *json, const char *what,
                           int is_gptq_file, int is_awq_file, vrt_err *err)
{
    memset(qc, 0, sizeof *qc);
    snprintf(qc->source, sizeof qc->source, "%s", what);
    cJSON *root = cJSON_ParseWithOpts(json, NULL, 1);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return vrt_err_set(err, VRT_ECONFIG, "%s: not a valid JSON object", what);
    }
    int rc = 0;
    const cJSON *o = root;
    if (!is_gptq_file && !is_awq_file) {
        o = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
        if (!o || cJSON_IsNull(o)) {
            cJSON_Delete(root);
            return 0; /* not quantized */
        }
        if (!cJSON_IsObject(o))
            rc = vrt_err_set(err, VRT_ECONFIG, "%s: quantization_config must be an object", what);
    }
    if (!rc)
        rc = parse_obj(qc, o, what, is_gptq_file, is_awq_file, err);
    cJSON_Delete(root);
    if (rc) {
        vrt_quant_config_free(qc);
        qc->method = VRT_QUANT_NONE;
    }
    return rc;
}

int vrt_quant_config_load(vrt_quant_config *qc, const char *dir, vrt_err *err)
{
    memset(qc, 0, sizeof *qc);
    /* docs/formats.md §3.5: quantize_config.json first, then the AWQ file, then
     * config.json's quantization_config. */
    static const struct {
        const char *name;
        int gptq, awq;
    } files[] = {
        {"quantize_config.json", 1, 0}, {"quant_config.json", 0, 1}, {"config.json", 0, 0}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *path = vrt_path_join(dir, files[i].name), *text = NULL;
        if (!path)
            return vrt_err_set(err, VRT_ENOMEM, "out of memory");
        int rc =
            vrt_read_file(path, MAX_QCONFIG_BYTES, "a quantization config", 1, &text, NULL, err);
        free(path);
        if (rc == 1)
            continue;
        if (rc)
            return rc;
        rc = vrt_quant_config_parse(qc, text, files[i].name, files[i].gptq, files[i].awq, err);
        free(text);
        if (rc || qc->method != VRT_QUANT_NONE || files[i].gptq || files[i].awq)
            return rc;
    }
    return 0;
}

bool vrt_quant_not_converted(const vrt_quant_config *qc, const char *module)
{
    for (int i = 0; i < qc->n_not_convert; i++)
        if (strstr(module, qc->not_convert[i]))
            return true;
    return false;
}

/* ---- reading tensors ------------------------------------------------------ */

int64_t vrt_q4_kp(int64_t K)
{
    return (K + VRT_Q4_KBLOCK - 1) / VRT_Q4_KBLOCK * VRT_Q4_KBLOCK;
}

static uint32_t rd32(const vrt_st_tensor *t, int64_t i)
{
    uint32_t v;
    memcpy(&v, (const uint8_t *)t->data + 4 * i, 4);
    return v;
}

/* prefix.suffix with shape [d0, d1] (ndim 2) or [d0] (ndim 1) and one of the
 * dtypes ok_dt (-1 ends the list). */
static int get_t(const vrt_checkpoint *ck, const char *ctx, const char *prefix, const char *suffix,
                 int ndim, int64_t d0, int64_t d1, const int *ok_dt, const vrt_st_tensor **out,
                 vrt_err *err)
{
    char name[512];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    int64_t shape[2] = {d0, d1};
    int rc = vrt_checkpoint_get(ck, name, ndim, shape, out, err);
    if (rc)
        return vrt_err_prefix(err, "%s: ", ctx);
    for (int i = 0; ok_dt[i] >= 0; i++)
        if ((*out)->dtype == ok_dt[i])
            return 0;
    return vrt_err_set(err, VRT_EFORMAT, "%s: tensor %s has dtype %s, expected %s%s", ctx, name,
                       vrt_st_dtype_name((*out)->dtype), vrt_st_dtype_name(ok_dt[0]),
                       ok_dt[1] >= 0 ? " (or F32/BF16)" : "");
}

static int alloc_out(vrt_q4_host *h, int64_t N, int64_t K, int G, int ng, int with_perm,
                     vrt_err *err)
{
    memset(h, 0, sizeof *h);
    h->N = N;
    h->K = K;
    int64_t words = vrt_q4_kp(K) / 8;
    h->qweight = calloc((size_t)(N * words), 4);
    h->scales = malloc((size_t)(N * ng) * 2);
    h->zeros = malloc((size_t)(N * ng) * 2);
    h->perm = with_perm ? malloc((size_t)K * 4) : NULL;
    if (!h->qweight || !h->scales || !h->zeros || (with_perm && !h->perm)) {
        vrt_q4_host_free(h);
        return vrt_err_set(err, VRT_ENOMEM, "out of memory repacking a %lld x %lld int4 weight",
                           (long long)N, (long long)K);
    }
    h->desc = (vrt_q4){h->qweight, h->scales, h->zeros, h->perm, G >= K ? (int)K : G, ng};
    return 0;
}

void vrt_q4_host_free(vrt_q4_host *h)
{
    free(h->qweight);
    free(h->scales);
    free(h->zeros);
    free(h->perm);
    memset(h, 0, sizeof *h);
}

/* scales [ng][N] (F16, F32 or BF16) -> out [N][ng] fp16. */
static int transpose_scales(const vrt_st_tensor *t, int64_t N, int ng, uint16_t *out, vrt_err *err)
{
    uint16_t *tmp = malloc((size_t)(N * ng) * 2);
    if (!tmp)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    int rc = vrt_st_to_f16(t, tmp, NULL, err);
    for (int64_t n = 0; !rc && n < N; n++)
        for (int g = 0; g < ng; g++)
            out[n * ng + g] = tmp[(int64_t)g * N + n];
    free(tmp);
    return rc;
}

static const int DT_I32[] = {VRT_ST_I32, -1};
static const int DT_SCALE[] = {VRT_ST_F16, VRT_ST_F32, VRT_ST_BF16, -1};

/* ---- GPTQ ---------------------------------------------------------------- */

/* v1 or v2 for this checkpoint: the label, unless sym zeros say otherwise
 * (docs/formats.md §3.4: all zero nibbles 7 -> v1, all 8 -> v2). Decided by the
 * first layer and kept. */
static int gptq_zero_format(vrt_quant_config *qc, const vrt_st_tensor *qz, const char *name)
{
    if (qc->gptq_detected)
        return qc->gptq_detected;
    int f = qc->gptq_format;
    if (qc->sym) {
        int64_t n = (int64_t)vrt_st_numel(qz);
        int all7 = 1, all8 = 1;
        for (int64_t i = 0; i < n && (all7 || all8); i++) {
            uint32_t w = rd32(qz, i);
            all7 &= w == 0x77777777u;
            all8 &= w == 0x88888888u;
        }
        int seen = all7 ? VRT_GPTQ_V1 : all8 ? VRT_GPTQ_V2 : 0;
        if (seen && seen != f)
            VRT_WARN("%s: checkpoint_format says GPTQ %s but the symmetric zero points of %s are "
                     "all %d, which is the %s format: reading them as %s",
                     qc->source, f == VRT_GPTQ_V1 ? "v1 (\"gptq\")" : "v2 (\"gptq_v2\")", name,
                     seen == VRT_GPTQ_V1 ? 7 : 8, seen == VRT_GPTQ_V1 ? "v1" : "v2",
                     seen == VRT_GPTQ_V1 ? "v1" : "v2");
        if (seen)
            f = seen;
    }
    qc->gptq_detected = f;
    return f;
}

static int load_gptq(vrt_q4_host *out, const vrt_checkpoint *ck, const char *prefix, int64_t N,
                     int64_t K, vrt_quant_config *qc, const char *ctx, vrt_err *err)
{
    if (K % 8 || N % 8)
        return vrt_err_set(err, VRT_EFORMAT,
                           "%s: GPTQ packs 8 values per int32, so in_features (%lld) and "
                           "out_features (%lld) must be multiples of 8",
                           ctx, (long long)K, (long long)N);
    int64_t G = qc->group_size < 0 || qc->group_size >= K ? K : qc->group_size;
    int ng = (int)((K + G - 1) / G);
    const vrt_st_tensor *tq, *tz, *ts, *tg = NULL;
    int rc = get_t(ck, ctx, prefix, "qweight", 2, K / 8, N, DT_I32, &tq, err);
    if (!rc)
        rc = get_t(ck, ctx, prefix, "qzeros", 2, ng, N / 8, DT_I32, &tz, err);
    if (!rc)
        rc = get_t(ck, ctx, prefix, "scales", 2, ng, N, DT_SCALE, &ts, err);
    if (rc)
        return rc;
    char gname[512];
    snprintf(gname, sizeof gname, "%s.g_idx", prefix);
    if (vrt_checkpoint_find(ck, gname) &&
        (rc = get_t(ck, ctx, prefix, "g_idx", 1, K, 0, DT_I32, &tg, err)) != 0)
        return rc;
    if (!tg && qc->desc_act)
        return vrt_err_set(err, VRT_ENOENT,
                           "%s: desc_act is true in %s but tensor %s is missing (act-order "
                           "checkpoints record each input row's group there)",
                           ctx, qc->source, gname);
    /* Groups: sort the input rows by g_idx (stable), check every group has
     * G rows (the last one the rest). perm[i] = original row of position i. */
    int32_t *perm = malloc((size_t)K * 4);
    int64_t *count = calloc((size_t)ng + 1, sizeof *count);
    if (!perm || !count) {
        free(perm);
        free(count);
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    }
    int identity = 1;
    for (int64_t k = 0; k < K && !rc; k++) {
        int64_t g = tg ? (int32_t)rd32(tg, k) : k / G;
        if (g < 0 || g >= ng)
            rc = vrt_err_set(err, VRT_EFORMAT,
                             "%s: tensor %s: g_idx[%lld] = %lld is out of range: there are %d "
                             "groups (0..%d) of %lld rows",
                             ctx, gname, (long long)k, (long long)g, ng, ng - 1, (long long)G);
        else
            count[g + 1]++;
        identity &= g == k / G;
    }
    for (int g = 0; g < ng && !rc; g++) {
        int64_t want = g < ng - 1 ? G : K - G * (ng - 1);
        if (count[g + 1] != want)
            rc = vrt_err_set(err, VRT_EFORMAT,
                             "%s: tensor %s puts %lld input rows in group %d, expected %lld "
                             "(group_size %d in %s); the groups of an act-order checkpoint are "
                             "group_size rows each",
                             ctx, gname, (long long)count[g + 1], g, (long long)want,
                             qc->group_size, qc->source);
    }
    if (!rc && !identity) {
        for (int g = 0; g < ng; g++)
            count[g + 1] += count[g];
        for (int64_t k = 0; k < K; k++)
            perm[count[(int32_t)rd32(tg, k)]++] = (int32_t)k;
    }
    free(count);
    if (!rc)
        rc = alloc_out(out, N, K, (int)G, ng, !identity, err);
    if (rc) {
        free(perm);
        return rc;
    }
    if (!identity)
        memcpy(out->perm, perm, (size_t)K * 4);
    /* inv[r] = position of original row r */
    int32_t *inv = perm;
    for (int64_t k = 0; k < K; k++)
        inv[k] = (int32_t)k;
    if (!identity)
        for (int64_t k = 0; k < K; k++)
            inv[out->perm[k]] = (int32_t)k;
    const int64_t words = vrt_q4_kp(K) / 8;
    for (int64_t w = 0; w < K / 8; w++)
        for (int64_t n = 0; n < N; n++) {
            uint32_t v = rd32(tq, w * N + n);
            uint32_t *row = out->qweight + n * words;
            for (int j = 0; j < 8; j++) {
                int64_t k = inv[8 * w + j];
                row[k / 8] |= ((v >> (4 * j)) & 15u) << (4 * (k % 8));
            }
        }
    free(perm);
    int fmt = gptq_zero_format(qc, tz, tz->name);
    for (int g = 0; g < ng; g++)
        for (int64_t n = 0; n < N; n++) {
            uint32_t zs = (rd32(tz, (int64_t)g * (N / 8) + n / 8) >> (4 * (n % 8))) & 15u;
            /* v1: zero + 1 after masking (vLLM gptq_gemm, docs/formats.md §3.4): a
             * stored 0xF is 16 */
            uint32_t z = fmt == VRT_GPTQ_V1 ? zs + 1 : zs;
            out->zeros[n * ng + g] = vrt_f32_to_f16((float)z);
        }
    return transpose_scales(ts, N, ng, out->scales, err);
}

/* ---- AWQ ----------------------------------------------------------------- */

static int load_awq(vrt_q4_host *out, const vrt_checkpoint *ck, const char *prefix, int64_t N,
                    int64_t K, vrt_quant_config *qc, const char *ctx, vrt_err *err)
{
    if (N % 8)
        return vrt_err_set(err, VRT_EFORMAT,
                           "%s: AWQ packs 8 output columns per int32, so out_features (%lld) "
                           "must be a multiple of 8",
                           ctx, (long long)N);
    int64_t G = qc->group_size < 0 || qc->group_size >= K ? K : qc->group_size;
    if (K % G)
        return vrt_err_set(err, VRT_EFORMAT,
                           "%s: in_features %lld is not a multiple of group_size %lld (%s); AWQ "
                           "groups must tile the input",
                           ctx, (long long)K, (long long)G, qc->source);
    int ng = (int)(K / G);
    const vrt_st_tensor *tq, *tz, *ts;
    int rc = get_t(ck, ctx, prefix, "qweight", 2, K, N / 8, DT_I32, &tq, err);
    if (!rc)
        rc = get_t(ck, ctx, prefix, "qzeros", 2, ng, N / 8, DT_I32, &tz, err);
    if (!rc)
        rc = get_t(ck, ctx, prefix, "scales", 2, ng, N, DT_SCALE, &ts, err);
    if (!rc)
        rc = alloc_out(out, N, K, (int)G, ng, 0, err);
    if (rc)
        return rc;
    const int64_t words = vrt_q4_kp(K) / 8, nc = N / 8;
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < nc; c++) {
            uint32_t v = rd32(tq, k * nc + c);
            for (int j = 0; j < 8; j++) {
                uint32_t q = (v >> (4 * AWQ_REV[j])) & 15u;
                out->qweight[(8 * c + j) * words + k / 8] |= q << (4 * (k % 8));
            }
        }
    for (int g = 0; g < ng; g++)
        for (int64_t c = 0; c < nc; c++) {
            uint32_t v = rd32(tz, (int64_t)g * nc + c);
            for (int j = 0; j < 8; j++)
                out->zeros[(8 * c + j) * ng + g] =
                    vrt_f32_to_f16((float)((v >> (4 * AWQ_REV[j])) & 15u));
        }
    return transpose_scales(ts, N, ng, out->scales, err);
}

int vrt_q4_load(vrt_q4_host *out, const vrt_checkpoint *ck, const char *prefix, int64_t N,
                int64_t K, vrt_quant_config *qc, vrt_err *err)
{
    memset(out, 0, sizeof *out);
    char ctx[400];
    snprintf(ctx, sizeof ctx, "%s 4-bit linear %.300s (in_features %lld, out_features %lld)",
             qc->method == VRT_QUANT_AWQ ? "AWQ" : "GPTQ", prefix, (long long)K, (long long)N);
    if (N <= 0 || K <= 0 || N > INT32_MAX || K > INT32_MAX)
        return vrt_err_set(err, VRT_EINVAL, "%s: bad shape", ctx);
    int rc;
    if (qc->method == VRT_QUANT_GPTQ)
        rc = load_gptq(out, ck, prefix, N, K, qc, ctx, err);
    else if (qc->method == VRT_QUANT_AWQ)
        rc = load_awq(out, ck, prefix, N, K, qc, ctx, err);
    else
        rc = vrt_err_set(err, VRT_EINVAL, "%s: the checkpoint is not quantized", ctx);
    if (rc)
        vrt_q4_host_free(out);
    return rc;
}

void vrt_q4_dequant(const vrt_q4 *q, int64_t N, int64_t K, float *W)
{
    const int64_t words = vrt_q4_kp(K) / 8;
    const int64_t G = q->group_size >= K ? K : q->group_size;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            int64_t g = k / G;
            float s = vrt_f16_to_f32(q->scales[n * q->n_groups + g]);
            float z = vrt_f16_to_f32(q->zeros[n * q->n_groups + g]);
            float v = (float)((q->qweight[n * words + k / 8] >> (4 * (k % 8))) & 15u);
            W[n * K + (q->perm ? q->perm[k] : k)] = (v - z) * s;
        }
}

/* ---- packers ------------------------------------------------------------- */

int vrt_gptq_pack(const uint8_t *q, const uint8_t *z, int64_t N, int64_t K, int ng, int format,
                  uint32_t *qweight, uint32_t *qzeros, vrt_err *err)
{
    if (K % 8 || N % 8 || ng <= 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "gptq pack: K = %lld and N = %lld must be multiples "
                           "of 8",
                           (long long)K, (long long)N);
    memset(qweight, 0, (size_t)(K / 8 * N) * 4);
    memset(qzeros, 0, (size_t)(ng * (N / 8)) * 4);
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++)
            qweight[(k / 8) * N + n] |= (uint32_t)(q[n * K + k] & 15u) << (4 * (k % 8));
    for (int g = 0; g < ng; g++)
        for (int64_t n = 0; n < N; n++) {
            int v = z[(int64_t)g * N + n];
            if (format == VRT_GPTQ_V1)
                v -= 1; /* AutoGPTQ stores zero - 1 */
            if (v < 0 || v > 15)
                return vrt_err_set(err, VRT_ERANGE,
                                   "gptq pack: zero point %d of group %d column %lld cannot be "
                                   "stored in the %s format",
                                   z[(int64_t)g * N + n], g, (long long)n,
                                   format == VRT_GPTQ_V1 ? "v1" : "v2");
            qzeros[(int64_t)g * (N / 8) + n / 8] |= (uint32_t)v << (4 * (n % 8));
        }
    return 0;
}

int vrt_awq_pack(const uint8_t *q, const uint8_t *z, int64_t N, int64_t K, int ng,
                 uint32_t *qweight, uint32_t *qzeros, vrt_err *err)
{
    if (N % 8 || ng <= 0)
        return vrt_err_set(err, VRT_EINVAL, "awq pack: N = %lld must be a multiple of 8",
                           (long long)N);
    const int64_t nc = N / 8;
    memset(qweight, 0, (size_t)(K * nc) * 4);
    memset(qzeros, 0, (size_t)(ng * nc) * 4);
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++)
            qweight[k * nc + n / 8] |= (uint32_t)(q[n * K + k] & 15u) << (4 * AWQ_REV[n % 8]);
    for (int g = 0; g < ng; g++)
        for (int64_t n = 0; n < N; n++)
            qzeros[(int64_t)g * nc + n / 8] |= (uint32_t)(z[(int64_t)g * N + n] & 15u)
                                               << (4 * AWQ_REV[n % 8]);
    return 0;
}
