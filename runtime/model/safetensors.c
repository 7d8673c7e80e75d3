/* safetensors.c — safetensors header parser, mmap reader, dtype
 * conversions and writer (see safetensors.h and docs/formats.md §1).
 *
 * The header parser copies the N header bytes into a NUL-terminated buffer
 * and hands them to cJSON; all integers are checked to be exact
 * non-negative integers below 2^53 (cJSON stores numbers as doubles) and
 * all size arithmetic is done in uint64_t with overflow checks, so a
 * malformed or hostile file yields an error, never a crash.
 */
#include "model/safetensors.h"

#include "backend/half.h"
#include "core/err.h"
#include "core/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tensor names are cut to this many bytes in messages. */
#define NAME_FMT "%.200s"

static const struct {
    const char *name;
    int bits;
} g_dtypes[VRT_ST_NDTYPES] = {
    [VRT_ST_BOOL] = {"BOOL", 8},
    [VRT_ST_U8] = {"U8", 8},
    [VRT_ST_I8] = {"I8", 8},
    [VRT_ST_F8_E5M2] = {"F8_E5M2", 8},
    [VRT_ST_F8_E4M3] = {"F8_E4M3", 8},
    [VRT_ST_F8_E8M0] = {"F8_E8M0", 8},
    [VRT_ST_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 8},
    [VRT_ST_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 8},
    [VRT_ST_I16] = {"I16", 16},
    [VRT_ST_U16] = {"U16", 16},
    [VRT_ST_F16] = {"F16", 16},
    [VRT_ST_BF16] = {"BF16", 16},
    [VRT_ST_I32] = {"I32", 32},
    [VRT_ST_U32] = {"U32", 32},
    [VRT_ST_F32] = {"F32", 32},
    [VRT_ST_I64] = {"I64", 64},
    [VRT_ST_U64] = {"U64", 64},
    [VRT_ST_F64] = {"F64", 64},
    [VRT_ST_C64] = {"C64", 64},
    [VRT_ST_F4] = {"F4", 4},
    [VRT_ST_F6_E2M3] = {"F6_E2M3", 6},
    [VRT_ST_F6_E3M2] = {"F6_E3M2", 6},
};

#define SUPPORTED_DTYPES                                                                           \
    "BOOL, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, "                          \
    "I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64, C64, F4, F6_E2M3, "                        \
    "F6_E3M2"

const char *vrt_st_dtype_name(int dtype)
{
    if (dtype < 0 || dtype >= VRT_ST_NDTYPES)
        return "?";
    return g_dtypes[dtype].name;
}

int vrt_st_dtype_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < VRT_ST_NDTYPES; i++)
        if (strcmp(s, g_dtypes[i].name) == 0)
            return i;
    return -1;
}

int vrt_st_dtype_bits(int dtype)
{
    if (dtype < 0 || dtype >= VRT_ST_NDTYPES)
        return 0;
    return g_dtypes[dtype].bits;
}

uint64_t vrt_st_numel(const vrt_st_tensor *t)
{
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (uint64_t)t->shape[i]; /* validated not to overflow */
    return n;
}

/* nbytes of numel elements of dtype; -1 when it overflows or is not a
 * whole number of bytes (sub-byte dtypes). */
static int shape_nbytes(int dtype, int ndim, const int64_t *shape, uint64_t *out)
{
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        if (__builtin_mul_overflow(n, (uint64_t)shape[i], &n))
            return -1;
    }
    uint64_t bits;
    if (__builtin_mul_overflow(n, (uint64_t)vrt_st_dtype_bits(dtype), &bits))
        return -1;
    if (bits % 8 != 0)
        return -2;
    *out = bits / 8;
    return 0;
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap)
        snprintf(buf + k, cap - k, "]");
}

/* ---- header parsing --------------------------------------------------- */

/* Exact non-negative integer below 2^53 (all offsets/shapes fit: the
 * schema bounds them by 2^48). */
static int json_u64(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return -1;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || d != floor(d))
        return -1;
    *out = (uint64_t)d;
    return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const vrt_st_tensor *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    uint64_t xe = x->offset + x->nbytes, ye = y->offset + y->nbytes;
    if (xe != ye)
        return xe < ye ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* qsort_r is a GNU extension; the name index is sorted through a static
 * pointer guarded by a thread-local. */
static _Thread_local const vrt_st_tensor *g_sort_base;

static int cmp_idx_by_name(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return strcmp(g_sort_base[x].name, g_sort_base[y].name);
}

void vrt_st_header_free(vrt_st_header *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->n_tensors; i++)
        free((char *)h->tensors[i].name);
    for (int i = 0; i < h->n_meta; i++) {
        free(h->meta_keys[i]);
        free(h->meta_values[i]);
    }
    free(h->tensors);
    free(h->meta_keys);
    free(h->meta_values);
    free(h->by_name_);
    memset(h, 0, sizeof *h);
}

static int parse_metadata(const cJSON *m, vrt_st_header *h, vrt_err *err)
{
    if (cJSON_IsNull(m))
        return 0;
    if (!cJSON_IsObject(m))
        return vrt_err_set(err, VRT_EFORMAT, "__metadata__ must be an object of strings");
    int n = cJSON_GetArraySize(m);
    if (n == 0)
        return 0;
    h->meta_keys = calloc((size_t)n, sizeof *h->meta_keys);
    h->meta_values = calloc((size_t)n, sizeof *h->meta_values);
    if (!h->meta_keys || !h->meta_values)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory for __metadata__");
    const cJSON *kv;
    cJSON_ArrayForEach(kv, m)
    {
        if (!cJSON_IsString(kv) || !kv->valuestring)
            return vrt_err_set(err, VRT_EFORMAT,
                               "__metadata__ key '" NAME_FMT
                               "' is not a string (only string values are "
                               "allowed)",
                               kv->string ? kv->string : "");
        for (int i = 0; i < h->n_meta; i++)
            if (strcmp(h->meta_keys[i], kv->string) == 0)
                return vrt_err_set(err, VRT_EFORMAT,
                                   "__metadata__ key '" NAME_FMT "' appears twice", kv->string);
        h->meta_keys[h->n_meta] = strdup(kv->string);
        h->meta_values[h->n_meta] = strdup(kv->valuestring);
        h->n_meta++;
        if (!h->meta_keys[h->n_meta - 1] || !h->meta_values[h->n_meta - 1])
            return vrt_err_set(err, VRT_ENOMEM, "out of memory for __metadata__");
    }
    return 0;
}

/* Fills t from the entry e (name already set). */
static int parse_entry(const cJSON *e, vrt_st_tensor *t, vrt_err *err)
{
    const char *nm = t->name;
    if (!cJSON_IsObject(e))
        return vrt_err_set(err, VRT_EFORMAT,
                           "tensor '" NAME_FMT "': entry must be an object with dtype, shape, "
                           "data_offsets",
                           nm);
    const cJSON *jd = NULL, *js = NULL, *jo = NULL, *kv;
    cJSON_ArrayForEach(kv, e)
    {
        const cJSON **slot = NULL;
        if (strcmp(kv->string, "dtype") == 0)
            slot = &jd;
        else if (strcmp(kv->string, "shape") == 0)
            slot = &js;
        else if (strcmp(kv->string, "data_offsets") == 0)
            slot = &jo;
        else
            continue; /* the reference reader ignores other keys too */
        if (*slot)
            return vrt_err_set(err, VRT_EFORMAT, "tensor '" NAME_FMT "': key '%s' appears twice",
                               nm, kv->string);
        *slot = kv;
    }
    if (!jd || !js || !jo)
        return vrt_err_set(err, VRT_EFORMAT, "tensor '" NAME_FMT "': missing '%s'", nm,
                           !jd   ? "dtype"
                           : !js ? "shape"
                                 : "data_offsets");
    if (!cJSON_IsString(jd) || !jd->valuestring)
        return vrt_err_set(err, VRT_EFORMAT, "tensor '" NAME_FMT "': dtype must be a string", nm);
    t->dtype = vrt_st_dtype_parse(jd->valuestring);
    if (t->dtype < 0)
        return vrt_err_set(err, VRT_EFORMAT,
                           "tensor '" NAME_FMT "': unknown dtype '%.32s' "
                           "(supported: " SUPPORTED_DTYPES ")",
                           nm, jd->valuestring);
    if (!cJSON_IsArray(js))
        return vrt_err_set(err, VRT_EFORMAT,
                           "tensor '" NAME_FMT "': shape must be an array of integers", nm);
    int nd = cJSON_GetArraySize(js);
    if (nd > VRT_ST_MAX_DIMS)
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "tensor '" NAME_FMT "': %d dimensions, at most %d are supported", nm, nd,
                           VRT_ST_MAX_DIMS);
    t->ndim = nd;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, js)
    {
        uint64_t v;
        if (json_u64(d, &v) != 0)
            return vrt_err_set(err, VRT_EFORMAT,
                               "tensor '" NAME_FMT "': shape[%d] is not a "
                               "non-negative integer below 2^53",
                               nm, i);
        t->shape[i++] = (int64_t)v;
    }
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return vrt_err_set(err, VRT_EFORMAT,
                           "tensor '" NAME_FMT "': data_offsets must be [begin, end]", nm);
    uint64_t b, en;
    if (json_u64(jo->child, &b) != 0 || json_u64(jo->child->next, &en) != 0)
        return vrt_err_set(err, VRT_EFORMAT,
                           "tensor '" NAME_FMT "': data_offsets must be "
                           "non-negative integers below 2^53",
                           nm);
    if (en < b)
        return vrt_err_set(err, VRT_EFORMAT,
                           "tensor '" NAME_FMT "': data_offsets [%llu, %llu] end before begin", nm,
                           (unsigned long long)b, (unsigned long long)en);
    uint64_t want;
    int r = shape_nbytes(t->dtype, t->ndim, t->shape, &want);
    char sh[256];
    format_shape(sh, sizeof sh, t->ndim, t->shape);
    if (r == -1)
        return vrt_err_set(err, VRT_EFORMAT,
                           "tensor '" NAME_FMT "': shape %s of %s overflows 64 bits", nm, sh,
                           vrt_st_dtype_name(t->dtype));
    if (r == -2)
        return vrt_err_set(err, VRT_EFORMAT,
                           "tensor '" NAME_FMT "': shape %s of %s is not a "
                           "whole number of bytes",
                           nm, sh, vrt_st_dtype_name(t->dtype));
    if (en - b != want)
        return vrt_err_set(err, VRT_EFORMAT,
                           "tensor '" NAME_FMT "': data_offsets [%llu, %llu] "
                           "hold %llu bytes but shape %s of %s needs %llu",
                           nm, (unsigned long long)b, (unsigned long long)en,
                           (unsigned long long)(en - b), sh, vrt_st_dtype_name(t->dtype),
                           (unsigned long long)want);
    t->offset = b;
    t->nbytes = want;
    return 0;
}

/* Checks that the (offset-sorted) tensors tile [0, data_len) exactly. */
static int check_tiling(const vrt_st_header *h, uint64_t data_len, vrt_err *err)
{
    uint64_t pos = 0;
    for (int i = 0; i < h->n_tensors; i++) {
        const vrt_st_tensor *t = &h->tensors[i];
        if (t->offset > pos)
            return vrt_err_set(err, VRT_EFORMAT,
                               "tensor '" NAME_FMT "' begins at %llu but the "
                               "previous tensor ends at %llu (a hole in the "
                               "data buffer)",
                               t->name, (unsigned long long)t->offset, (unsigned long long)pos);
        if (t->offset < pos)
            return vrt_err_set(err, VRT_EFORMAT,
                               "tensor '" NAME_FMT "' [%llu, %llu) overlaps "
                               "'" NAME_FMT "' which ends at %llu",
                               t->name, (unsigned long long)t->offset,
                               (unsigned long long)(t->offset + t->nbytes), h->tensors[i - 1].name,
                               (unsigned long long)pos);
        pos = t->offset + t->nbytes;
        if (pos > data_len)
            return vrt_err_set(err, VRT_EFORMAT,
                               "tensor '" NAME_FMT "' ends at %llu, past the "
                               "end of the data buffer (%llu bytes; truncated "
                               "file?)",
                               t->name, (unsigned long long)pos, (unsigned long long)data_len);
    }
    if (pos != data_len)
        return vrt_err_set(err, VRT_EFORMAT,
                           "the tensors end at %llu but the data buffer has "
                           "%llu bytes (%s)",
                           (unsigned long long)pos, (unsigned long long)data_len,
                           h->n_tensors ? "trailing bytes" : "no tensors");
    return 0;
}

static int parse_header_json(const cJSON *root, uint64_t data_len, vrt_st_header *h, vrt_err *err)
{
    int n = cJSON_GetArraySize(root);
    h->tensors = calloc((size_t)(n ? n : 1), sizeof *h->tensors);
    if (!h->tensors)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory for %d tensors", n);
    int seen_meta = 0, rc;
    const cJSON *kv;
    cJSON_ArrayForEach(kv, root)
    {
        if (strcmp(kv->string, "__metadata__") == 0) {
            if (seen_meta++)
                return vrt_err_set(err, VRT_EFORMAT, "__metadata__ appears twice");
            if ((rc = parse_metadata(kv, h, err)) != 0)
                return rc;
            continue;
        }
        vrt_st_tensor *t = &h->tensors[h->n_tensors];
        if (kv->string[0] == '\0')
            return vrt_err_set(err, VRT_EFORMAT, "a tensor has an empty name");
        t->name = strdup(kv->string);
        if (!t->name)
            return vrt_err_set(err, VRT_ENOMEM, "out of memory");
        h->n_tensors++;
        if ((rc = parse_entry(kv, t, err)) != 0)
            return rc;
    }
    /* Duplicate names: cJSON keeps both entries, so sort and compare. */
    h->by_name_ = malloc((size_t)(h->n_tensors ? h->n_tensors : 1) * sizeof *h->by_name_);
    if (!h->by_name_)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    qsort(h->tensors, (size_t)h->n_tensors, sizeof *h->tensors, cmp_by_offset);
    for (int i = 0; i < h->n_tensors; i++)
        h->by_name_[i] = i;
    g_sort_base = h->tensors;
    qsort(h->by_name_, (size_t)h->n_tensors, sizeof *h->by_name_, cmp_idx_by_name);
    g_sort_base = NULL;
    for (int i = 1; i < h->n_tensors; i++) {
        const char *a = h->tensors[h->by_name_[i - 1]].name;
        const char *b = h->tensors[h->by_name_[i]].name;
        if (strcmp(a, b) == 0)
            return vrt_err_set(err, VRT_EFORMAT,
                               "tensor '" NAME_FMT "' appears twice in the "
                               "header",
                               a);
    }
    return check_tiling(h, data_len, err);
}

int vrt_st_parse_header(const char *json, size_t json_len, uint64_t data_len, vrt_st_header *out,
                        vrt_err *err)
{
    memset(out, 0, sizeof *out);
    if (json_len > VRT_ST_MAX_HEADER)
        return vrt_err_set(err, VRT_EFORMAT,
                           "header is %zu bytes, more than the limit of "
                           "%llu",
                           json_len, (unsigned long long)VRT_ST_MAX_HEADER);
    if (json_len == 0 || json[0] != '{')
        return vrt_err_set(err, VRT_EFORMAT,
                           "header does not start with '{' (not a "
                           "safetensors file?)");
    if (memchr(json, '\0', json_len))
        return vrt_err_set(err, VRT_EFORMAT, "header contains a NUL byte");
    char *buf = malloc(json_len + 1);
    if (!buf)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory for a %zu-byte header", json_len);
    memcpy(buf, json, json_len);
    buf[json_len] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(buf, &end, 0);
    int rc = 0;
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= buf && at <= buf + json_len ? (size_t)(at - buf) : json_len;
        rc = vrt_err_set(err, VRT_EFORMAT,
                         "header is not valid JSON (error near byte %zu of "
                         "%zu)",
                         off, json_len);
        goto done;
    }
    for (const char *p = end; p && p < buf + json_len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = vrt_err_set(err, VRT_EFORMAT,
                             "header has trailing bytes after the JSON "
                             "object (at byte %zu)",
                             (size_t)(p - buf));
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        rc = vrt_err_set(err, VRT_EFORMAT, "header is not a JSON object");
        goto done;
    }
    rc = parse_header_json(root, data_len, out, err);
done:
    cJSON_Delete(root);
    free(buf);
    if (rc != 0)
        vrt_st_header_free(out);
    return rc;
}

const vrt_st_tensor *vrt_st_header_find(const vrt_st_header *h, const char *name)
{
    int lo = 0, hi = h->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const vrt_st_tensor *t = &h->tensors[h->by_name_[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const vrt_st_tensor *vrt_st_find(const vrt_st_file *f, const char *name)
{
    return vrt_st_header_find(&f->header, name);
}

/* ---- reader ----------------------------------------------------------- */

void vrt_st_close(vrt_st_file *f)
{
    if (!f)
        return;
    vrt_st_header_free(&f->header);
    if (f->map_)
        munmap(f->map_, f->map_size_);
    free(f->path);
    memset(f, 0, sizeof *f);
}

int vrt_st_open(vrt_st_file *f, const char *path, vrt_err *err)
{
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vrt_err_set(err, errno == ENOENT ? VRT_ENOENT : VRT_EIO, "%s: cannot open: %s", path,
                           strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return vrt_err_set(err, VRT_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return vrt_err_set(err, VRT_EIO, "%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < 8) {
        close(fd);
        return vrt_err_set(err, VRT_EFORMAT,
                           "%s: file is %llu bytes, too short for a "
                           "safetensors header (truncated?)",
                           path, (unsigned long long)size);
    }
    if (size > (uint64_t)SIZE_MAX) {
        close(fd);
        return vrt_err_set(err, VRT_ERANGE, "%s: file too large to map", path);
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return vrt_err_set(err, VRT_EIO, "%s: mmap failed: %s", path, strerror(e));
    f->map_ = map;
    f->map_size_ = (size_t)size;
    const unsigned char *p = map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | p[i];
    f->header_len = n;
    if (n > VRT_ST_MAX_HEADER)
        return vrt_err_set(err, VRT_EFORMAT,
                           "%s: header length %llu exceeds the limit of "
                           "%llu bytes (corrupt or not a safetensors file)",
                           path, (unsigned long long)n, (unsigned long long)VRT_ST_MAX_HEADER);
    if (n > size - 8)
        return vrt_err_set(err, VRT_EFORMAT,
                           "%s: header length %llu is larger than the file "
                           "(%llu bytes; truncated?)",
                           path, (unsigned long long)n, (unsigned long long)size);
    uint64_t data_len = size - 8 - n;
    int rc = vrt_st_parse_header((const char *)p + 8, (size_t)n, data_len, &f->header, err);
    if (rc != 0) {
        vrt_err_prefix(err, "%s: ", path);
        return rc;
    }
    const unsigned char *data = p + 8 + n;
    for (int i = 0; i < f->header.n_tensors; i++) {
        vrt_st_tensor *t = &f->header.tensors[i];
        t->data = data + t->offset;
        t->file = f->path;
    }
    return 0;
}

int vrt_st_to_f32(const vrt_st_tensor *t, float *out, vrt_err *err)
{
    uint64_t n = vrt_st_numel(t);
    const unsigned char *p = t->data;
    if (n && !p)
        return vrt_err_set(err, VRT_EINVAL, "tensor '" NAME_FMT "' has no data", t->name);
    switch (t->dtype) {
    case VRT_ST_F32:
        if (n)
            memcpy(out, p, n * 4);
        return 0;
    case VRT_ST_F16:
    case VRT_ST_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = t->dtype == VRT_ST_F16 ? vrt_f16_to_f32(h) : vrt_bf16_to_f32(h);
        }
        return 0;
    default:
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "tensor '" NAME_FMT "'%s%s: dtype %s cannot be "
                           "converted to float32 (supported: F32, F16, BF16)",
                           t->name, t->file ? " in " : "", t->file ? t->file : "",
                           vrt_st_dtype_name(t->dtype));
    }
}

int vrt_st_to_f16(const vrt_st_tensor *t, uint16_t *out, uint64_t *n_overflow, vrt_err *err)
{
    uint64_t n = vrt_st_numel(t), over = 0;
    const unsigned char *p = t->data;
    if (n_overflow)
        *n_overflow = 0;
    if (n && !p)
        return vrt_err_set(err, VRT_EINVAL, "tensor '" NAME_FMT "' has no data", t->name);
    switch (t->dtype) {
    case VRT_ST_F16:
        if (n)
            memcpy(out, p, n * 2);
        return 0;
    case VRT_ST_F32:
    case VRT_ST_BF16:
        for (uint64_t i = 0; i < n; i++) {
            float v;
            if (t->dtype == VRT_ST_F32) {
                memcpy(&v, p + 4 * i, 4);
            } else {
                uint16_t h;
                memcpy(&h, p + 2 * i, 2);
                v = vrt_bf16_to_f32(h);
            }
            uint16_t r = vrt_f32_to_f16(v);
            if ((r & 0x7fffu) == 0x7c00u && isfinite(v))
                over++;
            out[i] = r;
        }
        if (n_overflow)
            *n_overflow = over;
        return 0;
    default:
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "tensor '" NAME_FMT "'%s%s: dtype %s cannot be "
                           "converted to float16 (supported: F32, F16, BF16)",
                           t->name, t->file ? " in " : "", t->file ? t->file : "",
                           vrt_st_dtype_name(t->dtype));
    }
}

/* ---- writer ----------------------------------------------------------- */

struct vrt_st_wentry {
    char *name;
    int dtype, ndim;
    int64_t shape[VRT_ST_MAX_DIMS];
    uint64_t nbytes;
    const void *data;
    void *owned;         /* the copy, when add copied */
    vrt_st_fill_fn fill; /* generated tensors: data is NULL */
    void *fill_ctx;
};

void vrt_st_writer_init(vrt_st_writer *w)
{
    memset(w, 0, sizeof *w);
}

void vrt_st_writer_free(vrt_st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++) {
        free(w->entries_[i].name);
        free(w->entries_[i].owned);
    }
    free(w->entries_);
    memset(w, 0, sizeof *w);
}

static int writer_add(vrt_st_writer *w, const char *name, int dtype, int ndim, const int64_t *shape,
                      const void *data, uint64_t nbytes, int copy, vrt_st_fill_fn fill,
                      void *fill_ctx, vrt_err *err)
{
    if (!name || !*name || strcmp(name, "__metadata__") == 0)
        return vrt_err_set(err, VRT_EINVAL, "safetensors writer: invalid tensor name '%s'",
                           name ? name : "(null)");
    if (vrt_st_dtype_bits(dtype) == 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "safetensors writer: tensor '" NAME_FMT "': invalid dtype %d", name,
                           dtype);
    if (ndim < 0 || ndim > VRT_ST_MAX_DIMS || (ndim > 0 && !shape))
        return vrt_err_set(err, VRT_EINVAL,
                           "safetensors writer: tensor '" NAME_FMT "': ndim %d outside 0..%d", name,
                           ndim, VRT_ST_MAX_DIMS);
    uint64_t want;
    int r = shape_nbytes(dtype, ndim, shape, &want);
    char sh[256];
    format_shape(sh, sizeof sh, ndim, shape);
    if (r != 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "safetensors writer: tensor '" NAME_FMT "': invalid shape %s for %s",
                           name, sh, vrt_st_dtype_name(dtype));
    if (want != nbytes)
        return vrt_err_set(err, VRT_EINVAL,
                           "safetensors writer: tensor '" NAME_FMT
                           "': %llu bytes given, shape %s of %s needs %llu",
                           name, (unsigned long long)nbytes, sh, vrt_st_dtype_name(dtype),
                           (unsigned long long)want);
    if (nbytes && !data && !fill)
        return vrt_err_set(err, VRT_EINVAL, "safetensors writer: tensor '" NAME_FMT "': no data",
                           name);
    if (vrt_grow(&w->entries_, &w->cap_, (size_t)w->n + 1, sizeof *w->entries_))
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    struct vrt_st_wentry *e = &w->entries_[w->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    if (copy && nbytes) {
        if (nbytes > (uint64_t)SIZE_MAX || !(e->owned = malloc(nbytes))) {
            free(e->name);
            return vrt_err_set(err, VRT_ENOMEM,
                               "out of memory copying tensor '" NAME_FMT "' (%llu bytes)", name,
                               (unsigned long long)nbytes);
        }
        memcpy(e->owned, data, nbytes);
        e->data = e->owned;
    } else {
        e->data = data;
    }
    e->fill = fill;
    e->fill_ctx = fill_ctx;
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        e->shape[i] = shape[i];
    e->nbytes = nbytes;
    w->n++;
    return 0;
}

int vrt_st_writer_add(vrt_st_writer *w, const char *name, int dtype, int ndim, const int64_t *shape,
                      const void *data, uint64_t nbytes, vrt_err *err)
{
    return writer_add(w, name, dtype, ndim, shape, data, nbytes, 1, NULL, NULL, err);
}

int vrt_st_writer_add_ref(vrt_st_writer *w, const char *name, int dtype, int ndim,
                          const int64_t *shape, const void *data, uint64_t nbytes, vrt_err *err)
{
    return writer_add(w, name, dtype, ndim, shape, data, nbytes, 0, NULL, NULL, err);
}

int vrt_st_writer_add_fill(vrt_st_writer *w, const char *name, int dtype, int ndim,
                           const int64_t *shape, vrt_st_fill_fn fill, void *ctx, vrt_err *err)
{
    if (!fill)
        return vrt_err_set(err, VRT_EINVAL,
                           "safetensors writer: tensor '" NAME_FMT "': no fill function",
                           name ? name : "(null)");
    uint64_t nbytes = 0;
    if (vrt_st_dtype_bits(dtype) != 0 && ndim >= 0 && ndim <= VRT_ST_MAX_DIMS &&
        (ndim == 0 || shape) && shape_nbytes(dtype, ndim, shape, &nbytes) != 0)
        nbytes = 0; /* writer_add reports the bad shape */
    return writer_add(w, name, dtype, ndim, shape, NULL, nbytes, 0, fill, ctx, err);
}

/* The header is built in a growable string. */
typedef vrt_strbuf sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    vrt_strbuf_put(b, s, n);
}

static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_fmt(sbuf *b, const char *fmt, unsigned long long v)
{
    char tmp[64];
    int k = snprintf(tmp, sizeof tmp, fmt, v);
    sb_put(b, tmp, (size_t)k);
}

/* A JSON string literal (UTF-8 passed through, controls escaped). */
static void sb_json_str(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            sb_put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static int cmp_wentry(const void *a, const void *b)
{
    const struct vrt_st_wentry *x = *(struct vrt_st_wentry *const *)a;
    const struct vrt_st_wentry *y = *(struct vrt_st_wentry *const *)b;
    int bx = vrt_st_dtype_bits(x->dtype), by = vrt_st_dtype_bits(y->dtype);
    if (bx != by)
        return bx > by ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_wentry_name(const void *a, const void *b)
{
    const struct vrt_st_wentry *x = *(struct vrt_st_wentry *const *)a;
    const struct vrt_st_wentry *y = *(struct vrt_st_wentry *const *)b;
    return strcmp(x->name, y->name);
}

static int write_all(int fd, const void *buf, uint64_t n)
{
    const unsigned char *p = buf;
    while (n) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t k = write(fd, p, chunk);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        n -= (uint64_t)k;
    }
    return 0;
}

/* Size of the buffer generated tensors are produced in (a multiple of 8). */
#define FILL_CHUNK ((uint64_t)4 << 20)

/* Writes one generated tensor through a chunk buffer (allocated on first
 * use, *buf, freed by the caller). */
static int write_filled(int fd, const struct vrt_st_wentry *e, void **buf, const char *path,
                        vrt_err *err)
{
    if (!*buf && e->nbytes && !(*buf = malloc(FILL_CHUNK)))
        return vrt_err_set(err, VRT_ENOMEM, "%s: out of memory", path);
    for (uint64_t off = 0; off < e->nbytes; off += FILL_CHUNK) {
        uint64_t n = e->nbytes - off < FILL_CHUNK ? e->nbytes - off : FILL_CHUNK;
        int rc = e->fill(e->fill_ctx, *buf, off, n, err);
        if (rc != 0)
            return vrt_err_prefix(err, "%s: tensor '" NAME_FMT "': ", path, e->name);
        if (write_all(fd, *buf, n) != 0)
            return vrt_err_set(err, VRT_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    return 0;
}

/* The metadata object, validated (values must be strings). */
static int build_metadata(sbuf *b, const char *metadata_json, vrt_err *err)
{
    if (!metadata_json) {
        sb_str(b, "\"__metadata__\":{\"format\":\"pt\"}");
        return 0;
    }
    cJSON *m = cJSON_Parse(metadata_json);
    if (!m || !cJSON_IsObject(m)) {
        cJSON_Delete(m);
        return vrt_err_set(err, VRT_EINVAL,
                           "safetensors writer: metadata must be a JSON "
                           "object of strings");
    }
    if (cJSON_GetArraySize(m) == 0) {
        cJSON_Delete(m);
        return 0;
    }
    sb_str(b, "\"__metadata__\":{");
    const cJSON *kv;
    int first = 1;
    cJSON_ArrayForEach(kv, m)
    {
        if (!cJSON_IsString(kv)) {
            int rc = vrt_err_set(err, VRT_EINVAL,
                                 "safetensors writer: metadata value of '%s' "
                                 "is not a string",
                                 kv->string);
            cJSON_Delete(m);
            return rc;
        }
        if (!first)
            sb_put(b, ",", 1);
        first = 0;
        sb_json_str(b, kv->string);
        sb_put(b, ":", 1);
        sb_json_str(b, kv->valuestring);
    }
    sb_put(b, "}", 1);
    cJSON_Delete(m);
    return 0;
}

int vrt_st_writer_write(vrt_st_writer *w, const char *path, const char *metadata_json, vrt_err *err)
{
    int rc = 0, fd = -1;
    sbuf b = {0};
    char *tmp = NULL;
    void *chunk = NULL; /* buffer of generated tensors */
    struct vrt_st_wentry **ord = malloc((size_t)(w->n ? w->n : 1) * sizeof *ord);
    if (!ord)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    for (int i = 0; i < w->n; i++)
        ord[i] = &w->entries_[i];
    qsort(ord, (size_t)w->n, sizeof *ord, cmp_wentry_name);
    for (int i = 1; i < w->n; i++)
        if (strcmp(ord[i - 1]->name, ord[i]->name) == 0) {
            rc = vrt_err_set(err, VRT_EINVAL, "%s: tensor '" NAME_FMT "' was added twice", path,
                             ord[i]->name);
            goto done;
        }
    qsort(ord, (size_t)w->n, sizeof *ord, cmp_wentry);

    sb_put(&b, "{", 1);
    size_t before = b.len;
    if ((rc = build_metadata(&b, metadata_json, err)) != 0) {
        vrt_err_prefix(err, "%s: ", path);
        goto done;
    }
    int need_comma = b.len != before;
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const struct vrt_st_wentry *e = ord[i];
        if (need_comma)
            sb_put(&b, ",", 1);
        need_comma = 1;
        sb_json_str(&b, e->name);
        sb_str(&b, ":{\"dtype\":\"");
        sb_str(&b, vrt_st_dtype_name(e->dtype));
        sb_str(&b, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++)
            sb_fmt(&b, d ? ",%llu" : "%llu", (unsigned long long)e->shape[d]);
        sb_fmt(&b, "],\"data_offsets\":[%llu", off);
        off += e->nbytes;
        sb_fmt(&b, ",%llu]}", off);
    }
    sb_put(&b, "}", 1);
    while (!b.oom && b.len % 8 != 0)
        sb_put(&b, " ", 1);
    if (b.oom) {
        rc = vrt_err_set(err, VRT_ENOMEM, "%s: out of memory for the header", path);
        goto done;
    }
    if (b.len > VRT_ST_MAX_HEADER) {
        rc = vrt_err_set(err, VRT_ERANGE,
                         "%s: header would be %zu bytes, over the %llu "
                         "limit (too many tensors)",
                         path, b.len, (unsigned long long)VRT_ST_MAX_HEADER);
        goto done;
    }

    size_t plen = strlen(path);
    tmp = malloc(plen + 16);
    if (!tmp) {
        rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
        goto done;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = vrt_err_set(err, VRT_EIO, "%s: cannot create a file: %s", tmp, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto done;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)b.len >> (8 * i));
    int bad = write_all(fd, len8, 8) || write_all(fd, b.p, b.len);
    for (int i = 0; i < w->n && !bad; i++) {
        if (ord[i]->fill) {
            if ((rc = write_filled(fd, ord[i], &chunk, path, err)) != 0)
                goto done;
        } else {
            bad = write_all(fd, ord[i]->data, ord[i]->nbytes);
        }
    }
    if (bad || fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        rc = vrt_err_set(err, VRT_EIO, "%s: write failed: %s", path, strerror(errno));
        goto done;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = vrt_err_set(err, VRT_EIO, "%s: write failed: %s", path, strerror(errno));
        goto done;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = vrt_err_set(err, VRT_EIO, "%s: cannot rename %s into place: %s", path, tmp,
                         strerror(errno));
        goto done;
    }
    free(tmp);
    tmp = NULL;
done:
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    free(chunk);
    free(b.p);
    free(ord);
    return rc;
}
