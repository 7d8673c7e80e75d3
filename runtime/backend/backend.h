/* backend.h — the backend contract: memory and ops as a table of functions.
 *
 * The model's forward pass (runtime/model/forward.c) is written once against
 * this struct and runs on every backend (cpu, cuda, cuda-emu). It calls the
 * ops for a *flattened batch*: T tokens from several sequences at different
 * positions (some prefilling many tokens, some decoding one) in one call.
 * Whether a backend can run an op for a weight dtype is asked separately
 * (supports_op), so callers can fall back before executing anything.
 *
 * Conventions shared by all ops:
 *  - every pointer is a device pointer (alloc'ed by the same backend);
 *  - activations are f32, row-major [T][...];
 *  - weights are vrt_weight matrices, f32, f16 or the internal int4 layout
 *    (VRT_DT_Q4, matmul only; see vrt_q4 below and README "Internal int4
 *    layout");
 *  - the KV cache of one layer is fp16 (uint16_t bit patterns)
 *    [num_blocks][block_size][n_kv_heads][head_dim] for K and the same for V;
 *  - every op returns 0 or a negative VRT_E* code and validates its
 *    arguments (bad dtype, out-of-range token id or slot, inconsistent
 *    shapes) with a message in err, never a crash.
 */
#ifndef VRT_BACKEND_H
#define VRT_BACKEND_H

#include "vrt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    VRT_DT_F32 = 0,
    VRT_DT_F16 = 1,
    VRT_DT_Q4 = 2 /* internal int4 layout (vrt_q4), matmul weights only */
} vrt_dtype;

/* Round-up of K in the int4 layout: rows are padded to whole 128-bit
 * vectors of 32 nibbles. */
#define VRT_Q4_KBLOCK 32

/* The internal int4 layout of a [N][K] weight (GPTQ and AWQ checkpoints are
 * repacked into it at load; README "Internal int4 layout"). Let
 * Kp = K rounded up to VRT_Q4_KBLOCK and ng = ceil(K / group_size).
 * Internal column k (0 <= k < Kp) of row n is nibble k % 8 (bits
 * [4(k%8), 4(k%8)+4)) of word k / 8 of row n; columns >= K are padding and
 * hold 0. It belongs to group k / group_size and dequantizes to
 *     W[n][k] = (q - zeros[n][g]) * scales[n][g]        (in f32)
 * Internal column k multiplies activation column perm[k] (act-order
 * checkpoints: columns sorted by group so that groups are contiguous), or
 * column k when perm is NULL. The struct itself lives in host memory; its
 * arrays are device pointers of the backend the weight is on. */
typedef struct vrt_q4 {
    const uint32_t *qweight; /* [N][Kp/8] packed nibbles, rows 16-byte aligned */
    const uint16_t *scales;  /* [N][ng] fp16 */
    const uint16_t *zeros;   /* [N][ng] fp16 zero points (integers 0..16) */
    const int32_t *perm;     /* [K] activation column of internal column k, or NULL */
    int group_size;          /* a multiple of VRT_Q4_KBLOCK, or >= K (one group) */
    int n_groups;            /* ng */
} vrt_q4;

/* A [rows][cols] row-major matrix in nn.Linear layout (y = x·Wᵀ, so rows is
 * the output size and cols the input size); a vector is rows = 1. */
typedef struct vrt_weight {
    const void *data; /* [rows][cols] of dtype; for VRT_DT_Q4 q4->qweight */
    int dtype;        /* vrt_dtype */
    int64_t rows, cols;
    const vrt_q4 *q4; /* VRT_DT_Q4 only (else NULL): the int4 descriptor */
} vrt_weight;

/* The sequences of one attention call. The position of query token j
 * (0-based within seq s, q_len = q_start[s+1] - q_start[s]) is
 * p = ctx_len[s] - q_len + j; it sees key positions k <= p with
 * (sliding_window == 0 || p - k < sliding_window). Key position k of seq s
 * lives at slot block_table[s][k / block_size] * block_size + k % block_size.
 * GQA: query head h uses kv head h / (n_heads / n_kv_heads).
 * Arrays are device pointers like everything else. */
typedef struct vrt_attn_batch {
    int n_seqs;
    const int32_t *q_start;     /* [n_seqs+1]: seq s owns flattened tokens
                                   q_start[s] .. q_start[s+1]-1; q_start[0] = 0 */
    const int32_t *ctx_len;     /* [n_seqs]: tokens of seq s in the KV cache after
                                   this step, including its new tokens */
    const int32_t *block_table; /* [n_seqs][max_blocks_per_seq] physical block ids */
    int max_blocks_per_seq;
    int block_size;
    int sliding_window; /* 0 = none */
    float scale;        /* usually 1/sqrt(head_dim) */
    int n_heads, n_kv_heads, head_dim;
    int num_blocks; /* blocks in the cache, for bound checks; 0 = not checked */
    /* q_start[n_seqs], given by a caller that sets b->inputs_checked (a
     * device backend then launches without reading q_start back); ignored
     * otherwise. */
    int n_tokens;
} vrt_attn_batch;

typedef enum {
    VRT_OP_EMBED,
    VRT_OP_RMSNORM,
    VRT_OP_LAYERNORM,
    VRT_OP_ROPE,
    VRT_OP_MATMUL,
    VRT_OP_SILU_MUL,
    VRT_OP_GELU_MUL,
    VRT_OP_GELU,
    VRT_OP_ADD,
    VRT_OP_KV_STORE,
    VRT_OP_ATTN_PREFILL,
    VRT_OP_ATTN_DECODE,
    VRT_OP_MOE_TOPK,
    VRT_OP_COUNT
} vrt_op;

/* "embed", "rmsnorm", ...; "unknown" outside the enum. */
const char *vrt_op_name(vrt_op op);
/* "f32", "f16", "q4"; "unknown" otherwise. */
const char *vrt_dtype_name(int dtype);

typedef struct vrt_backend vrt_backend;

struct vrt_backend {
    const char *name; /* "cpu", ... */
    void *ctx;        /* backend-private state */
    /* Device memory is host memory (cpu): the model may then use weights in
     * place from the mmapped checkpoint instead of copying them. */
    bool host_memory;
    /* Set by a caller that has checked the contents of the index arrays it
     * passes (token ids, slots, attention batches) on the host before
     * copying them: a backend whose device memory is not host-readable
     * (cuda) then checks only the scalar arguments instead of reading the
     * arrays back (a wait per op). The model's forward pass sets it for
     * its own calls. False by default: every op checks everything. */
    bool inputs_checked;
    /* Bumped whenever the backend replaces a buffer of its own that
     * launches point to (scratch, workspaces): recorded launches (CUDA
     * graphs) made before are then stale. */
    uint64_t buffers_epoch;

    /* Whether op can run with weights of weight_dtype (ignored by ops
     * without weights). */
    bool (*supports_op)(vrt_backend *b, vrt_op op, int weight_dtype);

    /* Memory. alloc returns NULL and fills err when it fails. */
    void *(*alloc)(vrt_backend *b, size_t bytes, vrt_err *err);
    void (*free)(vrt_backend *b, void *p);
    int (*copy_to_device)(vrt_backend *b, void *dst, const void *src, size_t n, vrt_err *err);
    int (*copy_to_host)(vrt_backend *b, void *dst, const void *src, size_t n, vrt_err *err);
    int (*memset)(vrt_backend *b, void *p, int value, size_t n, vrt_err *err);
    /* Device to device, in order with the ops (`v100rt bench` measures the
     * device's copy bandwidth with it). */
    int (*copy_on_device)(vrt_backend *b, void *dst, const void *src, size_t n, vrt_err *err);
    int (*sync)(vrt_backend *b, vrt_err *err);
    /* Free and total device memory in bytes (for the memory plan); NULL on
     * backends whose memory is host memory. */
    int (*mem_info)(vrt_backend *b, size_t *free_bytes, size_t *total_bytes, vrt_err *err);
    /* Recording ops for replay (CUDA graphs); NULL where unsupported.
     * graph_begin starts recording on the backend's stream: ops called
     * until graph_end are recorded, not run. graph_end always stops the
     * recording; with graph NULL it discards it, else it returns a
     * replayable handle. The recorded ops read and write the same buffers
     * at every replay, with the scalar arguments they had. */
    int (*graph_begin)(vrt_backend *b, vrt_err *err);
    int (*graph_end)(vrt_backend *b, void **graph, vrt_err *err);
    int (*graph_launch)(vrt_backend *b, void *graph, vrt_err *err);
    void (*graph_free)(vrt_backend *b, void *graph);
    /* A line describing the device ("NVIDIA ... (sm_70, 16.0 GiB)"); NULL
     * when there is nothing to say. */
    const char *(*device_name)(vrt_backend *b);
    void (*destroy)(vrt_backend *b);

    /* out[t] = table[ids[t]]; D = table->cols, V = table->rows. */
    int (*embed)(vrt_backend *b, float *out /* [T][D] */, const vrt_weight *table /* [V][D] */,
                 const int32_t *ids /* [T] */, int T, vrt_err *err);
    /* out = x / sqrt(mean(x²) + eps) * (w + w_offset); Gemma uses
     * w_offset 1.0, Llama 0. out may alias x. */
    int (*rmsnorm)(vrt_backend *b, float *out /* [T][D] */, const float *x /* [T][D] */,
                   const vrt_weight *w /* [D] */, int T, int D, float eps, float w_offset,
                   vrt_err *err);
    /* x = x + a, then out = rmsnorm(x) as above: the residual add fused
     * into the norm after it. out may alias a. Optional: NULL where a
     * backend has nothing better than add then rmsnorm. */
    int (*add_rmsnorm)(vrt_backend *b, float *x /* [T][D] */, const float *a /* [T][D] */,
                       float *out /* [T][D] */, const vrt_weight *w /* [D] */, int T, int D,
                       float eps, float w_offset, vrt_err *err);
    /* out = (x - mean) / sqrt(var + eps) * w + bias. out may alias x. */
    int (*layernorm)(vrt_backend *b, float *out /* [T][D] */, const float *x /* [T][D] */,
                     const vrt_weight *w /* [D] */, const vrt_weight *bias /* [D] or NULL */, int T,
                     int D, float eps, vrt_err *err);
    /* Rotary embedding in place. angle(t, i) = pos[t] * inv_freq[i];
     * interleaved = 1 rotates pairs (2i, 2i+1) (GPT-J), 0 rotates pairs
     * (i, i + rot_dim/2) (Llama/NeoX). Only the first rot_dim (even,
     * <= head_dim) dims of each head rotate. The caller computes inv_freq,
     * so every rope scaling variant is expressed through it. */
    int (*rope)(vrt_backend *b, float *x /* [T][n_heads][head_dim] */, const int32_t *pos /* [T] */,
                int T, int n_heads, int head_dim, int rot_dim, int interleaved,
                const float *inv_freq /* [rot_dim/2] */, vrt_err *err);
    /* y = x·Wᵀ + bias; K = W->cols, N = W->rows. */
    int (*matmul)(vrt_backend *b, float *y /* [T][N] */, const float *x /* [T][K] */,
                  const vrt_weight *W /* [N][K] */, const float *bias /* [N] or NULL */, int T,
                  vrt_err *err);
    /* Several projections of the same x at once (q/k/v, gate/up):
     * y[i] = x·W[i]ᵀ + bias[i] for i < n (bias[i] may be NULL). Optional:
     * NULL where a backend has nothing better than n matmul calls (the
     * forward pass then makes them). */
    int (*matmul_group)(vrt_backend *b, int n, float *const *y, const float *x,
                        const vrt_weight *const *W, const float *const *bias, int T, vrt_err *err);
    /* out = silu(gate) * up. */
    int (*silu_mul)(vrt_backend *b, float *out /* [n] */, const float *gate /* [n] */,
                    const float *up /* [n] */, int64_t n, vrt_err *err);
    /* out = gelu(gate) * up; tanh_approx selects the tanh formula. */
    int (*gelu_mul)(vrt_backend *b, float *out /* [n] */, const float *gate /* [n] */,
                    const float *up /* [n] */, int64_t n, int tanh_approx, vrt_err *err);
    int (*gelu)(vrt_backend *b, float *out /* [n] */, const float *x /* [n] */, int64_t n,
                int tanh_approx, vrt_err *err);
    /* out = a + c; out may alias a or c. */
    int (*add)(vrt_backend *b, float *out /* [n] */, const float *a /* [n] */,
               const float *c /* [n] */, int64_t n, vrt_err *err);
    /* Writes token t's K/V (rounded to fp16) at slots[t]; slot < 0 skips the
     * token; a slot >= num_slots (num_blocks * block_size) is VRT_ERANGE and
     * nothing is written. */
    int (*kv_store)(vrt_backend *b, uint16_t *k_cache /* [num_slots][n_kv_heads][head_dim] */,
                    uint16_t *v_cache /* [num_slots][n_kv_heads][head_dim] */,
                    const float *k /* [T][n_kv_heads][head_dim] */,
                    const float *v /* [T][n_kv_heads][head_dim] */, const int32_t *slots /* [T] */,
                    int T, int n_kv_heads, int head_dim, int64_t num_slots, vrt_err *err);
    /* Paged causal attention for any q_len per sequence; the new tokens' K/V
     * were already written with kv_store, so every key is read from the
     * cache. T = q_start[n_seqs]. */
    int (*attention_prefill)(vrt_backend *b, float *out /* [T][n_heads][head_dim] */,
                             const float *q /* [T][n_heads][head_dim] */, const uint16_t *k_cache,
                             const uint16_t *v_cache, const vrt_attn_batch *batch, vrt_err *err);
    /* The same for batches where every sequence has q_len == 1
     * (VRT_EINVAL otherwise). */
    int (*attention_decode)(vrt_backend *b, float *out /* [T][n_heads][head_dim] */,
                            const float *q /* [T][n_heads][head_dim] */, const uint16_t *k_cache,
                            const uint16_t *v_cache, const vrt_attn_batch *batch, vrt_err *err);
    /* Softmax over the E experts, then the k largest (ties: lower index
     * first), in descending order; renormalize makes the k weights sum to 1. */
    int (*moe_topk)(vrt_backend *b, const float *router_logits /* [T][E] */, int T, int E, int k,
                    int renormalize, int32_t *idx /* [T][k] */, float *weights /* [T][k] */,
                    vrt_err *err);
};

/* Creates a backend of a built-in kind ("cpu"; see vrt_backend_list()).
 * threads: CPU threads for the kernels, 0 = all cores. */
int vrt_backend_create(vrt_backend **out, const char *kind, int threads, vrt_err *err);
typedef struct vrt_backend_opts {
    int threads;        /* CPU threads for the kernels, 0 = all cores */
    int custom_kernels; /* kernels.custom: 0 sends every op with a library
                           fallback to it (cuda: projections to cuBLAS) */
    int device;         /* cuda: the CUDA device ordinal (device.gpus[0]);
                           ignored by cpu and cuda-emu */
} vrt_backend_opts;
int vrt_backend_create_opts(vrt_backend **out, const char *kind, const vrt_backend_opts *o,
                            vrt_err *err);
/* GPUs the cuda backend sees (0 if it is not built, cannot load, or sees
 * none; then why says which, when given). For device.kind = "auto". */
int vrt_cuda_gpu_count(char *why, size_t why_len);
/* Frees b and everything it owns (NULL is fine). */
void vrt_backend_destroy(vrt_backend *b);
/* The kinds, comma-separated: "cpu,cuda-emu", plus ",cuda" when
 * libv100rt-cuda.so is there (whether it loads is told by creating it). */
const char *vrt_backend_list(void);

#endif
