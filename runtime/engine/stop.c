/* stop.c — stop-string matching over streamed text (see stop.h).
 *
 * Invariant: the released text plus the held-back tail is the whole text
 * fed so far, and the tail (hold bytes) is the longest suffix of the text
 * that is a prefix of some stop string, namely of stops[hold_from]. A match
 * of stop j starts no earlier than the held tail (its first lens[j] - 1
 * bytes were a partial match), so released text is never retracted.
 */
#include "engine/stop.h"

#include "core/err.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

void vrt_stop_out_free(vrt_stop_out *o)
{
    if (!o)
        return;
    free(o->data);
    o->data = NULL;
    o->len = o->cap = 0;
}

static int out_append(vrt_stop_out *o, const char *p, size_t n, vrt_err *err)
{
    if (vrt_grow(&o->data, &o->cap, o->len + n + 1, 1))
        return vrt_err_set(err, VRT_ENOMEM, "stop check: out of memory for %zu bytes of text",
                           o->len + n + 1);
    if (n)
        memcpy(o->data + o->len, p, n);
    o->len += n;
    o->data[o->len] = '\0';
    return 0;
}

/* Appends the first n bytes of (held ++ text), held being hold bytes. */
static int out_append2(vrt_stop_out *o, const char *held, size_t hold, const char *text, size_t n,
                       vrt_err *err)
{
    size_t a = n < hold ? n : hold;
    int rc = out_append(o, held, a, err);
    if (rc == 0 && n > a)
        rc = out_append(o, text, n - a, err);
    return rc;
}

int vrt_stop_init(vrt_stop_checker *s, const char *const *stops, int n_stops, vrt_err *err)
{
    memset(s, 0, sizeof *s);
    s->matched = -1;
    s->hold_from = 0;
    if (n_stops < 0 || (n_stops > 0 && !stops))
        return vrt_err_set(err, VRT_EINVAL, "stop strings: bad list (%d entries)", n_stops);
    if (n_stops == 0)
        return 0;
    for (int j = 0; j < n_stops; j++) {
        if (!stops[j])
            return vrt_err_set(err, VRT_EINVAL, "stop string %d is NULL", j);
        if (!stops[j][0])
            return vrt_err_set(err, VRT_EINVAL,
                               "stop string %d is empty; every stop string needs at least one "
                               "character",
                               j);
    }
    size_t n = (size_t)n_stops;
    s->stops = calloc(n, sizeof *s->stops);
    s->lens = calloc(n, sizeof *s->lens);
    s->fail = calloc(n, sizeof *s->fail);
    s->state = calloc(n, sizeof *s->state);
    if (!s->stops || !s->lens || !s->fail || !s->state)
        goto oom;
    s->n_stops = n_stops;
    for (int j = 0; j < n_stops; j++) {
        size_t len = strlen(stops[j]);
        s->lens[j] = len;
        s->stops[j] = malloc(len + 1);
        s->fail[j] = malloc(len * sizeof **s->fail);
        if (!s->stops[j] || !s->fail[j])
            goto oom;
        memcpy(s->stops[j], stops[j], len + 1);
        if (len > s->max_len)
            s->max_len = len;
        /* fail[i]: longest proper prefix of stop[0..i] that is also its
         * suffix. */
        const char *w = s->stops[j];
        size_t *f = s->fail[j];
        f[0] = 0;
        size_t k = 0;
        for (size_t i = 1; i < len; i++) {
            while (k > 0 && w[i] != w[k])
                k = f[k - 1];
            if (w[i] == w[k])
                k++;
            f[i] = k;
        }
    }
    return 0;
oom:
    vrt_stop_free(s);
    return vrt_err_set(err, VRT_ENOMEM, "stop strings: out of memory for %d strings", n_stops);
}

int vrt_stop_feed(vrt_stop_checker *s, const char *text, size_t len, vrt_stop_out *out,
                  int *matched, vrt_err *err)
{
    if (matched)
        *matched = s->matched;
    if (!out || (len > 0 && !text))
        return vrt_err_set(err, VRT_EINVAL, "stop check: text and output buffer are required");
    if (s->matched >= 0)
        return 0;
    if (s->n_stops == 0) {
        s->released += len;
        return out_append(out, text, len, err);
    }
    const char *held = s->stops[s->hold_from];
    size_t old_hold = s->hold;
    for (size_t b = 0; b < len; b++) {
        char c = text[b];
        int best = -1;
        for (int j = 0; j < s->n_stops; j++) {
            const char *w = s->stops[j];
            size_t q = s->state[j];
            while (q > 0 && w[q] != c)
                q = s->fail[j][q - 1];
            if (w[q] == c)
                q++;
            s->state[j] = q;
            if (q == s->lens[j] && (best < 0 || s->lens[j] > s->lens[best]))
                best = j;
        }
        if (best >= 0) {
            /* Positions in (held ++ text): the match ends after byte
             * old_hold + b and starts lens[best] bytes earlier. */
            size_t start = old_hold + b + 1 - s->lens[best];
            s->matched = best;
            s->hold = 0;
            if (matched)
                *matched = best;
            s->released += start;
            return out_append2(out, held, old_hold, text, start, err);
        }
    }
    size_t hold = 0;
    int from = 0;
    for (int j = 0; j < s->n_stops; j++) {
        if (s->state[j] > hold) {
            hold = s->state[j];
            from = j;
        }
    }
    size_t n_out = old_hold + len - hold;
    int rc = out_append2(out, held, old_hold, text, n_out, err);
    s->hold = hold;
    s->hold_from = from;
    s->released += n_out;
    return rc;
}

int vrt_stop_flush(vrt_stop_checker *s, vrt_stop_out *out, vrt_err *err)
{
    if (!out)
        return vrt_err_set(err, VRT_EINVAL, "stop check: output buffer is required");
    if (s->matched >= 0 || s->hold == 0)
        return 0;
    int rc = out_append(out, s->stops[s->hold_from], s->hold, err);
    s->released += s->hold;
    s->hold = 0;
    for (int j = 0; j < s->n_stops; j++)
        s->state[j] = 0;
    return rc;
}

size_t vrt_stop_held(const vrt_stop_checker *s)
{
    return s->hold;
}

void vrt_stop_free(vrt_stop_checker *s)
{
    if (!s)
        return;
    for (int j = 0; j < s->n_stops; j++) {
        if (s->stops)
            free(s->stops[j]);
        if (s->fail)
            free(s->fail[j]);
    }
    free(s->stops);
    free(s->lens);
    free(s->fail);
    free(s->state);
    memset(s, 0, sizeof *s);
    s->matched = -1;
}

int vrt_is_stop_token(const int32_t *stop_ids, int n, int32_t id)
{
    for (int i = 0; i < n; i++)
        if (stop_ids[i] == id)
            return 1;
    return 0;
}
