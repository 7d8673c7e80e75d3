/* model.h — a loaded model: hyperparameters, an architecture description,
 * weights on a backend, the paged KV cache memory, and the forward pass.
 *
 * Weights are used in place from the mmapped checkpoint whenever the
 * backend's memory is host memory, the tensor's dtype is what the model
 * runs with and the data is aligned; otherwise they are converted (BF16 ->
 * F16, F32 <-> F16 as model.dtype asks) into backend memory. The 4-bit
 * linears of GPTQ and AWQ checkpoints are repacked into the internal int4
 * layout (quant.h) and run as VRT_DT_Q4 weights. Architectures
 * differ only by the vrt_arch_desc data; the forward pass (forward.c) is
 * written once.
 *
 * The forward pass takes a flattened batch: T tokens from several
 * sequences, each at its own position (some prefilling many tokens, some
 * decoding one), and returns the logits of the requested rows.
 */
#ifndef VRT_MODEL_MODEL_H
#define VRT_MODEL_MODEL_H

#include "backend/backend.h"
#include "model/checkpoint.h"
#include "model/hf_config.h"
#include "model/quant.h"

typedef struct vrt_layer_weights {
    vrt_weight attn_norm;            /* [D] */
    vrt_weight wq, wk, wv, wo;       /* [H*hd][D], [Hkv*hd][D] x2, [D][H*hd] */
    float *bq, *bk, *bv, *bo;        /* [H*hd], [Hkv*hd] x2, [D] or NULL */
    vrt_weight ffn_norm;             /* [D] */
    vrt_weight w_gate, w_up, w_down; /* [F][D], [F][D], [D][F] */
    float *b_gate, *b_up, *b_down;   /* [F], [F], [D] or NULL */
} vrt_layer_weights;

/* Scratch for one forward call, sized for max_tokens tokens. */
typedef struct vrt_workspace {
    int max_tokens, max_out, max_seqs, max_blocks;
    float *x, *xn;                        /* [T][D] residual stream, normed */
    float *q, *k, *v, *attn;              /* [T][H*hd], [T][Hkv*hd] x2, [T][H*hd] */
    float *gate, *up;                     /* [T][F] */
    float *out_h;                         /* [n_out][D] gathered rows */
    float *logits;                        /* [n_out][V] */
    int32_t *tokens, *pos, *slots, *rows; /* [T], [T], [T], [n_out] */
    int32_t *q_start, *ctx_len;           /* [n_seqs+1], [n_seqs] */
    int32_t *block_table;                 /* [n_seqs][max_blocks] */
    float *inv_freq;                      /* [rot_dim/2] */
    uint64_t epoch;                       /* bumped when the buffers move */
} vrt_workspace;

/* A recorded decode step (CUDA graph) for `bucket` sequences. */
typedef struct vrt_graph_entry {
    int bucket, max_blocks; /* batch size and block table width it was recorded for */
    const void *kv_id;      /* the KV cache (its first layer's K) */
    uint64_t ws_epoch, be_epoch;
    int seen;    /* ran eagerly once (warm-up) */
    void *graph; /* the backend's handle, or NULL */
} vrt_graph_entry;

#define VRT_MAX_GRAPHS 32

typedef struct vrt_model_load_opts {
    const char *dtype;    /* "float16" (default), "float32" or "auto" (as stored;
                             BF16 becomes F16) */
    int quiet;            /* no progress output */
    const char *quantize; /* model.quantize: NULL accepts what the checkpoint
                             is; "none", "gptq" or "awq" must match it */
} vrt_model_load_opts;

typedef struct vrt_model {
    vrt_model_config cfg;
    vrt_arch_desc arch;
    vrt_backend *be; /* not owned */
    vrt_checkpoint ck;
    int wdtype;                /* VRT_DT_F16 or VRT_DT_F32: the dtype weights run with */
    vrt_weight embed;          /* [V][D] */
    vrt_weight final_norm;     /* [D] */
    vrt_weight lm_head;        /* [V][D] (the embedding when tied) */
    vrt_layer_weights *layers; /* [L] */
    vrt_quant_config qc;       /* the checkpoint's quantization (method NONE: none) */
    vrt_q4 *q4_desc;           /* [7 L] int4 descriptors the q4 weights point at */
    int n_q4;                  /* how many are in use */
    void **owned_;             /* backend allocations to free */
    int n_owned_;
    size_t cap_owned_;
    int64_t weight_bytes; /* bytes of weights (in place or copied) */
    int64_t copied_bytes; /* of which copied/converted into backend memory */
    vrt_workspace ws;
    float *inv_freq_host; /* [rot_dim/2] */
    int inv_freq_len;     /* seq_len the table was computed for (dynamic rope) */
    /* Decode steps as graphs (kernels.cuda_graphs): 0 off; 1 where the
     * backend records them, a decode batch padded to the next bucket size
     * (1, 2, 4, 8, 16, 24, 32, ... 256) and recorded once per bucket; 2
     * pads without recording (tests the padding on any backend). */
    int graphs;
    vrt_graph_entry graph_cache[VRT_MAX_GRAPHS];
    int n_graphs;
} vrt_model;

/* The paged KV cache memory of every layer: [num_blocks][block_size]
 * [Hkv][hd] fp16 for K and for V. */
typedef struct vrt_kv_cache {
    int num_blocks, block_size, n_layers, n_kv_heads, head_dim;
    uint16_t **k, **v; /* [n_layers] device pointers */
    vrt_backend *be;
} vrt_kv_cache;

/* A flattened batch; every pointer is host memory. Positions and slots are
 * derived: token j of sequence s is at position ctx_len[s] - q_len + j and
 * goes to the slot its block table gives for that position. */
typedef struct vrt_batch {
    int n_seqs;
    const int32_t *tokens;      /* [T], T = q_start[n_seqs] */
    const int32_t *q_start;     /* [n_seqs+1], q_start[0] = 0 */
    const int32_t *ctx_len;     /* [n_seqs]: tokens in the cache after this step */
    const int32_t *block_table; /* [n_seqs][max_blocks_per_seq] */
    int max_blocks_per_seq;
    const int32_t *out_rows; /* [n_out] flattened token indices whose logits are
                                wanted, or NULL: the last token of every sequence */
    int n_out;
} vrt_batch;

/* Loads dir (config.json + safetensors) onto be. On failure *out is NULL
 * and err names the file/tensor and what to do. */
int vrt_model_load(vrt_model **out, const char *dir, vrt_backend *be,
                   const vrt_model_load_opts *opts, vrt_err *err);
void vrt_model_free(vrt_model *m);

/* The architecture description for a config: its row's descriptor completed
 * from the config (arch.c). Errors list what is supported, or name the
 * feature the forward pass lacks. */
int vrt_arch_describe(const vrt_model_config *c, vrt_arch_desc *a, vrt_err *err);

int vrt_kv_cache_init(vrt_kv_cache *kv, const vrt_model *m, int num_blocks, int block_size,
                      vrt_err *err);
void vrt_kv_cache_free(vrt_kv_cache *kv);
/* Bytes of one block over all layers, K and V. */
int64_t vrt_kv_block_bytes(const vrt_model_config *c, int block_size);

/* Runs the model over the batch. logits: host [n_out][V] (n_out = n_seqs
 * when b->out_rows is NULL). Token ids, lengths and block ids are checked;
 * bad input is an error, never a crash. */
int vrt_model_forward(vrt_model *m, vrt_kv_cache *kv, const vrt_batch *b, float *logits,
                      vrt_err *err);

#endif
