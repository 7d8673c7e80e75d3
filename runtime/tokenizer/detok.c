/* detok.c — the incremental detokenizer used for streaming output.
 *
 * Token strings cannot be decoded one by one: a character may be spread
 * over several byte-level or <0xHH> tokens, and decoders such as Strip and
 * Metaspace treat the first token of the list differently. So, like the
 * tokenizers crate's DecodeStream, each push decodes a small window of ids
 * and emits what the window adds to the text already emitted. The window is
 * [anchor, held ids...]: the anchor is the last token already emitted, so
 * the decoder sees it first both in the prefix decode(anchor) and in
 * decode(window), and the held ids are decoded exactly as in a full decode
 * (they are never first). Text is held back while it ends in U+FFFD (an
 * incomplete UTF-8 sequence that the next token may complete) and while the
 * last token is a <0xHH> byte piece of a ByteFallback decoder (a byte run
 * decodes as one string only when the whole run is valid UTF-8). Skipped
 * special tokens contribute nothing to decode and never enter the window.
 * Hence the pieces of all pushes plus flush equal vrt_tokenizer_decode of
 * the same ids for the decoders of tokenizer.json that tok supports.
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

void vrt_detok_init(vrt_detok *d, const vrt_tokenizer *t, int skip_special_tokens)
{
    memset(d, 0, sizeof(*d));
    d->t = t;
    d->skip_special_tokens = skip_special_tokens;
}

void vrt_detok_free(vrt_detok *d)
{
    free(d->ids);
    free(d->prefix);
    memset(d, 0, sizeof(*d));
}

static int give(const char *s, size_t n, char **piece, size_t *len)
{
    char *p = malloc(n + 1);
    if (!p)
        return VRT_ENOMEM;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    *piece = p;
    if (len)
        *len = n;
    return 0;
}

/* 1 when id is a "<0xHH>" piece that a ByteFallback decoder will merge with
 * its neighbours. */
static int is_byte_piece(const vrt_tokenizer *t, int32_t id)
{
    if (!t->has_decoder || !vrt__tok_decoder_has_bytefallback(&t->decoder))
        return 0;
    const char *p = vrt__tok_dec_piece(t, id);
    if (!p || strlen(p) != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>')
        return 0;
    for (int i = 3; i < 5; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

static int ends_with_fffd(const char *s, size_t n)
{
    return n >= 3 && memcmp(s + n - 3, "\xEF\xBF\xBD", 3) == 0;
}

int vrt_detok_prime(vrt_detok *d, const int32_t *ctx, size_t n, vrt_err *err)
{
    const vrt_tokenizer *t = d->t;
    if (n == 0 || d->n != 0)
        return 0;
    int32_t id = ctx[n - 1];
    if (!vrt__tok_piece(t, id) || t->id_skip[id] || is_byte_piece(t, id))
        return 0;
    char *anchor = NULL;
    size_t alen = 0;
    int rc = vrt_tokenizer_decode(t, &id, 1, 0, &anchor, &alen, err);
    if (rc)
        return rc;
    int32_t *v = realloc(d->ids, 16 * sizeof(*v));
    if (!v) {
        free(anchor);
        return vrt_err_set(err, VRT_ENOMEM, "detokenize: out of memory");
    }
    d->ids = v;
    d->cap = 16;
    d->ids[0] = id;
    d->n = d->read = 1;
    free(d->prefix);
    d->prefix = anchor;
    d->prefix_len = alen;
    return 0;
}

int vrt_detok_knows(const vrt_detok *d, int32_t id)
{
    return vrt__tok_piece(d->t, id) != NULL;
}

int vrt_detok_push(vrt_detok *d, int32_t id, char **piece, size_t *len, vrt_err *err)
{
    const vrt_tokenizer *t = d->t;
    *piece = NULL;
    if (len)
        *len = 0;
    if (!vrt__tok_piece(t, id))
        return vrt_err_set(err, VRT_ERANGE,
                           "detokenize: token id %d is not in the vocabulary of %s (ids 0..%zu)",
                           (int)id, t->dir, t->n_ids ? t->n_ids - 1 : 0);
    if (d->skip_special_tokens && t->id_skip[id])
        return give("", 0, piece, len);
    if (vrt_grow(&d->ids, &d->cap, d->n + 1, sizeof *d->ids))
        return vrt_err_set(err, VRT_ENOMEM, "detokenize: out of memory");
    d->ids[d->n++] = id;
    if (is_byte_piece(t, id))
        return give("", 0, piece, len);

    char *full = NULL;
    size_t flen = 0;
    int rc = vrt_tokenizer_decode(t, d->ids, d->n, 0, &full, &flen, err);
    if (rc) {
        d->n--;
        return rc;
    }
    /* A mismatch with the prefix cannot happen with the supported decoders;
     * holding keeps the output exact until flush if it ever does. */
    if (flen <= d->prefix_len || ends_with_fffd(full, flen) ||
        memcmp(full, d->prefix ? d->prefix : "", d->prefix_len) != 0) {
        free(full);
        return give("", 0, piece, len);
    }
    /* Emit the new text, then re-anchor the window on this token. */
    char *anchor = NULL;
    size_t alen = 0;
    if ((rc = vrt_tokenizer_decode(t, &id, 1, 0, &anchor, &alen, err))) {
        free(full);
        d->n--;
        return rc;
    }
    memmove(full, full + d->prefix_len, flen - d->prefix_len + 1);
    *piece = full;
    if (len)
        *len = flen - d->prefix_len;
    free(d->prefix);
    d->prefix = anchor;
    d->prefix_len = alen;
    d->ids[0] = id;
    d->n = 1;
    d->read = 1;
    return 0;
}

int vrt_detok_flush(vrt_detok *d, char **piece, size_t *len, vrt_err *err)
{
    *piece = NULL;
    if (len)
        *len = 0;
    char *full = NULL;
    size_t flen = 0;
    int rc = 0;
    if (d->n > d->read) {
        rc = vrt_tokenizer_decode(d->t, d->ids, d->n, 0, &full, &flen, err);
        if (rc)
            return rc;
        size_t skip = 0; /* the common prefix with the text already emitted */
        while (skip < flen && skip < d->prefix_len && full[skip] == d->prefix[skip])
            skip++;
        while (skip > 0 && skip < flen && ((unsigned char)full[skip] & 0xC0) == 0x80)
            skip--; /* never split a character */
        memmove(full, full + skip, flen - skip + 1);
        *piece = full;
        if (len)
            *len = flen - skip;
    } else {
        rc = give("", 0, piece, len);
        if (rc)
            return vrt_err_set(err, rc, "detokenize: out of memory");
    }
    free(d->prefix);
    d->prefix = NULL;
    d->prefix_len = 0;
    d->n = d->read = 0;
    return 0;
}
