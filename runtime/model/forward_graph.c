/* forward_graph.c — decode steps padded to a bucket size and replayed as
 * recorded graphs (see forward_graph.h).
 *
 * A decode step of n sequences runs as a step of the next bucket size
 * (m->graphs: 1 records and replays where the backend can, 2 pads without
 * recording so that the padding is tested on any backend). A graph is
 * recorded per (bucket, block table width, KV cache) and dropped when the
 * workspace or the backend's scratch buffers move (their epochs).
 */
#include "model/forward_graph.h"

#include "core/err.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

static int bucket_of(int n)
{
    static const int buckets[] = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256};
    for (size_t i = 0; i < sizeof buckets / sizeof buckets[0]; i++)
        if (n <= buckets[i])
            return buckets[i];
    return 0;
}

int vrt__graph_bucket(const vrt_model *m, const vrt_batch *b, int T, int n_out)
{
    int rows_default = !b->out_rows || n_out == T;
    for (int i = 0; b->out_rows && rows_default && i < n_out; i++)
        rows_default = b->out_rows[i] == i;
    if (m->graphs && rows_default && T == b->n_seqs && (m->graphs == 2 || m->be->graph_begin))
        return bucket_of(b->n_seqs);
    return 0;
}

int vrt__step_host_alloc(vrt_step_host *h, const vrt_batch *b, int T, int n_out, int bucket,
                         vrt_err *err)
{
    memset(h, 0, sizeof *h);
    h->T = bucket ? bucket : T;
    h->n_seqs = bucket ? bucket : b->n_seqs;
    h->n_out = bucket ? bucket : n_out;
    size_t n = (size_t)2 * h->T + (size_t)h->n_out;
    if (bucket)
        n += (size_t)h->T + (size_t)(h->n_seqs + 1) + (size_t)h->n_seqs +
             (size_t)h->n_seqs * b->max_blocks_per_seq;
    h->buf = malloc(n * sizeof *h->buf);
    if (!h->buf)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    h->pos = h->buf;
    h->slots = h->pos + h->T;
    h->rows = h->slots + h->T;
    h->tokens = b->tokens;
    h->q_start = b->q_start;
    h->ctx_len = b->ctx_len;
    h->block_table = b->block_table;
    return 0;
}

void vrt__step_host_free(vrt_step_host *h)
{
    free(h->buf);
    memset(h, 0, sizeof *h);
}

void vrt__graph_pad(vrt_step_host *h, const vrt_batch *b, int T)
{
    const int bucket = h->n_seqs, mb = b->max_blocks_per_seq;
    int32_t *tok = h->rows + h->n_out, *qs = tok + bucket, *ctx = qs + bucket + 1;
    int32_t *table = ctx + bucket;
    memcpy(tok, b->tokens, (size_t)T * sizeof *tok);
    memcpy(qs, b->q_start, (size_t)(T + 1) * sizeof *qs);
    memcpy(ctx, b->ctx_len, (size_t)T * sizeof *ctx);
    memcpy(table, b->block_table, (size_t)T * mb * sizeof *table);
    for (int i = T; i < bucket; i++) {
        tok[i] = 0;
        h->pos[i] = 0;
        h->slots[i] = -1;
        h->rows[i] = i;
        qs[i + 1] = i + 1;
        ctx[i] = 1;
        memset(table + (size_t)i * mb, 0, (size_t)mb * sizeof *table);
    }
    h->tokens = tok;
    h->q_start = qs;
    h->ctx_len = ctx;
    h->block_table = table;
}

void vrt__model_graphs_free(vrt_model *m)
{
    for (int i = 0; i < m->n_graphs; i++)
        if (m->graph_cache[i].graph && m->be->graph_free)
            m->be->graph_free(m->be, m->graph_cache[i].graph);
    m->n_graphs = 0;
}

/* The cache entry for (bucket, table width, KV cache); entries recorded
 * against moved buffers are dropped first. NULL when the cache is full. */
static vrt_graph_entry *graph_entry(vrt_model *m, vrt_kv_cache *kv, int bucket, int max_blocks)
{
    vrt_backend *be = m->be;
    vrt_graph_entry *free_slot = NULL;
    for (int i = 0; i < m->n_graphs; i++) {
        vrt_graph_entry *e = &m->graph_cache[i];
        if (e->ws_epoch != m->ws.epoch || e->be_epoch != be->buffers_epoch ||
            (e->kv_id && e->kv_id != (const void *)kv->k[0])) {
            if (e->graph)
                be->graph_free(be, e->graph);
            memset(e, 0, sizeof *e);
        }
        if (e->bucket == bucket && e->max_blocks == max_blocks && e->kv_id == kv->k[0])
            return e;
        if (!e->bucket && !free_slot)
            free_slot = e;
    }
    if (!free_slot && m->n_graphs < VRT_MAX_GRAPHS)
        free_slot = &m->graph_cache[m->n_graphs++];
    if (free_slot)
        *free_slot = (vrt_graph_entry){.bucket = bucket,
                                       .max_blocks = max_blocks,
                                       .kv_id = kv->k[0],
                                       .ws_epoch = m->ws.epoch,
                                       .be_epoch = be->buffers_epoch};
    return free_slot;
}

int vrt__model_run_graphed(vrt_model *m, vrt_kv_cache *kv, int bucket, int max_blocks,
                           const vrt_attn_batch *ab, vrt_err *err)
{
    vrt_backend *be = m->be;
    vrt_graph_entry *e =
        m->graphs == 1 && be->graph_begin ? graph_entry(m, kv, bucket, max_blocks) : NULL;
    if (e && e->graph)
        return be->graph_launch(be, e->graph, err);
    if (!e || !e->seen) {
        int rc = vrt__model_run_ops(m, kv, bucket, bucket, ab, 1, err);
        if (!rc && e) {
            e->seen = 1;
            e->be_epoch = be->buffers_epoch; /* the warm-up may have grown scratch */
        }
        return rc;
    }
    int rc = be->graph_begin(be, err);
    if (!rc) {
        rc = vrt__model_run_ops(m, kv, bucket, bucket, ab, 1, err);
        void *g = NULL;
        if (rc) {
            be->graph_end(be, NULL, NULL);
        } else {
            rc = be->graph_end(be, &g, err);
            if (!rc)
                e->graph = g;
        }
    }
    if (rc) {
        /* Recording failed: say so once and run eagerly from now on. */
        VRT_WARN("decode step of %d sequences could not be recorded as a graph (%s); running "
                 "without graphs (kernels.cuda_graphs = false silences this)",
                 bucket, err->msg);
        vrt__model_graphs_free(m);
        m->graphs = 0;
        *err = (vrt_err){0};
        return vrt__model_run_ops(m, kv, bucket, bucket, ab, 1, err);
    }
    return be->graph_launch(be, e->graph, err);
}
