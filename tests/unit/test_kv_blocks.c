/* test_kv_blocks.c — the KV block pool on its own (no model): allocation
 * order, exhaustion as an ordinary outcome that allocates nothing, release
 * and reuse, reference counts of forked sequences, slots, and the prefix
 * cache (match, commit, eviction of cached blocks).
 */
#include "test.h"

#include "core/err.h"
#include "engine/kv_blocks.h"

TEST(kv_blocks_init_refuses_an_empty_pool)
{
    vrt_err err = {0};
    vrt_block_pool p;
    ASSERT_EQ_INT(vrt_block_pool_init(&p, 0, 16, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "cache.num_blocks");
    ASSERT_EQ_INT(vrt_block_pool_init(&p, 4, 0, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "cache.block_size");
    vrt_block_pool_free(&p);
}

TEST(kv_blocks_reserve_grows_in_order_and_exhaustion_allocates_nothing)
{
    vrt_err err = {0};
    vrt_block_pool p;
    ASSERT_OK(vrt_block_pool_init(&p, 4, 4, &err), &err);
    ASSERT_EQ_INT(vrt_blocks_for(&p, 0), 0);
    ASSERT_EQ_INT(vrt_blocks_for(&p, 1), 1);
    ASSERT_EQ_INT(vrt_blocks_for(&p, 4), 1);
    ASSERT_EQ_INT(vrt_blocks_for(&p, 5), 2);
    vrt_seq_blocks a = {0}, b = {0};
    ASSERT_OK(vrt_block_pool_reserve(&p, &a, 5, &err), &err);
    ASSERT_EQ_INT(a.n, 2);
    ASSERT_EQ_INT(a.ids[0], 0); /* fresh pool: blocks 0, 1, 2, ... */
    ASSERT_EQ_INT(a.ids[1], 1);
    ASSERT_EQ_INT(p.n_free, 2);
    /* Already enough: nothing changes. */
    ASSERT_OK(vrt_block_pool_reserve(&p, &a, 8, &err), &err);
    ASSERT_EQ_INT(a.n, 2);
    ASSERT_EQ_INT(vrt_block_refcount(&p, a.ids[0]), 1);
    /* 3 more blocks needed, 2 free: nothing is taken. */
    ASSERT_EQ_INT(vrt_block_pool_grow(&p, &b, 12), VRT_GROW_NO_BLOCKS);
    ASSERT_EQ_INT(b.n, 0);
    ASSERT_EQ_INT(p.n_free, 2);
    ASSERT_EQ_INT(vrt_block_pool_reserve(&p, &b, 12, &err), VRT_ENOSPC);
    ASSERT_CONTAINS(err.msg, "3 more blocks needed for 12 tokens, 2 free of 4");
    ASSERT_EQ_INT(b.n, 0);
    ASSERT_EQ_INT(vrt_block_pool_grow(&p, &b, 8), VRT_GROW_OK);
    ASSERT_EQ_INT(p.n_free, 0);
    ASSERT_EQ_INT(vrt_block_pool_grow(&p, &a, 9), VRT_GROW_NO_BLOCKS);
    ASSERT_EQ_INT(a.n, 2);
    /* Slots: block * block_size + offset; beyond the blocks held, -1. */
    ASSERT_EQ_INT(vrt_seq_slot(&p, &b, 0), b.ids[0] * 4);
    ASSERT_EQ_INT(vrt_seq_slot(&p, &b, 6), b.ids[1] * 4 + 2);
    ASSERT_EQ_INT(vrt_seq_slot(&p, &b, 8), -1);
    ASSERT_EQ_INT(vrt_seq_slot(&p, &b, -1), -1);
    /* Released blocks are free again, the most recently freed reused first. */
    int32_t b0 = b.ids[0];
    vrt_block_pool_release(&p, &b);
    ASSERT_EQ_INT(b.n, 0);
    ASSERT(b.ids == NULL);
    ASSERT_EQ_INT(p.n_free, 2);
    ASSERT_EQ_INT(vrt_block_refcount(&p, b0), 0);
    ASSERT_OK(vrt_block_pool_reserve(&p, &b, 1, &err), &err);
    ASSERT_EQ_INT(b.ids[0], b0);
    vrt_block_pool_release(&p, &b);
    vrt_block_pool_release(&p, &a);
    ASSERT_EQ_INT(p.n_free, 4);
    vrt_block_pool_free(&p);
}

TEST(kv_blocks_pool_reserve_release_fork)
{
    vrt_err err = {0};
    vrt_block_pool p;
    ASSERT_OK(vrt_block_pool_init(&p, 4, 16, &err), &err);
    vrt_seq_blocks a = {0}, b = {0}, c = {0};
    ASSERT_OK(vrt_block_pool_reserve(&p, &a, 17, &err), &err);
    ASSERT_EQ_INT(a.n, 2);
    ASSERT_EQ_INT(p.n_free, 2);
    ASSERT_EQ_INT(vrt_seq_slot(&p, &a, 16), a.ids[1] * 16);
    ASSERT_EQ_INT(vrt_seq_slot(&p, &a, 32), -1);
    /* Not enough: nothing allocated, normal ENOSPC. */
    ASSERT_EQ_INT(vrt_block_pool_reserve(&p, &b, 49, &err), VRT_ENOSPC);
    ASSERT_EQ_INT(b.n, 0);
    ASSERT_EQ_INT(p.n_free, 2);
    ASSERT_OK(vrt_block_pool_fork(&p, &a, &c, &err), &err);
    ASSERT_EQ_INT(vrt_block_refcount(&p, a.ids[0]), 2);
    vrt_block_pool_release(&p, &a);
    ASSERT_EQ_INT(p.n_free, 2); /* still held by c */
    vrt_block_pool_release(&p, &c);
    ASSERT_EQ_INT(p.n_free, 4);
    ASSERT_OK(vrt_block_pool_reserve(&p, &b, 64, &err), &err);
    ASSERT_EQ_INT(p.n_free, 0);
    vrt_block_pool_release(&p, &b);
    vrt_block_pool_free(&p);
}

TEST(kv_blocks_forked_sequences_share_blocks_by_reference_count)
{
    vrt_err err = {0};
    vrt_block_pool p;
    ASSERT_OK(vrt_block_pool_init(&p, 3, 2, &err), &err);
    vrt_seq_blocks a = {0}, b = {0}, c = {0};
    ASSERT_OK(vrt_block_pool_reserve(&p, &a, 4, &err), &err);
    ASSERT_OK(vrt_block_pool_fork(&p, &a, &b, &err), &err);
    ASSERT_EQ_INT(b.n, 2);
    ASSERT_EQ_INT(b.ids[1], a.ids[1]);
    ASSERT_EQ_INT(vrt_block_refcount(&p, a.ids[0]), 2);
    ASSERT_EQ_INT(p.n_free, 1);
    /* A fork needs an empty destination. */
    ASSERT_EQ_INT(vrt_block_pool_fork(&p, &a, &b, &err), VRT_EINVAL);
    /* Releasing one keeps the other's blocks. */
    int32_t a0 = a.ids[0];
    vrt_block_pool_release(&p, &a);
    ASSERT_EQ_INT(vrt_block_refcount(&p, a0), 1);
    ASSERT_EQ_INT(p.n_free, 1);
    vrt_block_pool_release(&p, &b);
    ASSERT_EQ_INT(vrt_block_refcount(&p, a0), 0);
    ASSERT_EQ_INT(p.n_free, 3);
    ASSERT_EQ_INT(vrt_block_refcount(&p, -1), -1);
    ASSERT_EQ_INT(vrt_block_refcount(&p, 3), -1);
    /* A table naming blocks it does not hold never corrupts the free list. */
    ASSERT_OK(vrt_block_pool_reserve(&p, &c, 2, &err), &err);
    c.ids[0] = 99;
    vrt_block_pool_release(&p, &c);
    ASSERT_EQ_INT(p.n_free, 2);
    vrt_block_pool_free(&p);
}

TEST(kv_blocks_prefix_cache_match_commit_evict)
{
    vrt_err err = {0};
    vrt_block_pool p;
    ASSERT_OK(vrt_block_pool_init(&p, 4, 4, &err), &err);
    ASSERT_OK(vrt_block_pool_enable_prefix_cache(&p, &err), &err);
    int32_t toks[16];
    for (int i = 0; i < 16; i++)
        toks[i] = 100 + i;
    vrt_seq_blocks a = {0}, b = {0}, c = {0};
    ASSERT_OK(vrt_block_pool_reserve(&p, &a, 10, &err), &err); /* 3 blocks */
    vrt_block_pool_commit(&p, &a, toks, 10);                   /* 2 full */
    /* b shares the two full blocks while a still holds them. */
    ASSERT_EQ_INT(vrt_block_pool_match_prefix(&p, &b, toks, 12), 8);
    ASSERT_EQ_INT(b.n, 2);
    ASSERT_EQ_INT(b.ids[0], a.ids[0]);
    ASSERT_EQ_INT(vrt_block_refcount(&p, a.ids[0]), 2);
    /* A prompt of exactly 8 tokens matches one block: one token must stay. */
    ASSERT_EQ_INT(vrt_block_pool_match_prefix(&p, &c, toks, 8), 4);
    vrt_block_pool_release(&p, &c);
    int32_t first = a.ids[0];
    vrt_block_pool_release(&p, &a);
    vrt_block_pool_release(&p, &b);
    ASSERT_EQ_INT(p.n_free, 4); /* cached blocks count as free */
    /* After release the content is still found... */
    ASSERT_EQ_INT(vrt_block_pool_match_prefix(&p, &c, toks, 16), 8);
    ASSERT_EQ_INT(c.ids[0], first);
    vrt_block_pool_release(&p, &c);
    /* ...a different first token finds nothing... */
    toks[0] = 7;
    ASSERT_EQ_INT(vrt_block_pool_match_prefix(&p, &c, toks, 16), 0);
    vrt_block_pool_release(&p, &c);
    toks[0] = 100;
    /* ...and filling the cache evicts cached blocks (blank ones first). */
    ASSERT_OK(vrt_block_pool_reserve(&p, &a, 16, &err), &err);
    ASSERT_EQ_INT(p.n_free, 0);
    vrt_block_pool_release(&p, &a);
    ASSERT_EQ_INT(vrt_block_pool_match_prefix(&p, &c, toks, 16), 0);
    vrt_block_pool_release(&p, &c);
    ASSERT(p.hits == 8 + 4 + 8 && p.queries > p.hits);
    vrt_block_pool_free(&p);
}

TEST(kv_blocks_commit_keeps_one_block_per_content)
{
    vrt_err err = {0};
    vrt_block_pool p;
    ASSERT_OK(vrt_block_pool_init(&p, 4, 2, &err), &err);
    ASSERT_OK(vrt_block_pool_enable_prefix_cache(&p, &err), &err);
    int32_t toks[4] = {5, 6, 7, 8};
    vrt_seq_blocks a = {0}, b = {0}, c = {0};
    /* Two sequences compute the same prompt side by side. */
    ASSERT_OK(vrt_block_pool_reserve(&p, &a, 4, &err), &err);
    ASSERT_OK(vrt_block_pool_reserve(&p, &b, 4, &err), &err);
    vrt_block_pool_commit(&p, &a, toks, 4);
    vrt_block_pool_commit(&p, &b, toks, 4);
    int32_t a0 = a.ids[0], b0 = b.ids[0];
    vrt_block_pool_release(&p, &b); /* b's copies were never registered */
    vrt_block_pool_release(&p, &a);
    ASSERT_EQ_INT(p.n_free, 4);
    /* The cache finds a's blocks; b's went back to the blank stack and are
     * handed out before any cached one. */
    ASSERT_EQ_INT(vrt_block_pool_match_prefix(&p, &c, toks, 4), 2);
    ASSERT_EQ_INT(c.ids[0], a0);
    vrt_seq_blocks d = {0};
    ASSERT_OK(vrt_block_pool_reserve(&p, &d, 1, &err), &err);
    ASSERT_EQ_INT(d.ids[0], b0);
    vrt_block_pool_release(&p, &c);
    vrt_block_pool_release(&p, &d);
    /* With caching off, nothing matches and nothing is counted. */
    vrt_block_pool q;
    ASSERT_OK(vrt_block_pool_init(&q, 4, 2, &err), &err);
    ASSERT_EQ_INT(vrt_block_pool_match_prefix(&q, &c, toks, 4), 0);
    ASSERT(q.queries == 0 && q.hits == 0);
    vrt_block_pool_free(&q);
    vrt_block_pool_free(&p);
}
