/* util.h — small string helpers shared by the CLI and the runtime. */
#ifndef VRT_CORE_UTIL_H
#define VRT_CORE_UTIL_H

#include <stddef.h>

/* Edit distance between a and b (bytes; a swap of neighbours is one edit). */
int vrt_levenshtein(const char *a, const char *b);
/* The candidate closest to word if it is a plausible typo of it, else NULL. */
const char *vrt_suggest(const char *word, const char *const *candidates, size_t n);

#endif
