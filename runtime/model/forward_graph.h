/* forward_graph.h — internal to runtime/model: what forward.c, model.c and
 * forward_graph.c share. forward.c is the math of one step; forward_graph.c
 * runs a decode step padded to a bucket size and replays it as a recorded
 * graph (CUDA graphs) where the backend can.
 */
#ifndef VRT_MODEL_FORWARD_GRAPH_H
#define VRT_MODEL_FORWARD_GRAPH_H

#include "model/model.h"

/* The host side of one step's inputs, as run: with a bucket, the batch
 * padded to bucket sequences of one token each. */
typedef struct vrt_step_host {
    int T, n_seqs, n_out;                      /* as run (bucket when padded) */
    int32_t *pos, *slots, *rows;               /* [T], [T], [n_out]: filled by the checks */
    const int32_t *tokens, *q_start, *ctx_len; /* the batch's, or the padded copies */
    const int32_t *block_table;                /* [n_seqs][max_blocks] */
    int32_t *buf;                              /* owns every array above that is not the batch's */
} vrt_step_host;

/* forward.c: every op of one step (embedding, the layers, the logits rows)
 * on the inputs already in the workspace; what a graph records. */
int vrt__model_run_ops(vrt_model *m, vrt_kv_cache *kv, int T, int n_out, const vrt_attn_batch *ab,
                       int all_decode, vrt_err *err);

/* model.c: makes the workspace hold T tokens, n_out logit rows, n_seqs
 * sequences with max_blocks blocks each; grows (never shrinks) it. */
int vrt__model_workspace(vrt_model *m, int T, int n_out, int n_seqs, int max_blocks, vrt_err *err);

/* The bucket a step of b (T tokens, n_out rows) runs padded to: 0 unless
 * m->graphs is on, every sequence decodes one token and the rows are the
 * default ones; then the smallest of 1, 2, 4, 8, 16, 24, 32, 48, ... 256
 * that holds the batch (0 when none does). */
int vrt__graph_bucket(const vrt_model *m, const vrt_batch *b, int T, int n_out);

/* Allocates h's arrays for a step of T tokens, n_out rows, run padded to
 * bucket (0: not padded). */
int vrt__step_host_alloc(vrt_step_host *h, const vrt_batch *b, int T, int n_out, int bucket,
                         vrt_err *err);
void vrt__step_host_free(vrt_step_host *h);

/* Pads the checked batch (T tokens) to h->n_seqs sequences: the extra ones
 * are one token (id 0, position 0) whose K/V is not stored (slot -1) and
 * whose attention reads block 0; their rows are not copied back. */
void vrt__graph_pad(vrt_step_host *h, const vrt_batch *b, int T);

/* Runs the ops of a padded decode step (bucket sequences) through its
 * graph: replays it when recorded, records it on the second sight (the
 * first runs eagerly, so that every buffer an op grows exists before
 * recording), else eagerly. A failed recording is reported once and turns
 * graphs off for the model. */
int vrt__model_run_graphed(vrt_model *m, vrt_kv_cache *kv, int bucket, int max_blocks,
                           const vrt_attn_batch *ab, vrt_err *err);

/* Frees every recorded graph of m. */
void vrt__model_graphs_free(vrt_model *m);

#endif
