/* gpu_ops.h — the ops of a backend that runs the kernels of kernels/cuda.
 *
 * Two backends run the same kernels/cuda/<op>.cu sources: cuda-emu (built
 * with g++ and the emulator, linked into ./v100rt) and cuda (built with
 * nvcc into libv100rt-cuda.so, loaded at startup). Their ops are the same
 * code (gpu_ops.c): pick a kernel, then call its launcher.
 * What differs is given by the backend as a vrt_gpu_kernels table: the
 * launchers of its own build of the kernels, its stream, and what its launch errors say.
 *
 * Index arrays (token ids, slots, block tables) live in device memory and
 * are never read back here: the caller checked them on the host before
 * copying them (the checked front, backend/ops.h, or the forward pass), so
 * a step on a GPU does not wait for a read-back per op.
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

    /* Turns a launcher's nonzero status into a vrt error naming op. */
    int (*launch_error)(void *owner, int status, const char *op, vrt_err *err);
    /* kernels.custom = false: every op that has a library fallback takes
     * it (the dense projections go to matmul_lib below for any T). */
    int no_custom;
    /* The dense projection when the GEMV kernel does not take it (T above
     * VRT_CUDA_GEMV_MAX_T, or no_custom): cuBLAS on cuda; NULL = the tiled
     * FMA kernel (the matmul launcher). */
    int (*matmul_lib)(void *owner, float *y, const float *x, const vrt_weight *W, const float *bias,
                      int T, vrt_err *err);

    /* The launchers of kernels/cuda/kernels.h, as built for this backend
     * (the entry name is the launcher's: .gemv = vrt_cuda_gemv). */
#define VRT_GPU_LAUNCHER_SLOT(n) __typeof__(vrt_cuda_##n) *n;
    VRT_CUDA_LAUNCHERS(VRT_GPU_LAUNCHER_SLOT)
#undef VRT_GPU_LAUNCHER_SLOT
    /* An int4 projection of more than VRT_CUDA_GEMV_MAX_T tokens, when the
     * backend has a better way (cuda: dequantize, then cuBLAS); NULL =
     * matmul_q4. */
    int (*matmul_q4_large)(void *owner, float *y, const float *x, const vrt_weight *W,
                           const float *bias, int T, vrt_err *err);

    /* Scratch device memory of the ops (split attention partials), grown
     * with b->alloc; growing it bumps b->buffers_epoch. */
    void *scratch;
    size_t scratch_bytes;
} vrt_gpu_kernels;

/* The launcher entries of a vrt_gpu_kernels initializer: the same list for
 * cuda-emu and cuda, each expanding it in its own build (so each names its
 * own copy of the vrt_cuda_* functions). */
#define VRT_GPU_LAUNCHER_INIT(n) .n = vrt_cuda_##n,
#define VRT_GPU_LAUNCHERS VRT_CUDA_LAUNCHERS(VRT_GPU_LAUNCHER_INIT)

/* Fills the op entries of b (embed ... moe_topk, supports_op) with the
 * shared ops; b->ctx must point to a struct whose first member is a
 * vrt_gpu_kernels (the table the ops read). Memory functions, sync and
 * destroy stay the backend's own. */
void vrt__gpu_ops_init(vrt_backend *b);
/* Frees what the shared ops allocated (call from destroy, before the
 * memory functions stop working). */
void vrt__gpu_ops_release(vrt_backend *b);

#endif
