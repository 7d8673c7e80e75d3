/* util.c — see util.h. */
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

int vrt_levenshtein(const char *a, const char *b)
{
    /* Optimal string alignment: insert, delete, substitute, or swap two
     * neighbours, each one edit ("chekc" is one edit from "check"). */
    size_t la = strlen(a), lb = strlen(b), w = lb + 1;
    int *d = malloc((la + 1) * w * sizeof *d);
    if (!d)
        return (int)(la > lb ? la : lb);
    for (size_t i = 0; i <= la; i++)
        d[i * w] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int v = d[(i - 1) * w + j - 1] + (a[i - 1] != b[j - 1]);
            if (d[(i - 1) * w + j] + 1 < v)
                v = d[(i - 1) * w + j] + 1;
            if (d[i * w + j - 1] + 1 < v)
                v = d[i * w + j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[(i - 2) * w + j - 2] + 1 < v)
                v = d[(i - 2) * w + j - 2] + 1;
            d[i * w + j] = v;
        }
    }
    int r = d[la * w + lb];
    free(d);
    return r;
}

const char *vrt_suggest(const char *word, const char *const *candidates, size_t n)
{
    const char *best = NULL;
    int bestd = 1 << 30;
    for (size_t i = 0; i < n; i++) {
        int d = vrt_levenshtein(word, candidates[i]);
        if (d < bestd) {
            bestd = d;
            best = candidates[i];
        }
    }
    int limit = (int)strlen(word) / 3;
    if (limit < 2)
        limit = 2;
    return best && bestd <= limit ? best : NULL;
}
