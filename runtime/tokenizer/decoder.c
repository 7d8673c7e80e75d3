/* decoder.c — tokenizer.json decoders and vrt_tokenizer_decode.
 *
 * Decoding maps ids to their token strings (added tokens first), drops
 * special ones when asked, and runs the decoder chain over the list of
 * strings exactly as the tokenizers crate's decode_chain does: ByteLevel
 * (GPT-2 table back to bytes, lossy UTF-8 over the whole byte stream),
 * Replace, ByteFallback (<0xHH> runs, all-U+FFFD when invalid), Fuse,
 * Strip, Metaspace, Sequence. Without a decoder the strings are joined
 * with spaces.
 */
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cJSON *obj_get(const cJSON *j, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(j, k);
}

int vrt__tok_decoder_parse(tk_decoder *d, const cJSON *j, const char *where, vrt_err *err)
{
    memset(d, 0, sizeof(*d));
    const cJSON *t = obj_get(j, "type");
    const char *type = cJSON_IsString(t) ? t->valuestring : NULL;
    if (!type)
        return vrt_err_set(err, VRT_EFORMAT, "%s: missing \"type\"", where);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *l = obj_get(j, "decoders");
        if (!cJSON_IsArray(l))
            return vrt_err_set(err, VRT_EFORMAT, "%s: Sequence without a \"decoders\" list", where);
        d->type = TK_D_SEQUENCE;
        int cnt = cJSON_GetArraySize(l);
        d->kids = calloc(cnt ? (size_t)cnt : 1, sizeof(*d->kids));
        if (!d->kids)
            return VRT_ENOMEM;
        for (int i = 0; i < cnt; i++) {
            char sub[512];
            snprintf(sub, sizeof(sub), "%s.decoders[%d]", where, i);
            d->n_kids = (size_t)i + 1;
            int rc = vrt__tok_decoder_parse(&d->kids[i], cJSON_GetArrayItem(l, i), sub, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        d->type = TK_D_BYTELEVEL;
        return 0;
    }
    if (strcmp(type, "ByteFallback") == 0) {
        d->type = TK_D_BYTEFALLBACK;
        return 0;
    }
    if (strcmp(type, "Fuse") == 0) {
        d->type = TK_D_FUSE;
        return 0;
    }
    if (strcmp(type, "Replace") == 0) {
        const cJSON *c = obj_get(j, "content");
        if (!cJSON_IsString(c))
            return vrt_err_set(err, VRT_EFORMAT, "%s: Replace without a \"content\" string", where);
        d->type = TK_D_REPLACE;
        d->content = strdup(c->valuestring);
        if (!d->content)
            return VRT_ENOMEM;
        d->content_len = strlen(c->valuestring);
        return vrt__tok_pattern_parse(&d->pat, obj_get(j, "pattern"), where, err);
    }
    if (strcmp(type, "Strip") == 0) {
        const cJSON *c = obj_get(j, "content");
        const cJSON *st = obj_get(j, "start"), *sp = obj_get(j, "stop");
        if (!cJSON_IsString(c) || !cJSON_IsNumber(st) || !cJSON_IsNumber(sp) || st->valueint < 0 ||
            sp->valueint < 0)
            return vrt_err_set(err, VRT_EFORMAT,
                               "%s: Strip needs \"content\" (a character), "
                               "\"start\" and \"stop\" (counts)",
                               where);
        d->type = TK_D_STRIP;
        d->content = strdup(c->valuestring);
        if (!d->content)
            return VRT_ENOMEM;
        d->content_len = strlen(c->valuestring);
        d->start = st->valueint;
        d->stop = sp->valueint;
        return 0;
    }
    if (strcmp(type, "Metaspace") == 0) {
        const cJSON *r = obj_get(j, "replacement");
        d->type = TK_D_METASPACE;
        d->content = strdup(cJSON_IsString(r) ? r->valuestring : "\xE2\x96\x81");
        if (!d->content)
            return VRT_ENOMEM;
        d->content_len = strlen(d->content);
        const cJSON *ps = obj_get(j, "prepend_scheme");
        d->prepend_scheme = TK_PREPEND_ALWAYS;
        if (cJSON_IsString(ps) && strcmp(ps->valuestring, "never") == 0)
            d->prepend_scheme = TK_PREPEND_NEVER;
        else if (cJSON_IsString(ps) && strcmp(ps->valuestring, "first") == 0)
            d->prepend_scheme = TK_PREPEND_FIRST;
        else if (!cJSON_IsString(ps) && cJSON_IsFalse(obj_get(j, "add_prefix_space")))
            d->prepend_scheme = TK_PREPEND_NEVER;
        return 0;
    }
    return vrt_err_set(err, VRT_EUNSUPPORTED,
                       "%s: decoder type \"%s\" is not supported (supported: "
                       "Sequence, ByteLevel, Replace, ByteFallback, Fuse, "
                       "Strip, Metaspace)",
                       where, type);
}

void vrt__tok_decoder_free(tk_decoder *d)
{
    for (size_t i = 0; i < d->n_kids; i++)
        vrt__tok_decoder_free(&d->kids[i]);
    free(d->kids);
    free(d->content);
    vrt__tok_pattern_free(&d->pat);
    memset(d, 0, sizeof(*d));
}

int vrt__tok_decoder_has_bytefallback(const tk_decoder *d)
{
    if (d->type == TK_D_BYTEFALLBACK)
        return 1;
    for (size_t i = 0; i < d->n_kids; i++)
        if (vrt__tok_decoder_has_bytefallback(&d->kids[i]))
            return 1;
    return 0;
}

/* "<0xHH>" -> byte, or -1 (the crate parses the two hex digits with
 * from_str_radix, so lowercase hex is accepted too). */
static int byte_token(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static int utf8_valid(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = vrt__tok_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (k <= 0)
            return 0;
        i += (size_t)k;
    }
    return 1;
}

static int push_buf(tk_strs *out, vrt_strbuf *b)
{
    if (!b->p && vrt__tok_put(b, "", 0))
        return VRT_ENOMEM;
    int rc = vrt__tok_strs_push_owned(out, b->p, b->len, 0);
    b->p = NULL;
    b->len = b->cap = 0;
    return rc;
}

/* Runs one decoder over l (replaced in place). */
static int decode_step(const tk_decoder *d, tk_strs *l)
{
    if (d->type == TK_D_SEQUENCE) {
        for (size_t i = 0; i < d->n_kids; i++) {
            int rc = decode_step(&d->kids[i], l);
            if (rc)
                return rc;
        }
        return 0;
    }
    tk_strs out = {0};
    vrt_strbuf b = {0};
    int rc = 0;
    switch (d->type) {
    case TK_D_BYTELEVEL: {
        vrt_strbuf raw = {0};
        for (size_t i = 0; rc == 0 && i < l->n; i++) {
            const tk_str *t = &l->v[i];
            size_t mark = raw.len;
            int ok = 1;
            for (size_t k = 0; ok && rc == 0 && k < t->len;) {
                uint32_t cp;
                int n = vrt__tok_utf8_decode((const unsigned char *)t->s + k, t->len - k, &cp);
                int byte = n > 0 ? vrt__tok_cp_to_byte(cp) : -1;
                if (byte < 0)
                    ok = 0; /* the whole token passes through raw */
                else
                    rc = vrt__tok_putc(&raw, (char)byte);
                k += (size_t)(n > 0 ? n : -n);
            }
            if (!ok) {
                raw.len = mark;
                rc = vrt__tok_put(&raw, t->s, t->len);
            }
        }
        if (rc == 0)
            rc = vrt__tok_utf8_lossy(&b, raw.p ? raw.p : "", raw.len);
        vrt__tok_buf_free(&raw);
        if (rc == 0)
            rc = push_buf(&out, &b);
        break;
    }
    case TK_D_REPLACE:
        for (size_t i = 0; rc == 0 && i < l->n; i++) {
            b.len = 0;
            rc = vrt__tok_pattern_replace(&d->pat, l->v[i].s, l->v[i].len, d->content,
                                          d->content_len, &b);
            if (rc == 0)
                rc = push_buf(&out, &b);
        }
        break;
    case TK_D_BYTEFALLBACK: {
        vrt_strbuf run = {0};
        for (size_t i = 0; rc == 0 && i <= l->n; i++) {
            int v = i < l->n ? byte_token(l->v[i].s, l->v[i].len) : -1;
            if (v >= 0) {
                rc = vrt__tok_putc(&run, (char)v);
                continue;
            }
            if (run.len) {
                if (utf8_valid(run.p, run.len)) {
                    rc = vrt__tok_strs_push(&out, run.p, run.len, 0);
                } else {
                    for (size_t k = 0; rc == 0 && k < run.len; k++)
                        rc = vrt__tok_strs_push(&out, "\xEF\xBF\xBD", 3, 0);
                }
                run.len = 0;
            }
            if (rc == 0 && i < l->n)
                rc = vrt__tok_strs_push(&out, l->v[i].s, l->v[i].len, 0);
        }
        vrt__tok_buf_free(&run);
        break;
    }
    case TK_D_FUSE:
        for (size_t i = 0; rc == 0 && i < l->n; i++)
            rc = vrt__tok_put(&b, l->v[i].s, l->v[i].len);
        if (rc == 0)
            rc = push_buf(&out, &b);
        break;
    case TK_D_STRIP: {
        /* content is one character; strip up to start/stop copies of it. */
        size_t cl = d->content_len;
        for (size_t i = 0; rc == 0 && i < l->n; i++) {
            const char *s = l->v[i].s;
            size_t a = 0, e = l->v[i].len;
            for (int k = 0; cl && k < d->start && a + cl <= e && memcmp(s + a, d->content, cl) == 0;
                 k++)
                a += cl;
            for (int k = 0;
                 cl && k < d->stop && e >= a + cl && memcmp(s + e - cl, d->content, cl) == 0; k++)
                e -= cl;
            rc = vrt__tok_strs_push(&out, s + a, e - a, 0);
        }
        break;
    }
    case TK_D_METASPACE:
        for (size_t i = 0; rc == 0 && i < l->n; i++) {
            b.len = 0;
            const char *s = l->v[i].s;
            size_t n = l->v[i].len, cl = d->content_len, k = 0;
            int drop = i == 0 && d->prepend_scheme != TK_PREPEND_NEVER;
            while (rc == 0 && k < n) {
                if (cl && k + cl <= n && memcmp(s + k, d->content, cl) == 0) {
                    if (!drop)
                        rc = vrt__tok_putc(&b, ' ');
                    k += cl;
                } else {
                    rc = vrt__tok_putc(&b, s[k]);
                    k++;
                }
            }
            if (rc == 0)
                rc = push_buf(&out, &b);
        }
        break;
    }
    vrt__tok_buf_free(&b);
    if (rc) {
        vrt__tok_strs_free(&out);
        return rc;
    }
    vrt__tok_strs_free(l);
    *l = out;
    return 0;
}

int vrt_tokenizer_decode(const vrt_tokenizer *t, const int32_t *ids, size_t n,
                         int skip_special_tokens, char **text, size_t *len, vrt_err *err)
{
    *text = NULL;
    if (len)
        *len = 0;
    tk_strs l = {0};
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = vrt__tok_dec_piece(t, ids[i]);
        if (!p) {
            vrt__tok_strs_free(&l);
            return vrt_err_set(err, VRT_ERANGE,
                               "decode: token id %d at position %zu is not "
                               "in the vocabulary of %s (ids 0..%zu)",
                               (int)ids[i], i, t->dir, t->n_ids ? t->n_ids - 1 : 0);
        }
        if (skip_special_tokens && t->id_skip[ids[i]])
            continue;
        if ((rc = vrt__tok_strs_push(&l, p, strlen(p), 0)))
            break;
    }
    vrt_strbuf b = {0};
    if (rc == 0 && t->has_decoder) {
        rc = decode_step(&t->decoder, &l);
        for (size_t i = 0; rc == 0 && i < l.n; i++)
            rc = vrt__tok_put(&b, l.v[i].s, l.v[i].len);
    } else {
        for (size_t i = 0; rc == 0 && i < l.n; i++)
            rc = (i ? vrt__tok_putc(&b, ' ') : 0) || vrt__tok_put(&b, l.v[i].s, l.v[i].len);
    }
    if (rc == 0 && !b.p)
        rc = vrt__tok_put(&b, "", 0);
    vrt__tok_strs_free(&l);
    if (rc) {
        vrt__tok_buf_free(&b);
        return vrt_err_set(err, VRT_ENOMEM, "decode: out of memory");
    }
    *text = b.p;
    if (len)
        *len = b.len;
    return 0;
}

/* ---- surfaces (offsets) ------------------------------------------------ */

/* One decoder over the one token in cur (replaced in place). */
static int surface_step(const tk_decoder *d, vrt_strbuf *cur)
{
    if (d->type == TK_D_SEQUENCE) {
        for (size_t i = 0; i < d->n_kids; i++) {
            int rc = surface_step(&d->kids[i], cur);
            if (rc)
                return rc;
        }
        return 0;
    }
    vrt_strbuf b = {0};
    int rc = 0, replace = 1;
    const char *s = cur->p ? cur->p : "";
    size_t n = cur->len;
    switch (d->type) {
    case TK_D_BYTELEVEL:
        /* GPT-2 characters back to raw bytes; a token with a character
         * outside the table passes through raw, as in decode. */
        for (size_t k = 0; rc == 0 && k < n;) {
            uint32_t cp;
            int len = vrt__tok_utf8_decode((const unsigned char *)s + k, n - k, &cp);
            int byte = len > 0 ? vrt__tok_cp_to_byte(cp) : -1;
            if (byte < 0) {
                replace = 0;
                break;
            }
            rc = vrt__tok_putc(&b, (char)byte);
            k += (size_t)len;
        }
        break;
    case TK_D_REPLACE:
        rc = vrt__tok_pattern_replace(&d->pat, s, n, d->content, d->content_len, &b);
        break;
    case TK_D_BYTEFALLBACK: {
        int v = byte_token(s, n);
        if (v >= 0)
            rc = vrt__tok_putc(&b, (char)v); /* one raw byte, maybe part of a character */
        else
            replace = 0;
        break;
    }
    case TK_D_METASPACE:
        /* Every replacement is a space here, also at the start: whether the
         * first one was prepended is the caller's question. */
        for (size_t k = 0; rc == 0 && k < n;) {
            size_t cl = d->content_len;
            if (cl && k + cl <= n && memcmp(s + k, d->content, cl) == 0) {
                rc = vrt__tok_putc(&b, ' ');
                k += cl;
            } else {
                rc = vrt__tok_putc(&b, s[k++]);
            }
        }
        break;
    default: /* Fuse and Strip act on the whole text, not on one token */ replace = 0; break;
    }
    if (rc == 0 && replace) {
        if (!b.p)
            rc = vrt__tok_put(&b, "", 0);
        if (rc == 0) {
            vrt__tok_buf_free(cur);
            *cur = b;
            return 0;
        }
    }
    vrt__tok_buf_free(&b);
    return rc;
}

int vrt__tok_token_surface(const vrt_tokenizer *t, int32_t id, vrt_strbuf *out)
{
    out->len = 0;
    const char *p = vrt__tok_dec_piece(t, id);
    size_t pl = p ? strlen(p) : 0;
    /* A byte-fallback piece of the model is its byte whatever the decoder
     * (a Metaspace-only decoder prints it as "<0xE2>"). */
    int v = t->bpe.byte_fallback && !t->id_dec[id] && p ? byte_token(p, pl) : -1;
    if (v >= 0)
        return vrt__tok_putc(out, (char)v);
    vrt_strbuf cur = {0};
    int rc = vrt__tok_put(&cur, p ? p : "", pl);
    if (rc == 0 && t->has_decoder)
        rc = surface_step(&t->decoder, &cur);
    if (rc == 0)
        rc = vrt__tok_put(out, cur.p ? cur.p : "", cur.len);
    vrt__tok_buf_free(&cur);
    return rc;
}
