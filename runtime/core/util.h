/* util.h — small string helpers shared by the CLI and the runtime. */
#ifndef VRT_CORE_UTIL_H
#define VRT_CORE_UTIL_H

#include "vrt.h"

#include <stddef.h>

/* Edit distance between a and b (bytes; a swap of neighbours is one edit). */
int vrt_levenshtein(const char *a, const char *b);
/* The candidate closest to word if it is a plausible typo of it, else NULL. */
const char *vrt_suggest(const char *word, const char *const *candidates, size_t n);

/* Characters (code points) in the UTF-8 text s[0..n): the bytes that are
 * not continuation bytes (OpenAI text_offset counts characters). */
size_t vrt_utf8_count(const char *s, size_t n);

/* dir + "/" + name, malloc'd (no doubled slash); NULL when out of memory. */
char *vrt_path_join(const char *dir, const char *name);

/* Reads a whole file into a malloc'd, NUL-terminated buffer (*out, *len
 * bytes, len may be NULL). what names the kind of file for the message
 * when it is larger than max_bytes ("a config": VRT_EFORMAT). Returns 0,
 * 1 when the file does not exist and missing_ok is set, or VRT_ENOENT,
 * VRT_EIO, VRT_ENOMEM, VRT_EFORMAT with a message naming the path. */
int vrt_read_file(const char *path, size_t max_bytes, const char *what, int missing_ok, char **out,
                  size_t *len, vrt_err *err);

/* A growable NUL-terminated string for building output (JSON headers,
 * metrics, chat prompts). A failed allocation sets oom and every later
 * append does nothing, so callers check oom once at the end. */
typedef struct vrt_strbuf {
    char *p; /* [len] bytes + NUL (NULL while empty) */
    size_t len, cap;
    int oom;
} vrt_strbuf;
/* Makes room for extra more bytes and the NUL: 0, or -1 with oom set. */
int vrt_strbuf_reserve(vrt_strbuf *b, size_t extra);
void vrt_strbuf_put(vrt_strbuf *b, const char *s, size_t n);

/* Writes len bytes to dir/name (created or truncated); VRT_EIO or
 * VRT_ENOMEM with a message naming the path. */
int vrt_write_file(const char *dir, const char *name, const void *data, size_t len, vrt_err *err);

/* Makes dir ready to receive a model: creates it (mkdir -p) or checks that
 * it is a directory and empty; a non-empty one is refused unless force,
 * and with force the files named in stale (left by another format, and
 * that loaders would read first) are removed. */
int vrt_prepare_out_dir(const char *dir, int force, const char *const *stale, size_t n_stale,
                        vrt_err *err);

/* Makes the array *pp (the address of an array pointer, e.g. &l->v) hold at
 * least need elements of elem bytes: when need > *cap, reallocates it to
 * twice the capacity (at least 8, and at least need) and updates *cap.
 * Elements already there are kept. Returns 0, or VRT_ENOMEM leaving *pp and
 * *cap as they were. Callers then append with (*pp)[n++] = x. */
int vrt_grow(void *pp, size_t *cap, size_t need, size_t elem);

/* More of vrt_strbuf: appends the NUL-terminated s; appends printf output
 * (a format error sets oom too); frees the storage, leaving b empty and
 * usable. */
void vrt_strbuf_puts(vrt_strbuf *b, const char *s);
void vrt_strbuf_printf(vrt_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vrt_strbuf_free(vrt_strbuf *b);

#endif
