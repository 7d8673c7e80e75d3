/* stop.h — stop strings over streamed text, and stop token ids.
 *
 * The detokenizer hands each sequence's new text to vrt_stop_feed piece by
 * piece. The checker passes text through as soon as it is safe: a tail is
 * held back only while it could still be the beginning of a stop string, so
 * a client never sees text that is later retracted. A stop string is found
 * wherever it lies, also across piece boundaries; the text handed out ends
 * right before it (like TGI's and OpenAI's APIs, the stop string itself is
 * not part of the output), and everything after it is dropped. When several
 * stop strings occur, the one that is complete first in the stream wins; of
 * those complete at the same byte, the longest (it starts earliest).
 *
 * Matching is byte-wise (UTF-8 stop strings need nothing special, and the
 * text released always ends on a character boundary when the input and the
 * stop strings are valid UTF-8): one KMP automaton per stop string, so a
 * byte costs O(number of stop strings) amortized and O(total stop length)
 * at worst. The held-back tail is always a prefix of one stop string, so the
 * checker stores no text, only one state per stop string.
 */
#ifndef VRT_ENGINE_STOP_H
#define VRT_ENGINE_STOP_H

#include "vrt.h"

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer the checker appends released text to. The caller
 * owns it, sets len = 0 whenever it has consumed the text, and frees it
 * with vrt_stop_out_free; it grows geometrically, so a long generation
 * allocates a handful of times, not per token. data is NUL-terminated. */
typedef struct vrt_stop_out {
    char *data; /* [cap] */
    size_t len, cap;
} vrt_stop_out;

void vrt_stop_out_free(vrt_stop_out *o);

typedef struct vrt_stop_checker {
    int n_stops;
    char **stops;      /* [n_stops] copies of the stop strings */
    size_t *lens;      /* [n_stops] their lengths in bytes */
    size_t **fail;     /* [n_stops][lens[j]] KMP failure function */
    size_t *state;     /* [n_stops] bytes of stop j matched at the end of the text */
    size_t max_len;    /* longest stop string */
    size_t hold;       /* bytes held back = max of state[] */
    int hold_from;     /* a stop string whose prefix the held bytes are */
    int matched;       /* index of the stop string found, or -1 */
    uint64_t released; /* bytes released so far */
} vrt_stop_checker;

/* Copies the n_stops stop strings (each non-empty, NUL-terminated).
 * n_stops may be 0 (the checker passes everything through). Returns 0,
 * VRT_EINVAL (naming the bad stop string) or VRT_ENOMEM; on error *s is
 * left freeable. */
int vrt_stop_init(vrt_stop_checker *s, const char *const *stops, int n_stops, vrt_err *err);

/* Feeds len bytes of generated text. Appends the text that is now safe to
 * show to *out and sets *matched to the index of the stop string found, or
 * -1. Once a stop string was found, further feeds release nothing and report
 * the same index. Returns 0 or VRT_ENOMEM / VRT_EINVAL. */
int vrt_stop_feed(vrt_stop_checker *s, const char *text, size_t len, vrt_stop_out *out,
                  int *matched, vrt_err *err);

/* At the end of generation (length limit, stop token): appends the
 * held-back text, which can no longer become a stop string, to *out.
 * Releases nothing after a stop string matched. Returns 0 or VRT_ENOMEM. */
int vrt_stop_flush(vrt_stop_checker *s, vrt_stop_out *out, vrt_err *err);

/* Bytes currently held back (for tests and metrics). */
size_t vrt_stop_held(const vrt_stop_checker *s);

void vrt_stop_free(vrt_stop_checker *s);

/* 1 if id is one of stop_ids[0..n), else 0. */
int vrt_is_stop_token(const int32_t *stop_ids, int n, int32_t id);

#endif
