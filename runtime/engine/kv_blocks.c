/* kv_blocks.c — free list, reference counts and block tables of the paged
 * KV cache (see kv_blocks.h). Every operation is O(blocks touched).
 */
#include "engine/kv_blocks.h"

#include "core/err.h"

#include <stdlib.h>
#include <string.h>

int vrt_block_pool_init(vrt_block_pool *p, int num_blocks, int block_size, vrt_err *err)
{
    memset(p, 0, sizeof *p);
    if (num_blocks <= 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "KV cache: %d blocks; at least one is needed (cache.num_blocks)",
                           num_blocks);
    if (block_size <= 0)
        return vrt_err_set(err, VRT_EINVAL, "KV cache: block size %d (cache.block_size)",
                           block_size);
    p->free_ = malloc((size_t)num_blocks * sizeof *p->free_);
    p->refcnt_ = calloc((size_t)num_blocks, sizeof *p->refcnt_);
    if (!p->free_ || !p->refcnt_) {
        vrt_block_pool_free(p);
        return vrt_err_set(err, VRT_ENOMEM, "KV cache: out of memory for %d block entries",
                           num_blocks);
    }
    p->num_blocks = num_blocks;
    p->block_size = block_size;
    /* Block 0 on top of the stack: allocation order 0, 1, 2, ... */
    for (int i = 0; i < num_blocks; i++)
        p->free_[i] = num_blocks - 1 - i;
    p->n_free = num_blocks;
    return 0;
}

void vrt_block_pool_free(vrt_block_pool *p)
{
    free(p->free_);
    free(p->refcnt_);
    memset(p, 0, sizeof *p);
}

int vrt_blocks_for(const vrt_block_pool *p, int64_t n_tokens)
{
    if (n_tokens <= 0)
        return 0;
    return (int)((n_tokens + p->block_size - 1) / p->block_size);
}

static int grow_table(vrt_seq_blocks *s, int need, vrt_err *err)
{
    if (need <= s->cap)
        return 0;
    int cap = s->cap ? s->cap : 4;
    while (cap < need)
        cap *= 2;
    int32_t *ids = realloc(s->ids, (size_t)cap * sizeof *ids);
    if (!ids)
        return vrt_err_set(err, VRT_ENOMEM, "KV cache: out of memory for a block table");
    s->ids = ids;
    s->cap = cap;
    return 0;
}

int vrt_block_pool_reserve(vrt_block_pool *p, vrt_seq_blocks *s, int64_t n_tokens, vrt_err *err)
{
    int need = vrt_blocks_for(p, n_tokens);
    if (need <= s->n)
        return 0;
    int extra = need - s->n;
    if (extra > p->n_free)
        return vrt_err_set(err, VRT_ENOSPC,
                           "KV cache: %d more blocks needed for %lld tokens, %d free of %d", extra,
                           (long long)n_tokens, p->n_free, p->num_blocks);
    int rc = grow_table(s, need, err);
    if (rc)
        return rc;
    for (int i = 0; i < extra; i++) {
        int32_t b = p->free_[--p->n_free];
        p->refcnt_[b] = 1;
        s->ids[s->n++] = b;
    }
    return 0;
}

void vrt_block_pool_release(vrt_block_pool *p, vrt_seq_blocks *s)
{
    /* Released in reverse so that the sequence's first block is reused
     * first next time (LIFO keeps allocation order stable). */
    for (int i = s->n - 1; i >= 0; i--) {
        int32_t b = s->ids[i];
        if (b < 0 || b >= p->num_blocks || p->refcnt_[b] <= 0)
            continue; /* not ours: never corrupt the free list */
        if (--p->refcnt_[b] == 0)
            p->free_[p->n_free++] = b;
    }
    free(s->ids);
    memset(s, 0, sizeof *s);
}

int vrt_block_pool_fork(vrt_block_pool *p, const vrt_seq_blocks *src, vrt_seq_blocks *dst,
                        vrt_err *err)
{
    if (dst->n != 0)
        return vrt_err_set(err, VRT_EINVAL, "KV cache: fork into a sequence that holds blocks");
    int rc = grow_table(dst, src->n, err);
    if (rc)
        return rc;
    for (int i = 0; i < src->n; i++) {
        p->refcnt_[src->ids[i]]++;
        dst->ids[i] = src->ids[i];
    }
    dst->n = src->n;
    return 0;
}

int32_t vrt_seq_slot(const vrt_block_pool *p, const vrt_seq_blocks *s, int64_t pos)
{
    if (pos < 0)
        return -1;
    int64_t blk = pos / p->block_size;
    if (blk >= s->n)
        return -1;
    return s->ids[blk] * p->block_size + (int32_t)(pos % p->block_size);
}

int vrt_block_refcount(const vrt_block_pool *p, int32_t block)
{
    if (block < 0 || block >= p->num_blocks)
        return -1;
    return p->refcnt_[block];
}
