/* checkpoint.h — a model directory's weights: one or several safetensors
 * files resolved into one name -> tensor table.
 *
 * Resolution (docs/formats.md §1.5): if model.safetensors.index.json exists,
 * every distinct shard of its weight_map is opened and names resolve
 * through the map; else model.safetensors; else the only *.safetensors file
 * of the directory. Non-persistent `*.rotary_emb.inv_freq` buffers of old
 * checkpoints are skipped. Lookup is a hash table (O(1)).
 */
#ifndef VRT_MODEL_CHECKPOINT_H
#define VRT_MODEL_CHECKPOINT_H

#include "model/safetensors.h"

typedef struct vrt_checkpoint {
    char *dir;
    vrt_st_file *files; /* [n_files], the opened shards */
    int n_files;
    const vrt_st_tensor **tensors; /* [n_tensors], sorted by name */
    int n_tensors;
    int *slots_;     /* internal: hash table of indices into tensors, -1 */
    size_t n_slots_; /* internal: power of two */
} vrt_checkpoint;

/* Opens the weights of dir. *ck must be closed with vrt_checkpoint_close,
 * also after a failed open. */
int vrt_checkpoint_open(vrt_checkpoint *ck, const char *dir, vrt_err *err);
void vrt_checkpoint_close(vrt_checkpoint *ck);

/* The tensor called name, or NULL. */
const vrt_st_tensor *vrt_checkpoint_find(const vrt_checkpoint *ck, const char *name);
/* The tensor called name with exactly this shape (ndim dims). A missing
 * tensor (VRT_ENOENT) or another shape (VRT_EFORMAT) is an error naming
 * the tensor, the directory or file, and both shapes. */
int vrt_checkpoint_get(const vrt_checkpoint *ck, const char *name, int ndim, const int64_t *shape,
                       const vrt_st_tensor **out, vrt_err *err);
/* Iteration: i in [0, vrt_checkpoint_count), in name order. */
int vrt_checkpoint_count(const vrt_checkpoint *ck);
const vrt_st_tensor *vrt_checkpoint_tensor(const vrt_checkpoint *ck, int i);

#endif
