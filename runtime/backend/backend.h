/* backend.h — the backend contract: memory and ops as a table of functions.
 *
 * The model's forward pass (runtime/model/forward.c) is written once against
 * this struct and runs on every backend (cpu, cuda, cuda-emu). It calls the
 * ops for a *flattened batch*: T tokens from several sequences at different
 * positions (some prefilling many tokens, some decoding one) in one call.
 * Whether a backend can run an op for a weight dtype is asked separately
 * (supports_op), so callers can fall back before executing anything.
 *
 * The ops are listed once, in backend/ops.def (their arguments and meaning).
 * Conventions shared by all ops:
 *  - every pointer is a device pointer (alloc'ed by the same backend);
 *  - activations are f32, row-major [T][...];
 *  - weights are vrt_weight matrices, f32, f16 or the internal int4 layout
 *    (VRT_DT_Q4, matmul only; see vrt_q4 below and README "Internal int4
 *    layout");
 *  - the KV cache of one layer is fp16 (uint16_t bit patterns)
 *    [num_blocks][block_size][n_kv_heads][head_dim] for K and the same for V;
 *  - every op returns 0 or a negative VRT_E* code.
 *
 * One validation seam: the ops of the table only compute and trust their
 * arguments. Callers outside the model (op tests, scripts, benchmarks) call
 * the checked front of backend/ops.h (vrt_op_matmul(b, ...)), which checks
 * shapes, dtypes and the index arrays (token ids, slots, attention batches)
 * on the host and refuses bad ones with a message, never a crash. The
 * model's forward pass checks its batch once per step on the host, where
 * it builds the index arrays, and then calls the table directly.
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
    /* q_start[n_seqs]: a device backend launches without reading q_start
     * back. The forward pass sets it; the checked front (ops.h) fills it in
     * when it is 0 and refuses a wrong one. */
    int n_tokens;
} vrt_attn_batch;

/* The largest head_dim attention and rope take on every backend (kernel
 * scratch is sized by it), and the largest k of moe_topk. */
#define VRT_MAX_HEAD_DIM 1024
#define VRT_MOE_MAX_K 64

/* VRT_OP_UNPAREN params: an ops.def parameter list without its parentheses. */
#define VRT_OP_UNPAREN(...) __VA_ARGS__

typedef enum {
#define VRT_OP(name, ENUM, weights, front, params, args) VRT_OP_##ENUM,
#include "backend/ops.def"
#undef VRT_OP
    VRT_OP_COUNT
} vrt_op;

typedef struct vrt_backend vrt_backend;

/* The weight dtypes an op takes (the weights column of ops.def). */
enum { VRT_OPW_NONE, VRT_OPW_FLOAT, VRT_OPW_ANY };

/* "embed", "rmsnorm", ...; "unknown" outside the enum. */
const char *vrt_op_name(vrt_op op);
/* "f32", "f16", "q4"; "unknown" otherwise. */
const char *vrt_dtype_name(int dtype);
/* Whether op takes weights of weight_dtype by the weights column of ops.def
 * (ops without weights take any): the supports_op of a backend that runs
 * every op it lists. Inline, so that the cuda plugin has its own (marked
 * unused: the CUDA 11.8 build sees headers as one file and would warn). */
__attribute__((unused)) static inline bool vrt_op_weights(vrt_backend *b, vrt_op op,
                                                          int weight_dtype)
{
    int w = -1;
    switch (op) {
#define VRT_OP(name, ENUM, weights, front, params, args)                                           \
    case VRT_OP_##ENUM:                                                                            \
        w = weights;                                                                               \
        break;
#include "backend/ops.def"
#undef VRT_OP
    case VRT_OP_COUNT: break;
    }
    if (w == VRT_OPW_NONE)
        return true;
    if (w == VRT_OPW_FLOAT || w == VRT_OPW_ANY)
        return weight_dtype == VRT_DT_F32 || weight_dtype == VRT_DT_F16 ||
               (w == VRT_OPW_ANY && weight_dtype == VRT_DT_Q4);
    return false;
}

/* The version of this contract (struct vrt_backend, vrt_attn_batch,
 * vrt_weight, vrt_q4, the op list) between ./v100rt and the cuda plugin
 * libv100rt-cuda.so, which exports it as vrt_cuda_backend_abi (an int).
 * Bump it with any change to them: the binary refuses a plugin of another
 * version (registry.c) instead of calling through a mismatched table. */
#define VRT_BACKEND_ABI_VERSION 2

struct vrt_backend {
    const char *name; /* "cpu", ... */
    void *ctx;        /* backend-private state */
    /* Device memory is host memory (cpu): the model may then use weights in
     * place from the mmapped checkpoint instead of copying them. */
    bool host_memory;
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

    /* The ops of ops.def: int (*name)(vrt_backend *b, params, vrt_err *err).
     * They trust their arguments (callers outside the model use the
     * checked front, ops.h). */
#define VRT_OP(name, ENUM, weights, front, params, args)                                           \
    int (*name)(vrt_backend * b, VRT_OP_UNPAREN params, vrt_err * err);
#include "backend/ops.def"
#undef VRT_OP

    /* Fused variants, optional (NULL where a backend has nothing better;
     * the forward pass and the front then make the separate calls):
     * x = x + a, then out = rmsnorm(x) (out may alias a); and several
     * projections of the same x (q/k/v, gate/up), y[i] = x·W[i]ᵀ + bias[i]
     * for i < n (bias[i] may be NULL). */
    int (*add_rmsnorm)(vrt_backend *b, float *x /* [T][D] */, const float *a /* [T][D] */,
                       float *out /* [T][D] */, const vrt_weight *w /* [D] */, int T, int D,
                       float eps, float w_offset, vrt_err *err);
    int (*matmul_group)(vrt_backend *b, int n, float *const *y, const float *x,
                        const vrt_weight *const *W, const float *const *bias, int T, vrt_err *err);
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
/* Opens the cuda plugin at path and checks that it is one: it must export
 * vrt_cuda_backend_abi equal to VRT_BACKEND_ABI_VERSION, and the entry
 * points vrt_cuda_backend_create_dev and vrt_cuda_device_count (returned
 * in *create and *count as untyped pointers). On a mismatch or a missing
 * symbol it closes the library and returns VRT_EDEVICE with a message
 * naming the file, both versions and the fix (rebuild). Used by the
 * registry (registry.c) when it loads libv100rt-cuda.so, and by tests. */
int vrt__cuda_plugin_open(const char *path, void **handle, void **create, void **count,
                          vrt_err *err);
/* The plugin's side of that boundary (kernels/cuda/backend_cuda.c, built
 * into libv100rt-cuda.so only): the binary never links them, it finds them
 * with dlsym. Opens GPU `device` of the driver's numbering; the number of
 * GPUs the driver shows (0 without a driver or GPU). */
int vrt_cuda_backend_create_dev(vrt_backend **out, int threads, int custom_kernels, int device,
                                vrt_err *err);
int vrt_cuda_device_count(void);
/* Frees b and everything it owns (NULL is fine). */
void vrt_backend_destroy(vrt_backend *b);
/* The kinds, comma-separated: "cpu,cuda-emu", plus ",cuda" when
 * libv100rt-cuda.so is there (whether it loads is told by creating it). */
const char *vrt_backend_list(void);

#endif
