/* tok_util.c — small containers and text helpers for the tokenizer: byte
 * buffers, string lists, open-addressing hash maps (token string -> id,
 * merge pair -> rank), UTF-8 decoding with the "maximal subpart" U+FFFD
 * policy, Unicode White_Space, the GPT-2 byte<->unicode table, and the
 * literal/regex patterns used by Split and Replace (PCRE2, UTF + UCP).
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- byte buffer ---------------------------------------------------- */

int vrt__tok_put(vrt_strbuf *b, const void *s, size_t n)
{
    if (n)
        vrt_strbuf_put(b, s, n);
    else if (vrt_strbuf_reserve(b, 0) == 0)
        b->p[b->len] = '\0';
    return b->oom ? VRT_ENOMEM : 0;
}

int vrt__tok_putc(vrt_strbuf *b, char c)
{
    return vrt__tok_put(b, &c, 1);
}

int vrt__tok_put_cp(vrt_strbuf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return vrt__tok_put(b, u, n);
}

void vrt__tok_buf_free(vrt_strbuf *b)
{
    free(b->p);
    *b = (vrt_strbuf){0};
}

/* ---- token ids ------------------------------------------------------- */

int vrt__tok_push_id(vrt_tokens *out, int32_t id)
{
    if (vrt_grow(&out->ids, &out->cap, out->n + 1, sizeof *out->ids))
        return VRT_ENOMEM;
    out->ids[out->n++] = id;
    return 0;
}

/* ---- string lists ---------------------------------------------------- */

int vrt__tok_strs_push_owned(tk_strs *l, char *s, size_t len, size_t off)
{
    if (vrt_grow(&l->v, &l->cap, l->n + 1, sizeof *l->v)) {
        free(s);
        return VRT_ENOMEM;
    }
    l->v[l->n].s = s;
    l->v[l->n].len = len;
    l->v[l->n].off = off;
    l->n++;
    return 0;
}

int vrt__tok_strs_push(tk_strs *l, const char *s, size_t len, size_t off)
{
    char *c = malloc(len + 1);
    if (!c)
        return VRT_ENOMEM;
    if (len)
        memcpy(c, s, len);
    c[len] = '\0';
    return vrt__tok_strs_push_owned(l, c, len, off);
}

static void strs_clear(tk_strs *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].s);
    l->n = 0;
}

void vrt__tok_strs_free(tk_strs *l)
{
    strs_clear(l);
    free(l->v);
    l->v = NULL;
    l->cap = 0;
}

/* ---- hash maps --------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static int strmap_grow(tk_strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    tk_strmap g = {0};
    g.cap = cap;
    g.keys = calloc(cap, sizeof(*g.keys));
    g.klen = calloc(cap, sizeof(*g.klen));
    g.vals = calloc(cap, sizeof(*g.vals));
    if (!g.keys || !g.klen || !g.vals) {
        vrt__tok_strmap_free(&g);
        return VRT_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = hash_bytes(m->keys[i], m->klen[i]) & (cap - 1);
        while (g.keys[j])
            j = (j + 1) & (cap - 1);
        g.keys[j] = m->keys[i];
        g.klen[j] = m->klen[i];
        g.vals[j] = m->vals[i];
    }
    g.n = m->n;
    vrt__tok_strmap_free(m);
    *m = g;
    return 0;
}

int vrt__tok_strmap_put(tk_strmap *m, const char *k, size_t len, int32_t v)
{
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m))
        return VRT_ENOMEM;
    size_t j = hash_bytes(k, len) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->klen[j] == len && memcmp(m->keys[j], k, len) == 0) {
            m->vals[j] = v;
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = k;
    m->klen[j] = (uint32_t)len;
    m->vals[j] = v;
    m->n++;
    return 0;
}

int32_t vrt__tok_strmap_get(const tk_strmap *m, const char *k, size_t len)
{
    if (!m->cap)
        return -1;
    size_t j = hash_bytes(k, len) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->klen[j] == len && memcmp(m->keys[j], k, len) == 0)
            return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void vrt__tok_strmap_free(tk_strmap *m)
{
    free(m->keys);
    free(m->klen);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

static int pairmap_grow(tk_pairmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    tk_pairmap g = {0};
    g.cap = cap;
    g.keys = malloc(cap * sizeof(*g.keys));
    g.rank = malloc(cap * sizeof(*g.rank));
    g.out = malloc(cap * sizeof(*g.out));
    if (!g.keys || !g.rank || !g.out) {
        vrt__tok_pairmap_free(&g);
        return VRT_ENOMEM;
    }
    memset(g.keys, 0xFF, cap * sizeof(*g.keys));
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == UINT64_MAX)
            continue;
        size_t j = hash_u64(m->keys[i]) & (cap - 1);
        while (g.keys[j] != UINT64_MAX)
            j = (j + 1) & (cap - 1);
        g.keys[j] = m->keys[i];
        g.rank[j] = m->rank[i];
        g.out[j] = m->out[i];
    }
    g.n = m->n;
    vrt__tok_pairmap_free(m);
    *m = g;
    return 0;
}

int vrt__tok_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t out)
{
    if ((m->n + 1) * 2 > m->cap && pairmap_grow(m))
        return VRT_ENOMEM;
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t j = hash_u64(k) & (m->cap - 1);
    while (m->keys[j] != UINT64_MAX && m->keys[j] != k)
        j = (j + 1) & (m->cap - 1);
    if (m->keys[j] == UINT64_MAX)
        m->n++;
    m->keys[j] = k;
    m->rank[j] = rank;
    m->out[j] = out;
    return 0;
}

int vrt__tok_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *out)
{
    if (!m->cap)
        return -1;
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t j = hash_u64(k) & (m->cap - 1);
    while (m->keys[j] != UINT64_MAX) {
        if (m->keys[j] == k) {
            *rank = m->rank[j];
            *out = m->out[j];
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void vrt__tok_pairmap_free(tk_pairmap *m)
{
    free(m->keys);
    free(m->rank);
    free(m->out);
    memset(m, 0, sizeof(*m));
}

/* ---- UTF-8 ----------------------------------------------------------- */

int vrt__tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int need;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *cp = 0xFFFD;
        return -1;
    }
    for (int i = 1; i <= need; i++) {
        unsigned b = (size_t)i < n ? s[i] : 0x100;
        unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) {
            *cp = 0xFFFD;
            return -i;
        }
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return need + 1;
}

int vrt__tok_utf8_lossy(vrt_strbuf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* valid bytes not yet copied start at run */
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int k = vrt__tok_utf8_decode(u + i, n - i, &cp);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        if (vrt__tok_put(b, s + run, i - run) || vrt__tok_put(b, "\xEF\xBF\xBD", 3))
            return VRT_ENOMEM;
        i += (size_t)-k;
        run = i;
    }
    if (vrt__tok_put(b, s + run, n - run))
        return VRT_ENOMEM;
    return 0;
}

int vrt__tok_is_whitespace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* ---- GPT-2 byte table ------------------------------------------------ */

/* Bytes 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF map to themselves; the other 68,
 * in increasing order, to U+0100.. U+0143. */
#define R16(b)                                                                                     \
    b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9, b + 10, b + 11, b + 12,      \
        b + 13, b + 14, b + 15
const uint16_t vrt__tok_byte_to_cp[256] = {
    R16(0x100), R16(0x110), /* 0x00-0x1F */
    0x120,      0x21,       0x22,      0x23,      0x24,      0x25,      0x26,      0x27,
    0x28,       0x29,       0x2A,      0x2B,      0x2C,      0x2D,      0x2E,      0x2F,
    R16(0x30),  R16(0x40),  R16(0x50), R16(0x60), 0x70,      0x71,      0x72,      0x73,
    0x74,       0x75,       0x76,      0x77,      0x78,      0x79,      0x7A,      0x7B,
    0x7C,       0x7D,       0x7E,      0x121, /* 0x7F */
    R16(0x122), R16(0x132),                   /* 0x80-0x9F -> U+0122..U+0141 */
    0x142,                                    /* 0xA0 */
    0xA1,       0xA2,       0xA3,      0xA4,      0xA5,      0xA6,      0xA7,      0xA8,
    0xA9,       0xAA,       0xAB,      0xAC,      0x143, /* 0xAD */
    0xAE,       0xAF,       R16(0xB0), R16(0xC0), R16(0xD0), R16(0xE0), R16(0xF0),
};
#undef R16

int vrt__tok_cp_to_byte(uint32_t cp)
{
    if (cp >= 0x100 && cp <= 0x143) {
        static int16_t inv[0x44];
        static int ready;
        if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
            int16_t tmp[0x44];
            for (int b = 0; b < 256; b++)
                if (vrt__tok_byte_to_cp[b] >= 0x100)
                    tmp[vrt__tok_byte_to_cp[b] - 0x100] = (int16_t)b;
            memcpy(inv, tmp, sizeof(tmp)); /* same values from any thread */
            __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
        }
        return inv[cp - 0x100];
    }
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    return -1;
}

/* ---- patterns -------------------------------------------------------- */

int vrt__tok_regex_compile(tk_pattern *p, const char *src, const char *where, vrt_err *err)
{
    int ec;
    PCRE2_SIZE eo;
    p->is_regex = 1;
    p->re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo,
                          NULL);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        return vrt_err_set(err, VRT_EFORMAT, "%s: cannot compile regex /%s/ at offset %zu: %s",
                           where, src, (size_t)eo, (const char *)msg);
    }
    pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* optional speed-up */
    return 0;
}

int vrt__tok_pattern_parse(tk_pattern *p, const cJSON *j, const char *where, vrt_err *err)
{
    memset(p, 0, sizeof(*p));
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "String");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "Regex");
    if (cJSON_IsString(s)) {
        p->str = strdup(s->valuestring);
        if (!p->str)
            return VRT_ENOMEM;
        p->len = strlen(p->str);
        return 0;
    }
    if (cJSON_IsString(r)) {
        p->is_regex = 1;
        p->str = strdup(r->valuestring);
        if (!p->str)
            return VRT_ENOMEM;
        p->len = strlen(p->str);
        return vrt__tok_regex_compile(p, p->str, where, err);
    }
    return vrt_err_set(err, VRT_EFORMAT,
                       "%s: pattern must be {\"String\": ...} or "
                       "{\"Regex\": ...}",
                       where);
}

void vrt__tok_pattern_free(tk_pattern *p)
{
    free(p->str);
    if (p->re)
        pcre2_code_free(p->re);
    memset(p, 0, sizeof(*p));
}

static int spans_push(size_t **spans, size_t *n, size_t *cap, size_t a, size_t b)
{
    if (vrt_grow(spans, cap, *n + 2, sizeof **spans))
        return VRT_ENOMEM;
    (*spans)[(*n)++] = a;
    (*spans)[(*n)++] = b;
    return 0;
}

int vrt__tok_pattern_find(const tk_pattern *p, const char *s, size_t n, size_t **spans,
                          size_t *n_spans, size_t *cap)
{
    if (!p->is_regex) {
        if (p->len == 0)
            return 0;
        size_t i = 0;
        while (i + p->len <= n) {
            const char *f = memmem(s + i, n - i, p->str, p->len);
            if (!f)
                break;
            size_t a = (size_t)(f - s);
            if (spans_push(spans, n_spans, cap, a, a + p->len))
                return VRT_ENOMEM;
            i = a + p->len;
        }
        return 0;
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->re, NULL);
    if (!md)
        return VRT_ENOMEM;
    size_t i = 0;
    int rc = 0;
    while (i <= n) {
        int m = pcre2_match(p->re, (PCRE2_SPTR)s, n, i, PCRE2_NO_UTF_CHECK, md, NULL);
        if (m == PCRE2_ERROR_NOMATCH)
            break;
        if (m < 0) { /* a match or JIT stack limit: never split silently wrong */
            rc = m == PCRE2_ERROR_NOMEMORY ? VRT_ENOMEM : VRT_EINTERNAL;
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (spans_push(spans, n_spans, cap, a, b)) {
            rc = VRT_ENOMEM;
            break;
        }
        if (b > a) {
            i = b;
        } else { /* empty match: step over one character */
            i = b + 1;
            while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80)
                i++;
        }
    }
    pcre2_match_data_free(md);
    return rc;
}

int vrt__tok_pattern_replace(const tk_pattern *p, const char *s, size_t n, const char *content,
                             size_t clen, vrt_strbuf *out)
{
    size_t *sp = NULL, ns = 0, cap = 0;
    int rc = vrt__tok_pattern_find(p, s, n, &sp, &ns, &cap);
    size_t prev = 0;
    for (size_t i = 0; rc == 0 && i < ns; i += 2) {
        if (vrt__tok_put(out, s + prev, sp[i] - prev) || vrt__tok_put(out, content, clen))
            rc = VRT_ENOMEM;
        prev = sp[i + 1];
    }
    if (rc == 0 && vrt__tok_put(out, s + prev, n - prev))
        rc = VRT_ENOMEM;
    free(sp);
    return rc;
}
