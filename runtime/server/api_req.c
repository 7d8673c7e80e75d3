/* api_req.c — parse and validate TGI / OpenAI request bodies (see api_req.h).
 *
 * Messages follow the servers v100rt stands in for: TGI's router
 * (router/src/validation.rs: "`top_p` must be > 0.0 and < 1.0", ...) for the
 * TGI routes, vLLM's SamplingParams / protocol checks ("top_p must be in
 * (0, 1], got 0.0.") for the OpenAI routes.
 */
#include "server/api_req.h"

#include "core/err.h"

#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TGI's max_new_tokens when the client gives none (see the report in the
 * commit: recent TGI computes min(max_total - input, 1024) instead; use
 * vrt_api_check_limits' auto mode by setting this to 0). */
#define TGI_DEFAULT_MAX_NEW_TOKENS 100
/* OpenAI's legacy completions default. */
#define OAI_COMPLETIONS_DEFAULT_MAX_TOKENS 16
/* TGI caps the automatic max_new_tokens (DEFAULT_GENERATION_LENGTH). */
#define TGI_AUTO_CAP 1024

int vrt_api_is_openai(int api_kind)
{
    return api_kind == VRT_API_OAI_COMPLETIONS || api_kind == VRT_API_OAI_CHAT;
}

/* ---- UTF-8 ------------------------------------------------------------- */

/* Length of the valid sequence at s[0..n), or 0 when it is invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int vrt_api_utf8_valid(const char *s, size_t n, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_seq(u + i, n - i);
        if (!l) {
            if (bad)
                *bad = i;
            return 0;
        }
        i += l;
    }
    return 1;
}

char *vrt_api_utf8_sanitize(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    char *out = malloc(n * 3 + 1); /* each bad byte becomes 3 bytes at most */
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    while (i < n) {
        size_t l = u[i] ? utf8_seq(u + i, n - i) : 0;
        if (l) {
            memcpy(out + o, s + i, l);
            o += l;
            i += l;
        } else {
            /* One U+FFFD per bad byte: simple, and never merges a bad byte
             * with the valid character after it. */
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

/* ---- errors ------------------------------------------------------------ */

static int error_setv(vrt_api_error *e, int api, int status, const char *param, const char *fmt,
                      va_list ap)
{
    if (!e)
        return VRT_EINVAL;
    int oai = vrt_api_is_openai(api);
    e->status = status ? status : (oai ? 400 : 422);
    snprintf(e->type, sizeof e->type, "%s", oai ? "invalid_request_error" : "validation");
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    return VRT_EINVAL;
}

int vrt_api_error_set(vrt_api_error *e, int api_kind, int status, const char *param,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = error_setv(e, api_kind, status, param, fmt, ap);
    va_end(ap);
    return rc;
}

int vrt_api_model_name(const vrt_api_models *m, int api_kind, const char *requested,
                       const char **reported, vrt_api_error *e)
{
    *reported = m->names[0];
    if (!requested || !*requested)
        return 0;
    for (int i = 0; i < m->n_names; i++)
        if (strcmp(requested, m->names[i]) == 0) {
            *reported = m->names[i];
            return 0;
        }
    for (int i = 0; i < 2; i++)
        if (m->paths[i] && strcmp(requested, m->paths[i]) == 0)
            return 0;
    if (!m->strict)
        return 0;
    char list[512] = "";
    size_t at = 0;
    for (int i = 0; i < m->n_names && at < sizeof list; i++) {
        int w = snprintf(list + at, sizeof list - at, "%s`%s`", i ? ", " : "", m->names[i]);
        if (w < 0)
            break;
        at += (size_t)w;
    }
    vrt_api_error_set(e, api_kind, 404, "model",
                      "The model `%s` does not exist. Served: %s (server.strict_model_name = "
                      "true)",
                      requested, list);
    snprintf(e->type, sizeof e->type, "NotFoundError");
    return VRT_ENOENT;
}

char *vrt_api_error_body(int api_kind, const vrt_api_error *e)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    char *msg = vrt_api_utf8_sanitize(e->msg, strlen(e->msg));
    if (!msg) {
        cJSON_Delete(root);
        return NULL;
    }
    if (vrt_api_is_openai(api_kind)) {
        cJSON *err = cJSON_AddObjectToObject(root, "error");
        if (err) {
            cJSON_AddStringToObject(err, "message", msg);
            cJSON_AddStringToObject(err, "type", e->type[0] ? e->type : "invalid_request_error");
            if (e->param[0])
                cJSON_AddStringToObject(err, "param", e->param);
            else
                cJSON_AddNullToObject(err, "param");
            cJSON_AddNullToObject(err, "code");
        }
    } else {
        cJSON_AddStringToObject(root, "error", msg);
        cJSON_AddStringToObject(root, "error_type", e->type[0] ? e->type : "validation");
    }
    free(msg);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* ---- field readers ----------------------------------------------------- */

typedef struct pctx {
    int api;
    vrt_api_error *e;
    const char *prefix; /* "parameters." inside TGI's parameters object */
} pctx;

static const char *jtype(const cJSON *j)
{
    if (cJSON_IsString(j))
        return "string";
    if (cJSON_IsNumber(j))
        return "number";
    if (cJSON_IsBool(j))
        return "boolean";
    if (cJSON_IsArray(j))
        return "array";
    if (cJSON_IsObject(j))
        return "object";
    return "null";
}

static int type_err(pctx *c, const char *name, const cJSON *j, const char *expected)
{
    if (vrt_api_is_openai(c->api))
        return vrt_api_error_set(c->e, c->api, 400, name, "`%s` must be %s (got %s)", name,
                                 expected, jtype(j));
    return vrt_api_error_set(c->e, c->api, 422, name,
                             "Failed to deserialize the JSON body into the target type: %s%s: "
                             "invalid type: %s, expected %s",
                             c->prefix, name, jtype(j), expected);
}

/* Each reader returns 0 when the field is absent or null, 1 when it set
 * *out, or a negative error. */
static const cJSON *field(const cJSON *obj, const char *name)
{
    const cJSON *j = obj ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;
    return (j && !cJSON_IsNull(j)) ? j : NULL;
}

static int get_bool(pctx *c, const cJSON *obj, const char *name, int *out)
{
    const cJSON *j = field(obj, name);
    if (!j)
        return 0;
    if (!cJSON_IsBool(j))
        return type_err(c, name, j, "a boolean");
    *out = cJSON_IsTrue(j) ? 1 : 0;
    return 1;
}

static int get_num(pctx *c, const cJSON *obj, const char *name, double *out)
{
    const cJSON *j = field(obj, name);
    if (!j)
        return 0;
    if (!cJSON_IsNumber(j))
        return type_err(c, name, j, "a number");
    *out = j->valuedouble;
    return 1;
}

/* An integer in [lo, hi] (the JSON type's range: u32, i32, u64...). */
static int get_int(pctx *c, const cJSON *obj, const char *name, double lo, double hi,
                   long long *out)
{
    const cJSON *j = field(obj, name);
    if (!j)
        return 0;
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble))
        return type_err(c, name, j, "an integer");
    if (j->valuedouble < lo || j->valuedouble > hi) {
        if (vrt_api_is_openai(c->api))
            return vrt_api_error_set(c->e, c->api, 400, name,
                                     "`%s` must be an integer in [%.0f, %.0f] (got %.0f)", name, lo,
                                     hi, j->valuedouble);
        return vrt_api_error_set(c->e, c->api, 422, name,
                                 "Failed to deserialize the JSON body into the target type: "
                                 "%s%s: invalid value: integer `%.0f`, expected an integer in "
                                 "[%.0f, %.0f]",
                                 c->prefix, name, j->valuedouble, lo, hi);
    }
    *out = (long long)j->valuedouble;
    return 1;
}

/* A seed: any integer that fits u64 (negative ones, which vLLM allows,
 * wrap). JSON numbers past 2^53 arrive rounded (cJSON keeps doubles). */
static int get_seed(pctx *c, const cJSON *obj, uint64_t *out)
{
    const cJSON *j = field(obj, "seed");
    if (!j)
        return 0;
    double d = j->valuedouble;
    if (!cJSON_IsNumber(j) || d != floor(d))
        return type_err(c, "seed", j, "an integer");
    if (d < (vrt_api_is_openai(c->api) ? -9223372036854775808.0 : 0.0) ||
        d >= 18446744073709551616.0)
        return vrt_api_error_set(
            c->e, c->api, 0, "seed",
            "`seed` must be an integer in [0, 18446744073709551615] (got %.0f)", d);
    *out = d < 0 ? (uint64_t)(int64_t)d : (uint64_t)d;
    return 1;
}

static int get_str(pctx *c, const cJSON *obj, const char *name, const char **out)
{
    const cJSON *j = field(obj, name);
    if (!j)
        return 0;
    if (!cJSON_IsString(j))
        return type_err(c, name, j, "a string");
    *out = j->valuestring;
    return 1;
}

/* ---- owned storage ----------------------------------------------------- */

static const char *own(vrt_api_request *r, const char *s, size_t n)
{
    if (r->n_owned == r->cap_owned) {
        int cap = r->cap_owned ? r->cap_owned * 2 : 16;
        char **p = realloc(r->owned, (size_t)cap * sizeof *p);
        if (!p)
            return NULL;
        r->owned = p;
        r->cap_owned = cap;
    }
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    r->owned[r->n_owned++] = d;
    return d;
}

/* Uninitialized owned storage of n bytes. */
static void *own_alloc(vrt_api_request *r, size_t n)
{
    if (r->n_owned == r->cap_owned) {
        int cap = r->cap_owned ? r->cap_owned * 2 : 16;
        char **p = realloc(r->owned, (size_t)cap * sizeof *p);
        if (!p)
            return NULL;
        r->owned = p;
        r->cap_owned = cap;
    }
    char *d = malloc(n ? n : 1);
    if (d)
        r->owned[r->n_owned++] = d;
    return d;
}

static int oom(pctx *c)
{
    vrt_api_error_set(c->e, c->api, 500, NULL, "out of memory");
    return VRT_ENOMEM;
}

/* "stop": a list of strings (TGI), or a string or a list (OpenAI). */
static int get_stop(pctx *c, vrt_api_request *r, const cJSON *obj)
{
    const cJSON *j = field(obj, "stop");
    if (!j)
        return 0;
    int oai = vrt_api_is_openai(c->api);
    int n;
    if (cJSON_IsString(j) && oai)
        n = 1;
    else if (cJSON_IsArray(j))
        n = cJSON_GetArraySize(j);
    else
        return type_err(c, "stop", j, oai ? "a string or a list of strings" : "a sequence");
    if (n > VRT_API_MAX_STOP)
        return vrt_api_error_set(c->e, c->api, 0, "stop",
                                 oai ? "`stop` supports up to %d stop sequences. Given: %d"
                                     : "`stop` supports up to %d stop sequences. Given: %d",
                                 VRT_API_MAX_STOP, n);
    r->stop_strs = calloc((size_t)(n ? n : 1), sizeof *r->stop_strs);
    if (!r->stop_strs)
        return oom(c);
    int k = 0;
    if (cJSON_IsString(j)) {
        if (j->valuestring[0]) {
            if (!(r->stop_strs[k++] = own(r, j->valuestring, strlen(j->valuestring))))
                return oom(c);
        }
    } else {
        const cJSON *it;
        cJSON_ArrayForEach(it, j)
        {
            if (!cJSON_IsString(it))
                return type_err(c, "stop", it, "a string in the list");
            if (!it->valuestring[0]) /* an empty stop string would stop at once */
                continue;
            if (!(r->stop_strs[k++] = own(r, it->valuestring, strlen(it->valuestring))))
                return oom(c);
        }
    }
    r->params.stop = r->stop_strs;
    r->params.n_stop = k;
    return 1;
}

/* ---- TGI ----------------------------------------------------------------- */

static int parse_tgi(pctx *c, vrt_api_request *r, const cJSON *root)
{
    const char *inputs = NULL;
    int rc = get_str(c, root, "inputs", &inputs);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return vrt_api_error_set(c->e, c->api, 422, "inputs",
                                 "Failed to deserialize the JSON body into the target type: "
                                 "missing field `inputs`");
    if (c->api == VRT_API_TGI_COMPAT && (rc = get_bool(c, root, "stream", &r->stream)) < 0)
        return rc;
    if (c->api == VRT_API_TGI_GENERATE_STREAM)
        r->stream = 1;

    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    if (p && cJSON_IsNull(p))
        p = NULL;
    if (p && !cJSON_IsObject(p))
        return type_err(c, "parameters", p, "struct GenerateParameters");
    c->prefix = "parameters.";
    vrt_sampling_params *s = &r->params.sampling;
    long long v;
    double d;

    if ((rc = get_int(c, p, "best_of", 0, 4294967295.0, &v)) < 0)
        return rc;
    if (rc && v != 1)
        return vrt_api_error_set(c->e, c->api, 422, "best_of",
                                 r->stream ? "`best_of` != 1 is not supported when streaming tokens"
                                           : "`best_of` != 1 is not allowed for this endpoint");
    int temp_set = 0;
    if ((rc = get_num(c, p, "temperature", &d)) < 0)
        return rc;
    if (rc) {
        if (!(d > 0.0))
            return vrt_api_error_set(c->e, c->api, 422, "temperature",
                                     "`temperature` must be strictly positive");
        s->temperature = (float)d;
        temp_set = 1;
    }
    if ((rc = get_num(c, p, "repetition_penalty", &d)) < 0)
        return rc;
    if (rc) {
        if (!(d > 0.0))
            return vrt_api_error_set(c->e, c->api, 422, "repetition_penalty",
                                     "`repetition_penalty` must be strictly positive");
        s->repetition_penalty = (float)d;
    }
    if ((rc = get_num(c, p, "frequency_penalty", &d)) < 0)
        return rc;
    if (rc) {
        if (!(d >= -2.0 && d <= 2.0))
            return vrt_api_error_set(c->e, c->api, 422, "frequency_penalty",
                                     "`frequency_penalty` must be >= -2.0 and <= 2.0");
        s->frequency_penalty = (float)d;
    }
    if ((rc = get_num(c, p, "top_p", &d)) < 0)
        return rc;
    if (rc) {
        if (!(d > 0.0 && d < 1.0))
            return vrt_api_error_set(c->e, c->api, 422, "top_p", "`top_p` must be > 0.0 and < 1.0");
        s->top_p = (float)d;
    }
    if ((rc = get_num(c, p, "typical_p", &d)) < 0)
        return rc;
    if (rc) {
        if (!(d > 0.0 && d < 1.0))
            return vrt_api_error_set(c->e, c->api, 422, "typical_p",
                                     "`typical_p` must be > 0.0 and < 1.0");
        s->typical_p = (float)d;
    }
    if ((rc = get_int(c, p, "top_k", -2147483648.0, 2147483647.0, &v)) < 0)
        return rc;
    if (rc) {
        if (v <= 0)
            return vrt_api_error_set(c->e, c->api, 422, "top_k",
                                     "`top_k` must be strictly positive");
        s->top_k = (int)v;
    }
    if ((rc = get_bool(c, p, "do_sample", &s->do_sample)) < 0)
        return rc;
    /* TGI's server samples when do_sample is set or any warper is active
     * (text_generation_server NextTokenChooser: has_warpers). */
    if ((temp_set && s->temperature != 1.0f) || s->top_k > 0 || s->top_p < 1.0f ||
        s->typical_p < 1.0f)
        s->do_sample = 1;

    if ((rc = get_int(c, p, "max_new_tokens", 0, 4294967295.0, &v)) < 0)
        return rc;
    if (rc) {
        if (v == 0)
            return vrt_api_error_set(c->e, c->api, 422, "max_new_tokens",
                                     "`max_new_tokens` must be strictly positive");
        r->params.max_new_tokens = v > 2147483647LL ? 2147483647 : (int)v;
    } else {
        r->params.max_new_tokens = TGI_DEFAULT_MAX_NEW_TOKENS;
    }
    if ((rc = get_stop(c, r, p)) < 0)
        return rc;
    if ((rc = get_int(c, p, "truncate", 0, 4294967295.0, &v)) < 0)
        return rc;
    if (rc) {
        if (v == 0)
            return vrt_api_error_set(c->e, c->api, 422, "truncate",
                                     "`truncate` must be strictly positive and less than "
                                     "max_input_tokens. Given: 0");
        r->truncate = v > 2147483647LL ? 2147483647 : (int)v;
    }
    if ((rc = get_seed(c, p, &s->seed)) < 0)
        return rc;
    r->seed_set = rc;
    int watermark = 0;
    if ((rc = get_bool(c, p, "watermark", &watermark)) < 0)
        return rc;
    if (watermark)
        return vrt_api_error_set(c->e, c->api, 422, "watermark", "`watermark` is not supported");
    if (field(p, "grammar"))
        return vrt_api_error_set(c->e, c->api, 422, "grammar", "grammar is not supported");
    if ((rc = get_bool(c, p, "details", &r->details)) < 0)
        return rc;
    if ((rc = get_bool(c, p, "decoder_input_details", &r->decoder_input_details)) < 0)
        return rc;
    if (r->decoder_input_details && r->stream)
        return vrt_api_error_set(
            c->e, c->api, 422, "decoder_input_details",
            "`decoder_input_details` == true is not supported when streaming tokens");
    r->params.prompt_logprobs = r->decoder_input_details && r->details;
    if ((rc = get_bool(c, p, "return_full_text", &r->return_full_text)) < 0)
        return rc;
    if ((rc = get_int(c, p, "top_n_tokens", 0, 4294967295.0, &v)) < 0)
        return rc;
    if (rc) {
        if (v > VRT_SAMPLE_MAX_LOGPROBS)
            return vrt_api_error_set(c->e, c->api, 422, "top_n_tokens",
                                     "`top_n_tokens` must be >= 0 and <= %d. Given: %lld",
                                     VRT_SAMPLE_MAX_LOGPROBS, v);
        r->top_n_tokens = (int)v;
        s->n_logprobs = (int)v;
    }
    c->prefix = "";
    if (!inputs[0])
        return vrt_api_error_set(c->e, c->api, 422, "inputs", "`inputs` cannot be empty");
    if (!(r->prompt = own(r, inputs, strlen(inputs))))
        return oom(c);
    return 0;
}

/* ---- OpenAI -------------------------------------------------------------- */

/* The content of a chat message: a string, null, or a list of parts of
 * which only {"type": "text", "text": ...} is supported (joined with "\n"
 * as vLLM does). */
static int message_content(pctx *c, vrt_api_request *r, const cJSON *m, int i, const char **out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!j || cJSON_IsNull(j)) {
        *out = "";
        return 0;
    }
    if (cJSON_IsString(j)) {
        if (!(*out = own(r, j->valuestring, strlen(j->valuestring))))
            return oom(c);
        return 0;
    }
    if (!cJSON_IsArray(j))
        return vrt_api_error_set(c->e, c->api, 400, "messages",
                                 "`messages[%d].content` must be a string or a list of content "
                                 "parts (got %s)",
                                 i, jtype(j));
    size_t total = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, j)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type) ||
            strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text))
            return vrt_api_error_set(c->e, c->api, 400, "messages",
                                     "`messages[%d].content`: only content parts of type "
                                     "\"text\" with a string \"text\" are supported",
                                     i);
        total += strlen(text->valuestring) + 1;
    }
    char *buf = malloc(total + 1);
    if (!buf)
        return oom(c);
    size_t o = 0;
    int k = 0;
    cJSON_ArrayForEach(part, j)
    {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        if (k++)
            buf[o++] = '\n';
        memcpy(buf + o, t, strlen(t));
        o += strlen(t);
    }
    *out = own(r, buf, o);
    free(buf);
    return *out ? 0 : oom(c);
}

static int parse_messages(pctx *c, vrt_api_request *r, const cJSON *root)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!j || cJSON_IsNull(j))
        return vrt_api_error_set(c->e, c->api, 400, "messages", "`messages` is required");
    if (!cJSON_IsArray(j))
        return type_err(c, "messages", j, "a list of messages");
    int n = cJSON_GetArraySize(j);
    if (n == 0)
        return vrt_api_error_set(c->e, c->api, 400, "messages",
                                 "`messages` must contain at least one message");
    r->messages = calloc((size_t)n, sizeof *r->messages);
    if (!r->messages)
        return oom(c);
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, j)
    {
        if (!cJSON_IsObject(m))
            return vrt_api_error_set(c->e, c->api, 400, "messages",
                                     "`messages[%d]` must be an object (got %s)", i, jtype(m));
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role))
            return vrt_api_error_set(c->e, c->api, 400, "messages",
                                     "`messages[%d].role` must be a string", i);
        if (!(r->messages[i].role = own(r, role->valuestring, strlen(role->valuestring))))
            return oom(c);
        int rc = message_content(c, r, m, i, &r->messages[i].content);
        if (rc)
            return rc;
        r->n_messages = ++i;
    }
    return 0;
}

/* A list of token ids. */
static int parse_ids(pctx *c, vrt_api_request *r, const cJSON *arr)
{
    int n = cJSON_GetArraySize(arr);
    r->prompt_ids = malloc((size_t)(n ? n : 1) * sizeof *r->prompt_ids);
    if (!r->prompt_ids)
        return oom(c);
    const cJSON *it;
    int k = 0;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
            it->valuedouble < 0 || it->valuedouble > 2147483647.0)
            return vrt_api_error_set(c->e, c->api, 400, "prompt",
                                     "`prompt` token ids must be non-negative integers (item %d)",
                                     k);
        r->prompt_ids[k++] = (int32_t)it->valuedouble;
    }
    r->n_prompt_ids = k;
    return 0;
}

static int parse_prompt(pctx *c, vrt_api_request *r, const cJSON *root)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!j || cJSON_IsNull(j))
        return vrt_api_error_set(c->e, c->api, 400, "prompt", "`prompt` is required");
    if (cJSON_IsArray(j)) {
        int n = cJSON_GetArraySize(j);
        const cJSON *first = cJSON_GetArrayItem(j, 0);
        if (n == 0)
            return vrt_api_error_set(c->e, c->api, 400, "prompt", "`prompt` cannot be empty");
        if (cJSON_IsNumber(first)) {
            int rc = parse_ids(c, r, j);
            if (rc)
                return rc;
        } else {
            if (n != 1)
                return vrt_api_error_set(c->e, c->api, 400, "prompt",
                                         "only one prompt per request is supported (got %d); "
                                         "send one request per prompt",
                                         n);
            if (cJSON_IsArray(first)) {
                if (cJSON_GetArraySize(first) == 0)
                    return vrt_api_error_set(c->e, c->api, 400, "prompt",
                                             "`prompt` cannot be empty");
                int rc = parse_ids(c, r, first);
                if (rc)
                    return rc;
            } else if (cJSON_IsString(first)) {
                j = first;
            } else {
                return type_err(c, "prompt", first,
                                "a string, a list of one string, or a list of token ids");
            }
        }
    } else if (!cJSON_IsString(j)) {
        return type_err(c, "prompt", j, "a string, a list of one string, or a list of token ids");
    }
    if (cJSON_IsString(j)) {
        if (!j->valuestring[0])
            return vrt_api_error_set(c->e, c->api, 400, "prompt", "`prompt` cannot be empty");
        if (!(r->prompt = own(r, j->valuestring, strlen(j->valuestring))))
            return oom(c);
    }
    return 0;
}

/* vLLM's wording: "x must be in [a, b], got v." */
#define OAI_RANGE(name, cond, fmt, ...)                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return vrt_api_error_set(c->e, c->api, 400, name, fmt, __VA_ARGS__);                   \
    } while (0)

static int parse_oai(pctx *c, vrt_api_request *r, const cJSON *root)
{
    int chat = c->api == VRT_API_OAI_CHAT;
    int rc = chat ? parse_messages(c, r, root) : parse_prompt(c, r, root);
    if (rc)
        return rc;
    vrt_sampling_params *s = &r->params.sampling;
    long long v;
    double d;
    const char *str;

    if ((rc = get_str(c, root, "model", &str)) < 0)
        return rc;
    if (rc && !(r->model = own(r, str, strlen(str))))
        return oom(c);
    if ((rc = get_str(c, root, "user", &str)) < 0)
        return rc;
    if (rc && !(r->user = own(r, str, strlen(str))))
        return oom(c);
    if ((rc = get_bool(c, root, "stream", &r->stream)) < 0)
        return rc;
    const cJSON *so = field(root, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so))
            return type_err(c, "stream_options", so, "an object");
        if (!r->stream)
            return vrt_api_error_set(c->e, c->api, 400, "stream_options",
                                     "Stream options can only be defined when `stream=True`.");
        if ((rc = get_bool(c, so, "include_usage", &r->include_usage)) < 0)
            return rc;
    }

    /* max_tokens; chat also takes max_completion_tokens (preferred). */
    r->params.max_new_tokens = chat ? 0 : OAI_COMPLETIONS_DEFAULT_MAX_TOKENS;
    const char *mt_name = "max_tokens";
    if ((rc = get_int(c, root, "max_tokens", -2147483648.0, 2147483647.0, &v)) < 0)
        return rc;
    if (chat) {
        long long v2;
        int rc2 = get_int(c, root, "max_completion_tokens", -2147483648.0, 2147483647.0, &v2);
        if (rc2 < 0)
            return rc2;
        if (rc2) {
            rc = 1;
            v = v2;
            mt_name = "max_completion_tokens";
        }
    }
    if (rc) {
        OAI_RANGE(mt_name, v >= 1, "%s must be at least 1, got %lld.", mt_name, v);
        r->params.max_new_tokens = (int)v;
    }

    s->do_sample = 1; /* OpenAI samples at temperature 1 by default */
    if ((rc = get_num(c, root, "temperature", &d)) < 0)
        return rc;
    if (rc) {
        OAI_RANGE("temperature", d >= 0.0, "temperature must be non-negative, got %g.", d);
        if (d < 1e-5) { /* vLLM's _SAMPLING_EPS: greedy */
            s->do_sample = 0;
            s->temperature = 1.0f;
        } else {
            s->temperature = (float)d;
        }
    }
    if ((rc = get_num(c, root, "top_p", &d)) < 0)
        return rc;
    if (rc) {
        OAI_RANGE("top_p", d > 0.0 && d <= 1.0, "top_p must be in (0, 1], got %g.", d);
        s->top_p = (float)d;
    }
    if ((rc = get_int(c, root, "top_k", -2147483648.0, 2147483647.0, &v)) < 0)
        return rc;
    if (rc) {
        OAI_RANGE("top_k", v >= -1, "top_k must be -1 or 0 (disable), or at least 1, got %lld.", v);
        s->top_k = v > 0 ? (int)v : 0;
    }
    if ((rc = get_num(c, root, "min_p", &d)) < 0)
        return rc;
    if (rc) {
        OAI_RANGE("min_p", d >= 0.0 && d <= 1.0, "min_p must be in [0, 1], got %g.", d);
        s->min_p = (float)d;
    }
    if ((rc = get_num(c, root, "presence_penalty", &d)) < 0)
        return rc;
    if (rc) {
        OAI_RANGE("presence_penalty", d >= -2.0 && d <= 2.0,
                  "presence_penalty must be in [-2, 2], got %g.", d);
        s->presence_penalty = (float)d;
    }
    if ((rc = get_num(c, root, "frequency_penalty", &d)) < 0)
        return rc;
    if (rc) {
        OAI_RANGE("frequency_penalty", d >= -2.0 && d <= 2.0,
                  "frequency_penalty must be in [-2, 2], got %g.", d);
        s->frequency_penalty = (float)d;
    }
    if ((rc = get_num(c, root, "repetition_penalty", &d)) < 0)
        return rc;
    if (rc) {
        OAI_RANGE("repetition_penalty", d > 0.0,
                  "repetition_penalty must be greater than zero, "
                  "got %g.",
                  d);
        s->repetition_penalty = (float)d;
    }
    if ((rc = get_int(c, root, "n", -2147483648.0, 2147483647.0, &v)) < 0)
        return rc;
    if (rc) {
        OAI_RANGE("n", v >= 1, "n must be at least 1, got %lld.", v);
        OAI_RANGE("n", v <= 16, "n must be at most 16, got %lld.", v);
        r->n = (int)v;
    }
    if ((rc = get_int(c, root, "best_of", -2147483648.0, 2147483647.0, &v)) < 0)
        return rc;
    if (rc)
        OAI_RANGE("best_of", v == 1, "best_of must be 1: best_of is not supported, got %lld.", v);
    if ((rc = get_seed(c, root, &s->seed)) < 0)
        return rc;
    r->seed_set = rc;
    if ((rc = get_stop(c, r, root)) < 0)
        return rc;
    const cJSON *sti = field(root, "stop_token_ids");
    if (sti) {
        if (!cJSON_IsArray(sti))
            return type_err(c, "stop_token_ids", sti, "a list of token ids");
        int n = cJSON_GetArraySize(sti), k = 0;
        int32_t *ids = NULL;
        if (n > 0) {
            ids = own_alloc(r, (size_t)n * sizeof(int32_t));
            if (!ids)
                return oom(c);
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, sti)
        {
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
                it->valuedouble < 0 || it->valuedouble > 2147483647.0)
                return vrt_api_error_set(c->e, c->api, 400, "stop_token_ids",
                                         "`stop_token_ids` must be non-negative integers");
            ids[k++] = (int32_t)it->valuedouble;
        }
        r->params.stop_ids = ids;
        r->params.n_stop_ids = k;
    }

    if (chat) {
        if ((rc = get_bool(c, root, "add_generation_prompt", &r->add_generation_prompt)) < 0)
            return rc;
        int lp = 0;
        if ((rc = get_bool(c, root, "logprobs", &lp)) < 0)
            return rc;
        r->logprobs = lp ? 1 : -1;
        if ((rc = get_int(c, root, "top_logprobs", -2147483648.0, 2147483647.0, &v)) < 0)
            return rc;
        if (rc) {
            OAI_RANGE("top_logprobs", v >= 0 && v <= VRT_SAMPLE_MAX_LOGPROBS,
                      "top_logprobs must be in [0, %d], got %lld.", VRT_SAMPLE_MAX_LOGPROBS, v);
            OAI_RANGE("top_logprobs", lp || v == 0,
                      "when using `top_logprobs`, `logprobs` must be set to true.%s", "");
            r->top_logprobs = (int)v;
            s->n_logprobs = (int)v;
        }
    } else {
        if ((rc = get_int(c, root, "logprobs", -2147483648.0, 2147483647.0, &v)) < 0)
            return rc;
        if (rc) {
            OAI_RANGE("logprobs", v >= 0 && v <= VRT_SAMPLE_MAX_LOGPROBS,
                      "logprobs must be in [0, %d], got %lld.", VRT_SAMPLE_MAX_LOGPROBS, v);
            r->logprobs = (int)v;
            s->n_logprobs = (int)v;
        }
        if ((rc = get_bool(c, root, "echo", &r->echo)) < 0)
            return rc;
        r->params.prompt_logprobs = r->echo && r->logprobs >= 0;
    }

    if ((rc = get_int(c, root, "priority", -2147483648.0, 2147483647.0, &v)) < 0)
        return rc;
    if (rc)
        r->params.priority = (int)v;
    if ((rc = get_bool(c, root, "ignore_eos", &r->params.ignore_eos)) < 0)
        return rc;
    if ((rc = get_bool(c, root, "skip_special_tokens", &r->skip_special_tokens)) < 0)
        return rc;

    /* Features whose silent omission would give wrong answers. */
    const cJSON *tools = field(root, "tools");
    if (tools && (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) > 0))
        return vrt_api_error_set(c->e, c->api, 400, "tools", "`tools` is not supported");
    const cJSON *rf = field(root, "response_format");
    if (rf) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rf, "type");
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "text") != 0)
            return vrt_api_error_set(c->e, c->api, 400, "response_format",
                                     "`response_format` other than {\"type\": \"text\"} is not "
                                     "supported");
    }
    const cJSON *lb = field(root, "logit_bias");
    if (lb && (!cJSON_IsObject(lb) || lb->child))
        return vrt_api_error_set(c->e, c->api, 400, "logit_bias", "`logit_bias` is not supported");
    return 0;
}

/* ---- entry points -------------------------------------------------------- */

static void line_col(const char *body, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (body[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

int vrt_api_parse(vrt_api_request *r, int api_kind, const char *body, size_t len, vrt_api_error *e)
{
    vrt_api_error dummy;
    if (!e)
        e = &dummy;
    memset(e, 0, sizeof *e);
    if (!r)
        return vrt_api_error_set(e, api_kind, 500, NULL, "vrt_api_parse: no request");
    memset(r, 0, sizeof *r);
    r->api = api_kind;
    r->n = 1;
    r->params.sampling = vrt_sampling_params_default();
    r->logprobs = -1;
    r->skip_special_tokens = 1;
    r->add_generation_prompt = 1;
    if (api_kind < VRT_API_TGI_GENERATE || api_kind > VRT_API_OAI_CHAT)
        return vrt_api_error_set(e, VRT_API_TGI_GENERATE, 500, NULL, "unknown API kind %d",
                                 api_kind);
    int oai = vrt_api_is_openai(api_kind);
    const char *what = oai ? "" : "Failed to parse the request body as JSON: ";
    if (!body)
        len = 0;
    size_t bad = 0;
    if (!vrt_api_utf8_valid(body, len, &bad))
        return vrt_api_error_set(e, api_kind, 0, NULL,
                                 "%sthe request body is not valid UTF-8 (byte offset %zu)", what,
                                 bad);
    const char *end = NULL;
    cJSON *root = len ? cJSON_ParseWithLengthOpts(body, len, &end, 0) : NULL;
    if (root) {
        while (end < body + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (end < body + len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root) {
        size_t off = end && end >= body ? (size_t)(end - body) : len;
        int line, col;
        line_col(body ? body : "", off, &line, &col);
        return vrt_api_error_set(e, api_kind, 0, NULL, "%sinvalid JSON at line %d column %d%s",
                                 what, line, col,
                                 oai ? " (the request body must be a JSON object)" : "");
    }
    pctx c = {api_kind, e, ""};
    int rc;
    if (!cJSON_IsObject(root))
        rc = oai ? vrt_api_error_set(e, api_kind, 400, NULL,
                                     "the request body must be a JSON object (got %s)", jtype(root))
                 : vrt_api_error_set(e, api_kind, 422, NULL,
                                     "Failed to deserialize the JSON body into the target type: "
                                     "invalid type: %s, expected struct GenerateRequest",
                                     jtype(root));
    else if (oai)
        rc = parse_oai(&c, r, root);
    else
        rc = parse_tgi(&c, r, root);
    cJSON_Delete(root);
    return rc;
}

void vrt_api_request_free(vrt_api_request *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_owned; i++)
        free(r->owned[i]);
    free(r->owned);
    free(r->stop_strs);
    free(r->messages);
    free(r->prompt_ids);
    memset(r, 0, sizeof *r);
}

int vrt_api_check_limits(vrt_api_request *r, const vrt_api_limits *lim, int n_prompt_tokens,
                         int *n_input, vrt_api_error *e)
{
    int api = r->api;
    int oai = vrt_api_is_openai(api);
    if (lim->max_stop_sequences > 0 && r->params.n_stop > lim->max_stop_sequences)
        return vrt_api_error_set(e, api, 0, "stop",
                                 "`stop` supports up to %d stop sequences. Given: %d",
                                 lim->max_stop_sequences, r->params.n_stop);
    if (!oai && r->top_n_tokens > lim->max_top_n_tokens)
        return vrt_api_error_set(e, api, 0, "top_n_tokens",
                                 "`top_n_tokens` must be >= 0 and <= %d. Given: %d",
                                 lim->max_top_n_tokens, r->top_n_tokens);
    if (!oai && r->truncate > lim->max_input_tokens)
        return vrt_api_error_set(e, api, 0, "truncate",
                                 "`truncate` must be strictly positive and less than %d. Given: %d",
                                 lim->max_input_tokens, r->truncate);
    int input = n_prompt_tokens;
    if (r->truncate > 0 && input > r->truncate)
        input = r->truncate;
    if (r->params.max_new_tokens <= 0) {
        int left = lim->max_total_tokens - input;
        if (left < 1)
            left = 1; /* reported as too long below */
        if (!oai && left > TGI_AUTO_CAP)
            left = TGI_AUTO_CAP;
        r->params.max_new_tokens = left;
    }
    long long total = (long long)input + r->params.max_new_tokens;
    if (total > lim->max_total_tokens) {
        if (oai)
            return vrt_api_error_set(
                e, api, 400, NULL,
                "This model's maximum context length is %d tokens. However, you requested %lld "
                "tokens (%d in the %s, %d in the completion). Please reduce the length of the %s "
                "or completion.",
                lim->max_total_tokens, total, input,
                api == VRT_API_OAI_CHAT ? "messages" : "prompt", r->params.max_new_tokens,
                api == VRT_API_OAI_CHAT ? "messages" : "prompt");
        return vrt_api_error_set(e, api, 422, "max_new_tokens",
                                 "`inputs` tokens + `max_new_tokens` must be <= %d. Given: %d "
                                 "`inputs` tokens and %d `max_new_tokens`",
                                 lim->max_total_tokens, input, r->params.max_new_tokens);
    }
    if (input > lim->max_input_tokens) {
        if (oai)
            return vrt_api_error_set(e, api, 400, NULL,
                                     "This model's maximum input length is %d tokens. However, "
                                     "your %s has %d tokens. Please reduce the length of the %s.",
                                     lim->max_input_tokens,
                                     api == VRT_API_OAI_CHAT ? "messages" : "prompt", input,
                                     api == VRT_API_OAI_CHAT ? "messages" : "prompt");
        return vrt_api_error_set(e, api, 422, "inputs",
                                 "`inputs` must have less than %d tokens. Given: %d",
                                 lim->max_input_tokens, input);
    }
    if (n_input)
        *n_input = input;
    return 0;
}
