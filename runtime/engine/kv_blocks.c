/* kv_blocks.c — free list, reference counts, block tables and the prefix
 * cache of the paged KV cache (see kv_blocks.h). Every operation is
 * O(blocks touched); prefix lookups are one hash probe per block.
 */
#include "engine/kv_blocks.h"

#include "core/err.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

int vrt_block_pool_init(vrt_block_pool *p, int num_blocks, int block_size, vrt_err *err)
{
    memset(p, 0, sizeof *p);
    p->lru_head_ = p->lru_tail_ = -1;
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
    p->n_stack_ = p->n_free = num_blocks;
    return 0;
}

void vrt_block_pool_free(vrt_block_pool *p)
{
    free(p->free_);
    free(p->refcnt_);
    free(p->hash_);
    free(p->lru_prev_);
    free(p->lru_next_);
    free(p->table_);
    memset(p, 0, sizeof *p);
    p->lru_head_ = p->lru_tail_ = -1;
}

int vrt_block_pool_enable_prefix_cache(vrt_block_pool *p, vrt_err *err)
{
    if (p->prefix_caching)
        return 0;
    int n = p->num_blocks, size = 16;
    while (size < 2 * n)
        size *= 2;
    p->hash_ = calloc((size_t)n, sizeof *p->hash_);
    p->lru_prev_ = malloc((size_t)n * sizeof *p->lru_prev_);
    p->lru_next_ = malloc((size_t)n * sizeof *p->lru_next_);
    p->table_ = malloc((size_t)size * sizeof *p->table_);
    if (!p->hash_ || !p->lru_prev_ || !p->lru_next_ || !p->table_) {
        free(p->hash_);
        free(p->lru_prev_);
        free(p->lru_next_);
        free(p->table_);
        p->hash_ = NULL;
        p->lru_prev_ = p->lru_next_ = p->table_ = NULL;
        return vrt_err_set(err, VRT_ENOMEM, "KV cache: out of memory for the prefix cache");
    }
    for (int i = 0; i < size; i++)
        p->table_[i] = -1;
    p->table_size_ = size;
    p->prefix_caching = 1;
    return 0;
}

/* ---- the hash table (block hash -> block id), linear probing ------------- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* The hash of a full block: its tokens chained onto the previous block's. */
static uint64_t block_hash(uint64_t parent, const int32_t *toks, int n)
{
    uint64_t h = mix(parent ^ 0x9e3779b97f4a7c15ull);
    for (int i = 0; i < n; i++)
        h = mix(h ^ ((uint64_t)(uint32_t)toks[i] + 0x632be59bd9b4e019ull * (uint64_t)(i + 1)));
    return h ? h : 1; /* 0 means "none" */
}

static int table_find(const vrt_block_pool *p, uint64_t h)
{
    int mask = p->table_size_ - 1;
    for (int i = (int)(h & (uint64_t)mask);; i = (i + 1) & mask) {
        int32_t b = p->table_[i];
        if (b < 0)
            return -1;
        if (p->hash_[b] == h)
            return b;
    }
}

static void table_insert(vrt_block_pool *p, int32_t block)
{
    int mask = p->table_size_ - 1;
    int i = (int)(p->hash_[block] & (uint64_t)mask);
    while (p->table_[i] >= 0)
        i = (i + 1) & mask;
    p->table_[i] = block;
}

/* Removes block from the table (backward-shift deletion keeps probes right). */
static void table_remove(vrt_block_pool *p, int32_t block)
{
    int mask = p->table_size_ - 1;
    int i = (int)(p->hash_[block] & (uint64_t)mask);
    while (p->table_[i] != block) {
        if (p->table_[i] < 0)
            return;
        i = (i + 1) & mask;
    }
    p->table_[i] = -1;
    for (int j = (i + 1) & mask; p->table_[j] >= 0; j = (j + 1) & mask) {
        int32_t b = p->table_[j];
        int home = (int)(p->hash_[b] & (uint64_t)mask);
        /* b may move to i if its home is not in (i, j]. */
        int in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            p->table_[i] = b;
            p->table_[j] = -1;
            i = j;
        }
    }
}

/* ---- the cached-free LRU list ---------------------------------------------- */

static void lru_remove(vrt_block_pool *p, int32_t b)
{
    int32_t pr = p->lru_prev_[b], nx = p->lru_next_[b];
    if (pr >= 0)
        p->lru_next_[pr] = nx;
    else
        p->lru_head_ = nx;
    if (nx >= 0)
        p->lru_prev_[nx] = pr;
    else
        p->lru_tail_ = pr;
}

static void lru_push(vrt_block_pool *p, int32_t b)
{
    p->lru_prev_[b] = p->lru_tail_;
    p->lru_next_[b] = -1;
    if (p->lru_tail_ >= 0)
        p->lru_next_[p->lru_tail_] = b;
    else
        p->lru_head_ = b;
    p->lru_tail_ = b;
}

/* ---- allocation ----------------------------------------------------------------- */

int vrt_blocks_for(const vrt_block_pool *p, int64_t n_tokens)
{
    if (n_tokens <= 0)
        return 0;
    return (int)((n_tokens + p->block_size - 1) / p->block_size);
}

static int grow_table(vrt_seq_blocks *s, int need, vrt_err *err)
{
    if (vrt_grow(&s->ids, &s->cap, (size_t)need, sizeof *s->ids))
        return vrt_err_set(err, VRT_ENOMEM, "KV cache: out of memory for a block table");
    return 0;
}

/* A free block: a blank one first, else the least recently used cached one
 * (which forgets its content). */
static int32_t take_free(vrt_block_pool *p)
{
    int32_t b;
    if (p->n_stack_ > 0) {
        b = p->free_[--p->n_stack_];
    } else {
        b = p->lru_head_;
        lru_remove(p, b);
        table_remove(p, b);
        p->hash_[b] = 0;
    }
    p->n_free--;
    p->refcnt_[b] = 1;
    return b;
}

vrt_grow_result vrt_block_pool_grow(vrt_block_pool *p, vrt_seq_blocks *s, int64_t n_tokens)
{
    int need = vrt_blocks_for(p, n_tokens);
    if (need <= s->n)
        return VRT_GROW_OK;
    int extra = need - s->n;
    if (extra > p->n_free)
        return VRT_GROW_NO_BLOCKS;
    if (grow_table(s, need, NULL))
        return VRT_GROW_NO_MEMORY;
    for (int i = 0; i < extra; i++)
        s->ids[s->n++] = take_free(p);
    return VRT_GROW_OK;
}

int vrt_block_pool_reserve(vrt_block_pool *p, vrt_seq_blocks *s, int64_t n_tokens, vrt_err *err)
{
    switch (vrt_block_pool_grow(p, s, n_tokens)) {
    case VRT_GROW_OK: return 0;
    case VRT_GROW_NO_BLOCKS:
        return vrt_err_set(
            err, VRT_ENOSPC, "KV cache: %d more blocks needed for %lld tokens, %d free of %d",
            vrt_blocks_for(p, n_tokens) - s->n, (long long)n_tokens, p->n_free, p->num_blocks);
    default: return vrt_err_set(err, VRT_ENOMEM, "KV cache: out of memory for a block table");
    }
}

void vrt_block_pool_release(vrt_block_pool *p, vrt_seq_blocks *s)
{
    /* In reverse: the sequence's first blocks end up most recently used
     * (cached) or on top of the stack (blank), so they are reused last /
     * first as fits. */
    for (int i = s->n - 1; i >= 0; i--) {
        int32_t b = s->ids[i];
        if (b < 0 || b >= p->num_blocks || p->refcnt_[b] <= 0)
            continue; /* not ours: never corrupt the free list */
        if (--p->refcnt_[b] > 0)
            continue;
        p->n_free++;
        if (p->prefix_caching && p->hash_[b])
            lru_push(p, b);
        else
            p->free_[p->n_stack_++] = b;
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

int vrt_block_pool_match_prefix(vrt_block_pool *p, vrt_seq_blocks *s, const int32_t *toks, int n)
{
    if (!p->prefix_caching || s->n != 0 || n < 2)
        return 0;
    int bs = p->block_size, full = (n - 1) / bs; /* leave >= 1 token to compute */
    p->queries += (uint64_t)full * bs;
    vrt_err err = {0};
    if (grow_table(s, full > 0 ? full : 1, &err))
        return 0;
    uint64_t parent = 0;
    int matched = 0;
    for (int i = 0; i < full; i++) {
        uint64_t h = block_hash(parent, toks + (size_t)i * bs, bs);
        int32_t b = table_find(p, h);
        if (b < 0)
            break;
        if (p->refcnt_[b] == 0) { /* cached free: in use again */
            lru_remove(p, b);
            p->n_free--;
        }
        p->refcnt_[b]++;
        s->ids[s->n++] = b;
        parent = h;
        matched++;
    }
    p->hits += (uint64_t)matched * bs;
    return matched * bs;
}

void vrt_block_pool_commit(vrt_block_pool *p, const vrt_seq_blocks *s, const int32_t *toks,
                           int n_computed)
{
    if (!p->prefix_caching)
        return;
    int bs = p->block_size, full = n_computed / bs;
    if (full > s->n)
        full = s->n;
    uint64_t parent = 0;
    for (int i = 0; i < full; i++) {
        int32_t b = s->ids[i];
        if (p->hash_[b]) { /* already registered (or taken from the cache) */
            parent = p->hash_[b];
            continue;
        }
        uint64_t h = block_hash(parent, toks + (size_t)i * bs, bs);
        if (table_find(p, h) < 0) {
            p->hash_[b] = h;
            table_insert(p, b);
        }
        /* else: another block holds the same content; this one stays
         * private and returns to the blank stack when released. */
        parent = h;
    }
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
