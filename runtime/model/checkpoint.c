/* checkpoint.c — resolves a model directory into its safetensors files and
 * one name -> tensor hash table (see checkpoint.h, docs/formats.md §1.5).
 */
#include "model/checkpoint.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
/* An index file is a few hundred KB at most; refuse absurd ones. */
#define MAX_INDEX_BYTES (64u << 20)

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* Old checkpoints carry this non-persistent buffer; it is recomputed. */
static int ignored_name(const char *name)
{
    return ends_with(name, ".rotary_emb.inv_freq") || strcmp(name, "rotary_emb.inv_freq") == 0;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static int cmp_tensor_ptr_name(const void *a, const void *b)
{
    const vrt_st_tensor *x = *(const vrt_st_tensor *const *)a;
    const vrt_st_tensor *y = *(const vrt_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void vrt_checkpoint_close(vrt_checkpoint *ck)
{
    if (!ck)
        return;
    for (int i = 0; i < ck->n_files; i++)
        vrt_st_close(&ck->files[i]);
    free(ck->files);
    free(ck->tensors);
    free(ck->slots_);
    free(ck->dir);
    memset(ck, 0, sizeof *ck);
}

/* Sorts ck->tensors, rejects duplicates and builds the hash table. */
static int build_table(vrt_checkpoint *ck, vrt_err *err)
{
    qsort(ck->tensors, (size_t)ck->n_tensors, sizeof *ck->tensors, cmp_tensor_ptr_name);
    for (int i = 1; i < ck->n_tensors; i++)
        if (strcmp(ck->tensors[i - 1]->name, ck->tensors[i]->name) == 0)
            return vrt_err_set(err, VRT_EFORMAT,
                               "checkpoint %s: tensor '%.200s' is in both %s "
                               "and %s",
                               ck->dir, ck->tensors[i]->name, ck->tensors[i - 1]->file,
                               ck->tensors[i]->file);
    size_t n = 16;
    while (n < 2 * (size_t)ck->n_tensors)
        n *= 2;
    ck->slots_ = malloc(n * sizeof *ck->slots_);
    if (!ck->slots_)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        ck->slots_[i] = -1;
    ck->n_slots_ = n;
    for (int i = 0; i < ck->n_tensors; i++) {
        size_t s = (size_t)hash_str(ck->tensors[i]->name) & (n - 1);
        while (ck->slots_[s] >= 0)
            s = (s + 1) & (n - 1);
        ck->slots_[s] = i;
    }
    return 0;
}

/* Adds every tensor of the file f except ignored buffers. */
static int add_all(vrt_checkpoint *ck, const vrt_st_file *f, vrt_err *err)
{
    const vrt_st_header *h = &f->header;
    const vrt_st_tensor **nt =
        realloc(ck->tensors, (size_t)(ck->n_tensors + h->n_tensors + 1) * sizeof *nt);
    if (!nt)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    ck->tensors = nt;
    for (int i = 0; i < h->n_tensors; i++)
        if (!ignored_name(h->tensors[i].name))
            ck->tensors[ck->n_tensors++] = &h->tensors[i];
    return 0;
}

static int read_text(const char *path, char **out, vrt_err *err)
{
    int rc = vrt_read_file(path, MAX_INDEX_BYTES, "an index file", 0, out, NULL, err);
    if (rc == VRT_ENOENT)
        err->code = rc = VRT_EIO;
    return rc;
}

/* A shard name must be a plain file name inside the directory. */
static int valid_shard_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int open_index(vrt_checkpoint *ck, const char *index_path, vrt_err *err)
{
    char *text = NULL;
    int rc = read_text(index_path, &text, err);
    if (rc != 0)
        return rc;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const char **shards = NULL;
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!root || !cJSON_IsObject(root)) {
        rc = vrt_err_set(err, VRT_EFORMAT, "%s: not a JSON object", index_path);
        goto done;
    }
    if (!cJSON_IsObject(wm)) {
        rc = vrt_err_set(err, VRT_EFORMAT,
                         "%s: no \"weight_map\" object (expected "
                         "{\"weight_map\": {\"<tensor>\": \"<shard>\"}})",
                         index_path);
        goto done;
    }
    int n = cJSON_GetArraySize(wm);
    shards = malloc((size_t)(n ? n : 1) * sizeof *shards);
    if (!shards) {
        rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
        goto done;
    }
    int ns = 0;
    const cJSON *kv;
    cJSON_ArrayForEach(kv, wm)
    {
        if (!cJSON_IsString(kv) || !valid_shard_name(kv->valuestring)) {
            rc = vrt_err_set(err, VRT_EFORMAT,
                             "%s: weight_map entry '%.200s' must name a "
                             "shard file in the same directory",
                             index_path, kv->string);
            goto done;
        }
        shards[ns++] = kv->valuestring;
    }
    qsort(shards, (size_t)ns, sizeof *shards, cmp_str_ptr);
    int nd = 0;
    for (int i = 0; i < ns; i++)
        if (nd == 0 || strcmp(shards[nd - 1], shards[i]) != 0)
            shards[nd++] = shards[i];
    ck->files = calloc((size_t)(nd ? nd : 1), sizeof *ck->files);
    ck->tensors = malloc((size_t)(n ? n : 1) * sizeof *ck->tensors);
    if (!ck->files || !ck->tensors) {
        rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < nd; i++) {
        char *p = vrt_path_join(ck->dir, shards[i]);
        if (!p) {
            rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
            goto done;
        }
        rc = vrt_st_open(&ck->files[ck->n_files++], p, err);
        free(p);
        if (rc != 0) {
            vrt_err_prefix(err, "shard listed in %s: ", index_path);
            goto done;
        }
    }
    int extra = 0;
    cJSON_ArrayForEach(kv, wm)
    {
        if (ignored_name(kv->string))
            continue;
        const vrt_st_file *f = NULL;
        for (int i = 0; i < ck->n_files && !f; i++) {
            const char *base = strrchr(ck->files[i].path, '/');
            base = base ? base + 1 : ck->files[i].path;
            if (strcmp(base, kv->valuestring) == 0)
                f = &ck->files[i];
        }
        const vrt_st_tensor *t = f ? vrt_st_find(f, kv->string) : NULL;
        if (!t) {
            rc = vrt_err_set(err, VRT_EFORMAT,
                             "%s maps tensor '%.200s' to %s, but that shard "
                             "does not contain it (index and shards do not "
                             "match; re-download the checkpoint)",
                             index_path, kv->string, f ? f->path : kv->valuestring);
            goto done;
        }
        ck->tensors[ck->n_tensors++] = t;
    }
    for (int i = 0; i < ck->n_files; i++)
        extra += ck->files[i].header.n_tensors;
    extra -= ck->n_tensors;
    if (extra > 0)
        VRT_DEBUG("checkpoint %s: %d tensors in the shards are not in %s "
                  "and are ignored",
                  ck->dir, extra, INDEX_NAME);
    rc = 0;
done:
    free(shards);
    cJSON_Delete(root);
    return rc;
}

/* The *.safetensors files of dir, sorted; *n_out of them. */
static int list_safetensors(const char *dir, char ***out, int *n_out, vrt_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return vrt_err_set(err, errno == ENOENT ? VRT_ENOENT : VRT_EIO,
                           "checkpoint directory %s: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, rc = 0;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!ends_with(de->d_name, ".safetensors"))
            continue;
        char *p = vrt_path_join(dir, de->d_name);
        int ok = p && is_file(p);
        free(p);
        if (!ok)
            continue;
        if (vrt_grow(&names, &cap, (size_t)n + 1, sizeof *names)) {
            rc = VRT_ENOMEM;
            break;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = VRT_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc != 0) {
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return vrt_err_set(err, rc, "out of memory");
    }
    if (n)
        qsort(names, (size_t)n, sizeof *names, cmp_str_ptr);
    *out = names;
    *n_out = n;
    return 0;
}

static int open_single(vrt_checkpoint *ck, const char *path, vrt_err *err)
{
    ck->files = calloc(1, sizeof *ck->files);
    if (!ck->files)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    ck->n_files = 1;
    int rc = vrt_st_open(&ck->files[0], path, err);
    if (rc != 0)
        return rc;
    return add_all(ck, &ck->files[0], err);
}

int vrt_checkpoint_open(vrt_checkpoint *ck, const char *dir, vrt_err *err)
{
    memset(ck, 0, sizeof *ck);
    ck->dir = strdup(dir);
    char *index = vrt_path_join(dir, INDEX_NAME);
    char *single = vrt_path_join(dir, SINGLE_NAME);
    int rc = 0;
    if (!ck->dir || !index || !single) {
        rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
        goto done;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rc = vrt_err_set(err, VRT_ENOENT,
                         "checkpoint directory %s does not exist or is not "
                         "a directory (check model.path)",
                         dir);
        goto done;
    }
    if (is_file(index)) {
        rc = open_index(ck, index, err);
    } else if (is_file(single)) {
        rc = open_single(ck, single, err);
    } else {
        char **names = NULL;
        int n = 0;
        if ((rc = list_safetensors(dir, &names, &n, err)) != 0)
            goto done;
        if (n == 1) {
            char *p = vrt_path_join(dir, names[0]);
            rc = p ? open_single(ck, p, err) : vrt_err_set(err, VRT_ENOMEM, "out of memory");
            free(p);
        } else if (n == 0) {
            rc = vrt_err_set(err, VRT_ENOENT,
                             "checkpoint directory %s has no %s, no %s and "
                             "no other *.safetensors file (pytorch_model.bin "
                             "is not supported; convert it to safetensors)",
                             dir, INDEX_NAME, SINGLE_NAME);
        } else {
            char list[1024];
            size_t k = 0;
            list[0] = '\0';
            for (int i = 0; i < n && k < sizeof list; i++)
                k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", names[i]);
            rc = vrt_err_set(err, VRT_EFORMAT,
                             "checkpoint directory %s has %d *.safetensors "
                             "files (%s) but no %s saying how they fit "
                             "together; add the index or keep only one file",
                             dir, n, list, INDEX_NAME);
        }
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
    }
    if (rc == 0)
        rc = build_table(ck, err);
done:
    free(index);
    free(single);
    return rc;
}

const vrt_st_tensor *vrt_checkpoint_find(const vrt_checkpoint *ck, const char *name)
{
    if (!ck->n_slots_ || !name)
        return NULL;
    size_t mask = ck->n_slots_ - 1;
    size_t s = (size_t)hash_str(name) & mask;
    while (ck->slots_[s] >= 0) {
        const vrt_st_tensor *t = ck->tensors[ck->slots_[s]];
        if (strcmp(t->name, name) == 0)
            return t;
        s = (s + 1) & mask;
    }
    return NULL;
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap)
        snprintf(buf + k, cap - k, "]");
}

int vrt_checkpoint_get(const vrt_checkpoint *ck, const char *name, int ndim, const int64_t *shape,
                       const vrt_st_tensor **out, vrt_err *err)
{
    if (out)
        *out = NULL;
    const vrt_st_tensor *t = vrt_checkpoint_find(ck, name);
    if (!t) {
        const char *hint = NULL;
        const char **names = malloc((size_t)(ck->n_tensors + 1) * sizeof *names);
        if (names) {
            for (int i = 0; i < ck->n_tensors; i++)
                names[i] = ck->tensors[i]->name;
            hint = vrt_suggest(name, names, (size_t)ck->n_tensors);
        }
        int rc = vrt_err_set(err, VRT_ENOENT,
                             "tensor '%.200s' not found in checkpoint %s "
                             "(%d tensors)%s%.200s%s",
                             name, ck->dir, ck->n_tensors, hint ? "; did you mean '" : "",
                             hint ? hint : "", hint ? "'?" : "");
        free(names);
        return rc;
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char want[256], got[256];
        fmt_shape(want, sizeof want, ndim, shape);
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        return vrt_err_set(err, VRT_EFORMAT,
                           "tensor '%.200s' in %s has shape %s, expected %s "
                           "(does config.json match these weights?)",
                           name, t->file, got, want);
    }
    if (out)
        *out = t;
    return 0;
}

int vrt_checkpoint_count(const vrt_checkpoint *ck)
{
    return ck->n_tensors;
}

const vrt_st_tensor *vrt_checkpoint_tensor(const vrt_checkpoint *ck, int i)
{
    if (i < 0 || i >= ck->n_tensors)
        return NULL;
    return ck->tensors[i];
}
