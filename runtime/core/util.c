/* util.c — see util.h. */
#include "core/util.h"

#include "core/err.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *vrt_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/')
        p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

int vrt_read_file(const char *path, size_t max_bytes, const char *what, int missing_ok, char **out,
                  size_t *len, vrt_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT && missing_ok)
            return 1;
        return vrt_err_set(err, errno == ENOENT ? VRT_ENOENT : VRT_EIO, "%s: cannot open: %s", path,
                           strerror(errno));
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (vrt_grow(&buf, &cap, n + 65537, 1)) {
            free(buf);
            fclose(f);
            return vrt_err_set(err, VRT_ENOMEM, "%s: out of memory", path);
        }
        size_t k = fread(buf + n, 1, 65536, f);
        n += k;
        if (n > max_bytes) {
            free(buf);
            fclose(f);
            return vrt_err_set(err, VRT_EFORMAT, "%s: larger than %zu bytes, not %s", path,
                               max_bytes, what);
        }
        if (k < 65536)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return vrt_err_set(err, VRT_EIO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return 0;
}

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

size_t vrt_utf8_count(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
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

int vrt_write_file(const char *dir, const char *name, const void *data, size_t len, vrt_err *err)
{
    char *path = vrt_path_join(dir, name);
    if (!path)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    int rc = 0;
    FILE *f = fopen(path, "wb");
    if (!f) {
        rc = vrt_err_set(err, VRT_EIO, "%s: cannot create: %s", path, strerror(errno));
    } else {
        size_t k = fwrite(data, 1, len, f);
        int e = errno;
        if (fclose(f) != 0 && k == len)
            e = errno, k = 0;
        if (k != len)
            rc = vrt_err_set(err, VRT_EIO, "%s: write failed: %s", path, strerror(e));
    }
    free(path);
    return rc;
}

/* mkdir -p dir (mode 0755); VRT_EIO naming the part that failed. */
static int make_dirs(const char *dir, vrt_err *err)
{
    char *p = strdup(dir);
    if (!p)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            rc = vrt_err_set(err, VRT_EIO, "%s: cannot create directory: %s", p, strerror(errno));
            break;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    free(p);
    return rc;
}

int vrt_prepare_out_dir(const char *dir, int force, const char *const *stale, size_t n_stale,
                        vrt_err *err)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT)
            return vrt_err_set(err, VRT_EIO, "%s: %s", dir, strerror(errno));
        return make_dirs(dir, err);
    }
    if (!S_ISDIR(st.st_mode))
        return vrt_err_set(err, VRT_EINVAL, "%s exists and is not a directory", dir);
    DIR *d = opendir(dir);
    if (!d)
        return vrt_err_set(err, VRT_EIO, "%s: cannot read directory: %s", dir, strerror(errno));
    int empty = 1;
    struct dirent *de;
    while (empty && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    if (empty)
        return 0;
    if (!force)
        return vrt_err_set(err, VRT_EINVAL,
                           "%s is not empty; refusing to overwrite it (pass --force to replace "
                           "the model files in it, or choose another directory)",
                           dir);
    for (size_t i = 0; i < n_stale; i++) {
        char *p = vrt_path_join(dir, stale[i]);
        if (!p)
            return vrt_err_set(err, VRT_ENOMEM, "out of memory");
        int r = unlink(p);
        int e = errno;
        free(p);
        if (r != 0 && e != ENOENT)
            return vrt_err_set(err, VRT_EIO, "%s/%s: cannot remove: %s", dir, stale[i],
                               strerror(e));
    }
    return 0;
}

int vrt_strbuf_reserve(vrt_strbuf *b, size_t extra)
{
    if (b->oom)
        return -1;
    size_t need = b->len + extra + 1;
    if (need < extra) { /* wrapped */
        b->oom = 1;
        return -1;
    }
    if (!b->cap && need < 256)
        need = 256; /* the first storage: at least 256 bytes */
    if (vrt_grow(&b->p, &b->cap, need, 1)) {
        b->oom = 1;
        return -1;
    }
    return 0;
}

void vrt_strbuf_put(vrt_strbuf *b, const char *s, size_t n)
{
    if (vrt_strbuf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

int vrt_grow(void *pp, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 8;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return VRT_ENOMEM;
        n *= 2;
    }
    if (elem && n > SIZE_MAX / elem)
        return VRT_ENOMEM;
    void *p;
    memcpy(&p, pp, sizeof p);
    void *np = realloc(p, n * elem);
    if (!np)
        return VRT_ENOMEM;
    memcpy(pp, &np, sizeof np);
    *cap = n;
    return 0;
}

void vrt_strbuf_puts(vrt_strbuf *b, const char *s)
{
    vrt_strbuf_put(b, s, strlen(s));
}

void vrt_strbuf_printf(vrt_strbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof tmp) {
        vrt_strbuf_put(b, tmp, (size_t)n);
        return;
    }
    if (vrt_strbuf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void vrt_strbuf_free(vrt_strbuf *b)
{
    free(b->p);
    *b = (vrt_strbuf){0};
}
