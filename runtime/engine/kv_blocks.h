/* kv_blocks.h — the paged KV cache's block manager (host-side bookkeeping).
 *
 * The KV cache of every layer is num_blocks blocks of block_size token
 * slots. This module decides which physical block holds which part of which
 * sequence; it never touches the cache memory itself. A pool keeps a free
 * list (LIFO, so recently freed blocks are reused while warm) and a
 * reference count per block; a sequence keeps its block table (logical
 * block i -> physical block ids[i]). Forked sequences (n > 1, best_of,
 * prefix sharing) share blocks by reference count.
 *
 * Prefix caching (optional): a full block is identified by a hash of its
 * tokens and of the blocks before it. When its last user releases it, a
 * hashed block is not wiped but kept as "cached free" (still counted as
 * free, reused last, least recently used first); a new sequence whose
 * prompt starts with the same full blocks takes them over instead of
 * computing them again.
 *
 * Running out of blocks is a normal outcome, not an error: reserve returns
 * VRT_ENOSPC and allocates nothing, and the scheduler preempts or waits
 * (the vLLM model: scheduler -> KV cache manager -> block pool).
 */
#ifndef VRT_ENGINE_KV_BLOCKS_H
#define VRT_ENGINE_KV_BLOCKS_H

#include "vrt.h"

#include <stdint.h>

typedef struct vrt_block_pool {
    int num_blocks; /* physical blocks in the cache */
    int block_size; /* token slots per block */
    int n_free;     /* free blocks: never used + cached free */
    int32_t *free_; /* [num_blocks] stack of blank free block ids, n_stack_ on it */
    int n_stack_;
    int32_t *refcnt_; /* [num_blocks] 0 = free */
    /* prefix cache */
    int prefix_caching;
    uint64_t *hash_;                /* [num_blocks] 0 = not a registered full block */
    int32_t *lru_prev_, *lru_next_; /* cached-free list, oldest first; -1 ends */
    int32_t lru_head_, lru_tail_;
    int32_t *table_; /* [table_size_] open addressing: block id or -1 */
    int table_size_;
    uint64_t queries, hits; /* prompt tokens looked up / found (full blocks) */
} vrt_block_pool;

/* One sequence's block table. Zero-initialize; release with
 * vrt_block_pool_release. */
typedef struct vrt_seq_blocks {
    int32_t *ids; /* [n] physical block ids, logical order */
    int n;
    size_t cap; /* of ids */
} vrt_seq_blocks;

int vrt_block_pool_init(vrt_block_pool *p, int num_blocks, int block_size, vrt_err *err);
void vrt_block_pool_free(vrt_block_pool *p);

/* Blocks needed to hold n_tokens tokens. */
int vrt_blocks_for(const vrt_block_pool *p, int64_t n_tokens);

/* What vrt_block_pool_grow answers: running out of blocks is an ordinary
 * outcome the scheduler acts on (it preempts or waits), not an error. */
typedef enum vrt_grow_result {
    VRT_GROW_OK = 0,
    VRT_GROW_NO_BLOCKS, /* too few free blocks: nothing was allocated */
    VRT_GROW_NO_MEMORY, /* the block table could not grow (host memory) */
} vrt_grow_result;

/* Grows s so that it holds n_tokens tokens, without formatting a message
 * (the scheduler's hot path). */
vrt_grow_result vrt_block_pool_grow(vrt_block_pool *p, vrt_seq_blocks *s, int64_t n_tokens);

/* vrt_block_pool_grow with a message: returns 0, VRT_ENOSPC when the free
 * blocks do not suffice (nothing is allocated then; err says how many were
 * needed and free), or VRT_ENOMEM. */
int vrt_block_pool_reserve(vrt_block_pool *p, vrt_seq_blocks *s, int64_t n_tokens, vrt_err *err);

/* Gives back every block of s (dropping its references) and empties s. */
void vrt_block_pool_release(vrt_block_pool *p, vrt_seq_blocks *s);

/* dst (empty) shares every block of src; reference counts go up. */
int vrt_block_pool_fork(vrt_block_pool *p, const vrt_seq_blocks *src, vrt_seq_blocks *dst,
                        vrt_err *err);

/* The slot of token position pos of s (block * block_size + offset), or -1
 * when pos is beyond the blocks s holds. */
int32_t vrt_seq_slot(const vrt_block_pool *p, const vrt_seq_blocks *s, int64_t pos);

/* Turns prefix caching on (before any sequence holds blocks). */
int vrt_block_pool_enable_prefix_cache(vrt_block_pool *p, vrt_err *err);

/* For an empty s: takes over the cached blocks holding the longest prefix
 * of toks[0..n) made of full blocks, leaving at least one token to compute.
 * Returns the number of tokens covered (a multiple of block_size), 0 when
 * caching is off. */
int vrt_block_pool_match_prefix(vrt_block_pool *p, vrt_seq_blocks *s, const int32_t *toks, int n);

/* Registers the full blocks of s among its first n_computed tokens toks
 * (K/V written), so later prompts can share them. */
void vrt_block_pool_commit(vrt_block_pool *p, const vrt_seq_blocks *s, const int32_t *toks,
                           int n_computed);

/* Reference count of a block (0 = free); -1 for an invalid id. */
int vrt_block_refcount(const vrt_block_pool *p, int32_t block);

#endif
