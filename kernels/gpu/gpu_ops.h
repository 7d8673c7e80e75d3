/* gpu_ops.h — the ops of a backend that runs the kernels of kernels/cuda.
 *
 * Two backends run the same kernels/cuda/<op>.cu sources: cuda-emu (built
 * with g++ and the emulator, linked into ./v100rt) and cuda (built with
 * nvcc into libv100rt-cuda.so, loaded at startup). Their ops are the same
 * code (gpu_ops.c, in ./v100rt): check the arguments, then call a launcher.
 * What differs is given by the backend as a vrt_gpu_kernels table: the
 * launchers of its own build of the kernels, its stream, how to read index
 * arrays back for the checks, and what its launch errors say.
 *
 * Index arrays (token ids, slots, block tables) live in device memory. The
 * ops check them as the cpu backend does, on a host-readable view: the
 * memory itself (cuda-emu), or a copy read back (cuda) — unless the caller
 * set b->inputs_checked, having checked them on the host before copying
 * them (the model's forward pass does), so that a step on a GPU does not
 * wait for a read-back per op.
 */
#ifndef VRT_KERNELS_GPU_OPS_H
#define VRT_KERNELS_GPU_OPS_H

#include "backend/backend.h"
#include "cuda/kernels.h"

#include <stddef.h>
#include <stdint.h>

typedef struct vrt_gpu_kernels {
    const char *name; /* "cuda" or "cuda-emu", for messages */
    void *stream;     /* cudaStream_t the launchers get */
    void *owner;      /* the backend's own state (passed to the hooks) */

    /* Copies n bytes of device memory to the host for the checks; NULL
     * when device memory is host-readable. */
    int (*read_back)(void *owner, void *dst, const void *src, size_t n, vrt_err *err);
    /* Turns a launcher's nonzero status into a vrt error naming op. */
    int (*launch_error)(void *owner, int status, const char *op, vrt_err *err);
    /* kernels.custom = false: every op that has a library fallback takes
     * it (the dense projections go to `matmul` below for any T). */
    int no_custom;
    /* The dense projection when the GEMV kernel does not take it (T above
     * VRT_CUDA_GEMV_MAX_T, or no_custom): cuBLAS on cuda; NULL = the tiled
     * FMA kernel (matmul_fma). Called after the arguments were checked. */
    int (*matmul)(void *owner, float *y, const float *x, const vrt_weight *W, const float *bias,
                  int T, vrt_err *err);

    /* The launchers of kernels/cuda/kernels.h, as built for this backend. */
    int (*embed)(float *, const void *, int, int, const int32_t *, int, void *);
    int (*rmsnorm)(float *, const float *, const void *, int, int, int, float, float, void *);
    int (*add_rmsnorm)(float *, const float *, float *, const void *, int, int, int, float, float,
                       void *);
    int (*layernorm)(float *, const float *, const void *, int, const void *, int, int, int, float,
                     void *);
    int (*rope)(float *, const int32_t *, int, int, int, int, int, const float *, void *);
    int (*silu_mul)(float *, const float *, const float *, int64_t, void *);
    int (*gelu_mul)(float *, const float *, const float *, int64_t, int, void *);
    int (*gelu)(float *, const float *, int64_t, int, void *);
    int (*add)(float *, const float *, const float *, int64_t, void *);
    int (*kv_store)(uint16_t *, uint16_t *, const float *, const float *, const int32_t *, int, int,
                    int, void *);
    int (*attention)(float *, const float *, const uint16_t *, const uint16_t *, vrt_attn_batch, int,
                     void *);
    int (*matmul_fma)(float *, const float *, const void *, int, int, int, const float *, int,
                      void *);
    int (*gemv)(float *, const float *, const void *, int, int, int, const float *, int, void *);
    int (*matmul_q4)(float *, const float *, vrt_q4, int, int, const float *, int, void *);
    int (*gemv_group)(vrt_gemv_group, const float *, int, int, int, void *);
    /* An int4 projection of more than VRT_CUDA_GEMV_MAX_T tokens, when the
     * backend has a better way (cuda: dequantize, then cuBLAS); NULL =
     * matmul_q4. Called after the arguments were checked. */
    int (*matmul_q4_large)(void *owner, float *y, const float *x, const vrt_weight *W,
                           const float *bias, int T, vrt_err *err);
    int (*attn_decode)(float *, const float *, const uint16_t *, const uint16_t *, vrt_attn_batch,
                       float *, void *);
    int (*attn_decode_ok)(int, int, int);
    int (*attn_prefill)(float *, const float *, const uint16_t *, const uint16_t *, vrt_attn_batch,
                        int, void *);
    int (*attn_prefill_ok)(int);
    size_t (*attn_decode_scratch)(const vrt_attn_batch *);

    /* Scratch device memory of the ops (split attention partials), grown
     * with b->alloc; growing it bumps b->buffers_epoch. */
    void *scratch;
    size_t scratch_bytes;
    int (*moe_topk)(const float *, int, int, int, int, int32_t *, float *, void *);
} vrt_gpu_kernels;

/* The launcher entries of a vrt_gpu_kernels initializer: the same list for
 * cuda-emu and cuda, each expanding it in its own build (so each names its
 * own copy of the vrt_cuda_* functions). */
#define VRT_GPU_LAUNCHERS                                                                          \
    .embed = vrt_cuda_embed, .rmsnorm = vrt_cuda_rmsnorm,                                  \
    .add_rmsnorm = vrt_cuda_add_rmsnorm, .layernorm = vrt_cuda_layernorm,         \
    .rope = vrt_cuda_rope, .silu_mul = vrt_cuda_silu_mul, .gelu_mul = vrt_cuda_gelu_mul,           \
    .gelu = vrt_cuda_gelu, .add = vrt_cuda_add, .kv_store = vrt_cuda_kv_store,                     \
    .attention = vrt_cuda_attention, .matmul_fma = vrt_cuda_matmul, .gemv = vrt_cuda_gemv,         \
    .matmul_q4 = vrt_cuda_matmul_q4, .gemv_group = vrt_cuda_gemv_group, .attn_decode = vrt_cuda_attn_decode,                          \
    .attn_decode_ok = vrt_cuda_attn_decode_ok,                                                     \
    .attn_decode_scratch = vrt_cuda_attn_decode_scratch, .attn_prefill = vrt_cuda_attn_prefill,    \
    .attn_prefill_ok = vrt_cuda_attn_prefill_ok, .moe_topk = vrt_cuda_moe_topk

/* Fills the op entries of b (embed ... moe_topk, supports_op) with the
 * shared ops; b->ctx must point to a struct whose first member is a
 * vrt_gpu_kernels (the table the ops read). Memory functions, sync and
 * destroy stay the backend's own. */
void vrt__gpu_ops_init(vrt_backend *b);
/* Frees what the shared ops allocated (call from destroy, before the
 * memory functions stop working). */
void vrt__gpu_ops_release(vrt_backend *b);

#endif
