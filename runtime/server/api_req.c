/* api_req.c — parse and validate TGI / OpenAI request bodies (see api_req.h).
 *
 * Messages follow the servers v100rt stands in for: TGI's router
 * (router/src/validation.rs: "`top_p` must be > 0.0 and < 1.0", ...) for the
 * TGI routes, vLLM's SamplingParams / protocol checks ("top_p must be in
 * (0, 1], got 0.0.") for the OpenAI routes.
 */
#include "server/api_req.h"

#include "core/err.h"
#include "core/util.h"

#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TGI's max_new_tokens when the client gives none. Recent TGI computes
 * min(max_total - input, 1024) instead: setting this to 0 selects that
 * (vrt_api_check_limits' auto mode). */
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
static int get_seed(pctx *c, const cJSON *obj, const char *name, uint64_t *out)
{
    const cJSON *j = field(obj, name);
    if (!j)
        return 0;
    double d = j->valuedouble;
    if (!cJSON_IsNumber(j) || d != floor(d))
        return type_err(c, name, j, "an integer");
    if (d < (vrt_api_is_openai(c->api) ? -9223372036854775808.0 : 0.0) ||
        d >= 18446744073709551616.0)
        return vrt_api_error_set(c->e, c->api, 0, name,
                                 "`%s` must be an integer in [0, 18446744073709551615] (got %.0f)",
                                 name, d);
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

/* Uninitialized storage of n bytes owned by r; NULL when out of memory. */
static void *own_alloc(vrt_api_request *r, size_t n)
{
    if (vrt_grow(&r->owned, &r->cap_owned, (size_t)r->n_owned + 1, sizeof *r->owned))
        return NULL;
    char *d = malloc(n ? n : 1);
    if (d)
        r->owned[r->n_owned++] = d;
    return d;
}

/* A NUL-terminated copy of s[0..n) owned by r. */
static const char *own(vrt_api_request *r, const char *s, size_t n)
{
    char *d = own_alloc(r, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int oom(pctx *c)
{
    vrt_api_error_set(c->e, c->api, 500, NULL, "out of memory");
    return VRT_ENOMEM;
}

/* "stop": a list of strings (TGI), or a string or a list (OpenAI). */
static int read_stop(pctx *c, vrt_api_request *r, const cJSON *obj)
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
                                 "`stop` supports up to %d stop sequences. Given: %d",
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
    return 0;
}

/* ---- OpenAI: the prompt ------------------------------------------------- */

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

/* ---- parameter tables -------------------------------------------------------
 *
 * Every field of a request is one row: its JSON name, how it is read (which
 * also gives its type error), where it goes, and the range it must be in
 * with the message when it is not. The rows run in order, so the first bad
 * field is the one reported, as the servers v100rt stands in for do. A
 * field may have several rows (one per check); each reads and type-checks
 * it again. */

enum {
    PK_BOOL,   /* true / false -> int */
    PK_NUM,    /* a number -> float; msg gets the value as a double (%g) */
    PK_INT,    /* an integer in json_lo..json_hi (the JSON type: u32, i32) -> int, at most
                  INT_MAX; msg gets the value as a long long (%lld) */
    PK_SEED,   /* the request's seed -> uint64_t (U64_AT), and sets seed_set */
    PK_STR,    /* a string -> an owned copy (STR_AT) */
    PK_REFUSE, /* an unsupported feature: any value but a harmless one is msg */
    PK_CUSTOM, /* read by read() */
};

/* Bits of param.apis: the routes of the table a row is for (0: all). */
#define FOR_CMPL (1u << VRT_API_OAI_COMPLETIONS)
#define FOR_CHAT (1u << VRT_API_OAI_CHAT)

/* Where a row stores its value: the field f of vrt_api_request, whose type
 * is checked when compiling (another type makes a negative array size).
 * A row with neither a field nor a store() only checks the value. */
enum { TO_NONE, TO_INT, TO_FLOAT, TO_STR, TO_U64 };
#define TYPED_FIELD(f, T)                                                                          \
    (offsetof(vrt_api_request, f) +                                                                \
     0 * sizeof(char[_Generic(((vrt_api_request *)0)->f, T : 1, default                            \
                              : -1)]))
#define INT_AT(f) .to = TO_INT, .off = TYPED_FIELD(f, int)
#define FLOAT_AT(f) .to = TO_FLOAT, .off = TYPED_FIELD(f, float)
#define STR_AT(f) .to = TO_STR, .off = TYPED_FIELD(f, const char *)
#define U64_AT(f) .to = TO_U64, .off = TYPED_FIELD(f, uint64_t)

/* Value ranges: GT(0) is (0, inf), IN(a, b) [a, b], OPEN(a, b) (a, b),
 * OPEN_CLOSED(a, b) (a, b]. */
#define LO_OPEN 1
#define HI_OPEN 2
#define GT(a) .lo = (a), .hi = HUGE_VAL, .open = LO_OPEN | HI_OPEN
#define IN(a, b) .lo = (a), .hi = (b), .open = 0
#define OPEN(a, b) .lo = (a), .hi = (b), .open = LO_OPEN | HI_OPEN
#define OPEN_CLOSED(a, b) .lo = (a), .hi = (b), .open = LO_OPEN
#define U32 .json_lo = 0, .json_hi = 4294967295.0
#define I32 .json_lo = -2147483648.0, .json_hi = 2147483647.0

#define STR_(x) #x
#define STR(x) STR_(x)

typedef struct param {
    const char *name;
    int kind;      /* PK_* */
    unsigned apis; /* FOR_* bits; 0: every route of the table */
    int to;        /* TO_*, and off: set by INT_AT(field) etc. */
    size_t off;
    double json_lo, json_hi;
    /* PK_BOOL, PK_NUM, PK_INT: the range checked when msg is set (and
     * when() allows): lo..hi, ends excluded by the LO_OPEN / HI_OPEN bits
     * of open. */
    double lo, hi;
    int open;
    const char *msg; /* printf format, given the value (see PK_*) */
    /* Optional: the range check and the store apply only when this is 1
     * (the field is still read and type-checked). */
    int (*when)(const vrt_api_request *r, const cJSON *obj);
    /* Optional: stores the value instead of off. */
    void (*store)(vrt_api_request *r, double v);
    /* PK_REFUSE: values that are accepted (NULL: none). */
    int (*harmless)(const cJSON *j);
    /* PK_CUSTOM: reads the field; 0 or a negative error. */
    int (*read)(pctx *c, vrt_api_request *r, const cJSON *obj);
} param;

static int in_range(const param *p, double v)
{
    return ((p->open & LO_OPEN) ? v > p->lo : v >= p->lo) &&
           ((p->open & HI_OPEN) ? v < p->hi : v <= p->hi);
}

static int read_param(pctx *c, vrt_api_request *r, const cJSON *obj, const param *p)
{
    char *at = (char *)r + p->off;
    double v = 0.0;
    long long iv = 0;
    int rc = 0, b = 0;
    switch (p->kind) {
    case PK_CUSTOM: return p->read(c, r, obj);
    case PK_REFUSE: {
        const cJSON *j = field(obj, p->name);
        if (j && !(p->harmless && p->harmless(j)))
            return vrt_api_error_set(c->e, c->api, 0, p->name, p->msg, 0LL);
        return 0;
    }
    case PK_SEED: {
        uint64_t seed = 0;
        if ((rc = get_seed(c, obj, p->name, &seed)) <= 0)
            return rc;
        memcpy(at, &seed, sizeof seed);
        r->seed_set = 1;
        return 0;
    }
    case PK_STR: {
        const char *str = NULL;
        if ((rc = get_str(c, obj, p->name, &str)) <= 0)
            return rc;
        if (!(str = own(r, str, strlen(str))))
            return oom(c);
        memcpy(at, &str, sizeof str);
        return 0;
    }
    case PK_BOOL:
        rc = get_bool(c, obj, p->name, &b);
        iv = b;
        v = b;
        break;
    case PK_NUM: rc = get_num(c, obj, p->name, &v); break;
    case PK_INT:
        rc = get_int(c, obj, p->name, p->json_lo, p->json_hi, &iv);
        v = (double)iv;
        break;
    }
    if (rc <= 0 || (p->when && !p->when(r, obj)))
        return rc;
    if (p->msg && !in_range(p, v))
        return p->kind == PK_NUM ? vrt_api_error_set(c->e, c->api, 0, p->name, p->msg, v)
                                 : vrt_api_error_set(c->e, c->api, 0, p->name, p->msg, iv);
    if (p->store) {
        p->store(r, v);
    } else if (p->to == TO_FLOAT) {
        float f = (float)v;
        memcpy(at, &f, sizeof f);
    } else if (p->to == TO_INT) {
        int i = iv > INT_MAX ? INT_MAX : (int)iv;
        memcpy(at, &i, sizeof i);
    }
    return 0;
}

/* Reads the fields of obj (NULL: none given) that rows[0..n) name for the
 * route c->api, in order. */
static int read_params(pctx *c, vrt_api_request *r, const cJSON *obj, const param *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (rows[i].apis && !(rows[i].apis & (1u << c->api)))
            continue;
        int rc = read_param(c, r, obj, &rows[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- the rows' helpers ----------------------------------------------------- */

static int streaming(const vrt_api_request *r, const cJSON *obj)
{
    return r->stream;
}

static int not_streaming(const vrt_api_request *r, const cJSON *obj)
{
    return !r->stream;
}

/* Chat's max_completion_tokens, when given, replaces max_tokens. */
static int no_max_completion_tokens(const vrt_api_request *r, const cJSON *obj)
{
    return r->api != VRT_API_OAI_CHAT || !field(obj, "max_completion_tokens");
}

static int chat_logprobs_off(const vrt_api_request *r, const cJSON *obj)
{
    return r->logprobs < 0;
}

/* OpenAI temperature: below vLLM's _SAMPLING_EPS it means greedy. */
static void oai_temperature(vrt_api_request *r, double v)
{
    if (v < 1e-5) {
        r->params.sampling.do_sample = 0;
        r->params.sampling.temperature = 1.0f;
    } else {
        r->params.sampling.temperature = (float)v;
    }
}

/* OpenAI top_k: -1 and 0 both disable it. */
static void oai_top_k(vrt_api_request *r, double v)
{
    r->params.sampling.top_k = v > 0 ? (int)v : 0;
}

/* Chat "logprobs": a boolean; r->logprobs is 1 when true, else -1. */
static void chat_logprobs(vrt_api_request *r, double v)
{
    r->logprobs = v ? 1 : -1;
}

static int empty_list(const cJSON *j)
{
    return cJSON_IsArray(j) && cJSON_GetArraySize(j) == 0;
}

static int empty_object(const cJSON *j)
{
    return cJSON_IsObject(j) && !j->child;
}

static int text_format(const cJSON *j)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
    return cJSON_IsString(t) && strcmp(t->valuestring, "text") == 0;
}

static int read_stream_options(pctx *c, vrt_api_request *r, const cJSON *obj)
{
    const cJSON *so = field(obj, "stream_options");
    if (!so)
        return 0;
    if (!cJSON_IsObject(so))
        return type_err(c, "stream_options", so, "an object");
    if (!r->stream)
        return vrt_api_error_set(c->e, c->api, 400, "stream_options",
                                 "Stream options can only be defined when `stream=True`.");
    int rc = get_bool(c, so, "include_usage", &r->include_usage);
    return rc < 0 ? rc : 0;
}

static int read_stop_token_ids(pctx *c, vrt_api_request *r, const cJSON *obj)
{
    const cJSON *sti = field(obj, "stop_token_ids");
    if (!sti)
        return 0;
    if (!cJSON_IsArray(sti))
        return type_err(c, "stop_token_ids", sti, "a list of token ids");
    int n = cJSON_GetArraySize(sti), k = 0;
    int32_t *ids = NULL;
    if (n > 0 && !(ids = own_alloc(r, (size_t)n * sizeof(int32_t))))
        return oom(c);
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
    return 0;
}

/* ---- TGI ----------------------------------------------------------------- */

/* The "parameters" of TGI's GenerateRequest, in TGI's order and wording
 * (router/src/validation.rs). */
static const param TGI_PARAMS[] = {
    {"best_of", PK_INT, U32, IN(1, 1), .when = not_streaming,
     .msg = "`best_of` != 1 is not allowed for this endpoint"},
    {"best_of", PK_INT, U32, IN(1, 1), .when = streaming,
     .msg = "`best_of` != 1 is not supported when streaming tokens"},
    {"temperature", PK_NUM, FLOAT_AT(params.sampling.temperature), GT(0),
     .msg = "`temperature` must be strictly positive"},
    {"repetition_penalty", PK_NUM, FLOAT_AT(params.sampling.repetition_penalty), GT(0),
     .msg = "`repetition_penalty` must be strictly positive"},
    {"frequency_penalty", PK_NUM, FLOAT_AT(params.sampling.frequency_penalty), IN(-2, 2),
     .msg = "`frequency_penalty` must be >= -2.0 and <= 2.0"},
    {"top_p", PK_NUM, FLOAT_AT(params.sampling.top_p), OPEN(0, 1),
     .msg = "`top_p` must be > 0.0 and < 1.0"},
    {"typical_p", PK_NUM, FLOAT_AT(params.sampling.typical_p), OPEN(0, 1),
     .msg = "`typical_p` must be > 0.0 and < 1.0"},
    {"top_k", PK_INT, INT_AT(params.sampling.top_k), I32, GT(0),
     .msg = "`top_k` must be strictly positive"},
    {"do_sample", PK_BOOL, INT_AT(params.sampling.do_sample)},
    {"max_new_tokens", PK_INT, INT_AT(params.max_new_tokens), U32, GT(0),
     .msg = "`max_new_tokens` must be strictly positive"},
    {"stop", PK_CUSTOM, .read = read_stop},
    {"truncate", PK_INT, INT_AT(truncate), U32, GT(0),
     .msg = "`truncate` must be strictly positive and less than max_input_tokens. Given: %lld"},
    {"seed", PK_SEED, U64_AT(params.sampling.seed)},
    {"watermark", PK_BOOL, IN(0, 0), .msg = "`watermark` is not supported"},
    {"grammar", PK_REFUSE, .msg = "grammar is not supported"},
    {"details", PK_BOOL, INT_AT(details)},
    {"decoder_input_details", PK_BOOL, INT_AT(decoder_input_details)},
    {"decoder_input_details", PK_BOOL, IN(0, 0), .when = streaming,
     .msg = "`decoder_input_details` == true is not supported when streaming tokens"},
    {"return_full_text", PK_BOOL, INT_AT(return_full_text)},
    {"top_n_tokens", PK_INT, INT_AT(top_n_tokens), U32, IN(0, VRT_SAMPLE_MAX_LOGPROBS),
     .msg = "`top_n_tokens` must be >= 0 and <= " STR(VRT_SAMPLE_MAX_LOGPROBS) ". Given: %lld"},
};

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
    r->params.max_new_tokens = TGI_DEFAULT_MAX_NEW_TOKENS;
    c->prefix = "parameters.";
    if ((rc = read_params(c, r, p, TGI_PARAMS, sizeof TGI_PARAMS / sizeof TGI_PARAMS[0])) < 0)
        return rc;
    c->prefix = "";
    vrt_sampling_params *s = &r->params.sampling;
    /* TGI's server samples when do_sample is set or any warper is active
     * (text_generation_server NextTokenChooser: has_warpers). */
    if (s->temperature != 1.0f || s->top_k > 0 || s->top_p < 1.0f || s->typical_p < 1.0f)
        s->do_sample = 1;
    r->params.prompt_logprobs = r->decoder_input_details && r->details;
    s->n_logprobs = r->top_n_tokens;
    if (!inputs[0])
        return vrt_api_error_set(c->e, c->api, 422, "inputs", "`inputs` cannot be empty");
    if (!(r->prompt = own(r, inputs, strlen(inputs))))
        return oom(c);
    return 0;
}

/* ---- OpenAI -------------------------------------------------------------- */

/* The fields of OpenAI's completions and chat completions requests, with
 * vLLM's checks and wording ("top_p must be in (0, 1], got 0.0."). */
static const param OAI_PARAMS[] = {
    {"messages", PK_CUSTOM, FOR_CHAT, .read = parse_messages},
    {"prompt", PK_CUSTOM, FOR_CMPL, .read = parse_prompt},
    {"model", PK_STR, STR_AT(model)},
    {"user", PK_STR, STR_AT(user)},
    {"stream", PK_BOOL, INT_AT(stream)},
    {"stream_options", PK_CUSTOM, .read = read_stream_options},
    {"max_tokens", PK_INT, INT_AT(params.max_new_tokens), I32, IN(1, HUGE_VAL),
     .when = no_max_completion_tokens, .msg = "max_tokens must be at least 1, got %lld."},
    {"max_completion_tokens", PK_INT, FOR_CHAT, INT_AT(params.max_new_tokens), I32, IN(1, HUGE_VAL),
     .msg = "max_completion_tokens must be at least 1, got %lld."},
    {"temperature", PK_NUM, .store = oai_temperature, IN(0, HUGE_VAL),
     .msg = "temperature must be non-negative, got %g."},
    {"top_p", PK_NUM, FLOAT_AT(params.sampling.top_p), OPEN_CLOSED(0, 1),
     .msg = "top_p must be in (0, 1], got %g."},
    {"top_k", PK_INT, .store = oai_top_k, I32, IN(-1, HUGE_VAL),
     .msg = "top_k must be -1 or 0 (disable), or at least 1, got %lld."},
    {"min_p", PK_NUM, FLOAT_AT(params.sampling.min_p), IN(0, 1),
     .msg = "min_p must be in [0, 1], got %g."},
    {"presence_penalty", PK_NUM, FLOAT_AT(params.sampling.presence_penalty), IN(-2, 2),
     .msg = "presence_penalty must be in [-2, 2], got %g."},
    {"frequency_penalty", PK_NUM, FLOAT_AT(params.sampling.frequency_penalty), IN(-2, 2),
     .msg = "frequency_penalty must be in [-2, 2], got %g."},
    {"repetition_penalty", PK_NUM, FLOAT_AT(params.sampling.repetition_penalty), GT(0),
     .msg = "repetition_penalty must be greater than zero, got %g."},
    {"n", PK_INT, I32, IN(1, HUGE_VAL), .msg = "n must be at least 1, got %lld."},
    {"n", PK_INT, INT_AT(n), I32, IN(-HUGE_VAL, 16), .msg = "n must be at most 16, got %lld."},
    {"best_of", PK_INT, I32, IN(1, 1),
     .msg = "best_of must be 1: best_of is not supported, got %lld."},
    {"seed", PK_SEED, U64_AT(params.sampling.seed)},
    {"stop", PK_CUSTOM, .read = read_stop},
    {"stop_token_ids", PK_CUSTOM, .read = read_stop_token_ids},
    {"add_generation_prompt", PK_BOOL, FOR_CHAT, INT_AT(add_generation_prompt)},
    {"logprobs", PK_BOOL, FOR_CHAT, .store = chat_logprobs},
    {"top_logprobs", PK_INT, FOR_CHAT, INT_AT(top_logprobs), I32, IN(0, VRT_SAMPLE_MAX_LOGPROBS),
     .msg = "top_logprobs must be in [0, " STR(VRT_SAMPLE_MAX_LOGPROBS) "], got %lld."},
    {"top_logprobs", PK_INT, FOR_CHAT, I32, IN(0, 0), .when = chat_logprobs_off,
     .msg = "when using `top_logprobs`, `logprobs` must be set to true."},
    {"logprobs", PK_INT, FOR_CMPL, INT_AT(logprobs), I32, IN(0, VRT_SAMPLE_MAX_LOGPROBS),
     .msg = "logprobs must be in [0, " STR(VRT_SAMPLE_MAX_LOGPROBS) "], got %lld."},
    {"echo", PK_BOOL, FOR_CMPL, INT_AT(echo)},
    {"priority", PK_INT, INT_AT(params.priority), I32},
    {"ignore_eos", PK_BOOL, INT_AT(params.ignore_eos)},
    {"skip_special_tokens", PK_BOOL, INT_AT(skip_special_tokens)},
    /* Features whose silent omission would give wrong answers. */
    {"tools", PK_REFUSE, .harmless = empty_list, .msg = "`tools` is not supported"},
    {"response_format", PK_REFUSE, .harmless = text_format,
     .msg = "`response_format` other than {\"type\": \"text\"} is not supported"},
    {"logit_bias", PK_REFUSE, .harmless = empty_object, .msg = "`logit_bias` is not supported"},
};

static int parse_oai(pctx *c, vrt_api_request *r, const cJSON *root)
{
    int chat = c->api == VRT_API_OAI_CHAT;
    r->params.max_new_tokens = chat ? 0 : OAI_COMPLETIONS_DEFAULT_MAX_TOKENS;
    r->params.sampling.do_sample = 1; /* OpenAI samples at temperature 1 by default */
    int rc = read_params(c, r, root, OAI_PARAMS, sizeof OAI_PARAMS / sizeof OAI_PARAMS[0]);
    if (rc < 0)
        return rc;
    if (chat) {
        r->params.sampling.n_logprobs = r->top_logprobs;
    } else {
        r->params.sampling.n_logprobs = r->logprobs > 0 ? r->logprobs : 0;
        r->params.prompt_logprobs = r->echo && r->logprobs >= 0;
    }
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
