/* cpu.h — the CPU backend: internal declarations shared by the files of kernels/cpu.
 *
 * The CPU backend keeps activations in f32, reads f32 or f16 weights in
 * place (f16 rows are converted on the fly into small per-thread buffers,
 * never copied whole), int4 (VRT_DT_Q4) matmul weights dequantized group by
 * group, and an fp16 paged KV cache. Kernels are plain C with
 * OpenMP; each op file implements one op family and is reached only through
 * the vtable built in cpu_backend.c. The f16 and int4 matmuls also have
 * AVX2+FMA+F16C kernels (matmul_avx2.c), used when isa.c picked that level
 * at backend creation (CPU features, V100RT_CPU_ISA).
 */
#ifndef VRT_KERNELS_CPU_H
#define VRT_KERNELS_CPU_H

#include "backend/backend.h"

/* Largest head_dim the attention and rope kernels take (their per-thread
 * scratch lives on the stack; the front and the model keep head_dim within
 * it). */
#define VRT_CPU_MAX_HEAD_DIM VRT_MAX_HEAD_DIM

/* Kernel levels (isa.c): the plain C kernels, and AVX2+FMA+F16C. */
enum { VRT_CPU_ISA_GENERIC = 0, VRT_CPU_ISA_AVX2 = 1 };

typedef struct vrt__cpu_ctx {
    int threads;    /* OpenMP threads per op, >= 1 */
    int isa;        /* VRT_CPU_ISA_*, chosen at creation (isa.c) */
    char name[192]; /* device_name: CPU model, kernel level, threads */
} vrt__cpu_ctx;

static inline int vrt__cpu_threads(vrt_backend *b)
{
    return ((vrt__cpu_ctx *)b->ctx)->threads;
}

/* isa.c: the level's name ("generic", "avx2"); the best level this CPU and
 * build support; and the level to use: the best, or V100RT_CPU_ISA's
 * (auto, generic, avx2), an error when that level is unknown or absent. */
const char *vrt__cpu_isa_name(int isa);
int vrt__cpu_isa_best(void);
int vrt__cpu_isa_select(int *isa, vrt_err *err);

/* matmul_avx2.c: 1 when the build has the AVX2 kernels (x86-64), and the
 * kernels (arguments already checked; call only at VRT_CPU_ISA_AVX2). */
extern const int vrt__cpu_avx2_built;
int vrt__cpu_matmul_f16_avx2(int threads, float *y, const float *x, const vrt_weight *W,
                             const float *bias, int T, vrt_err *err);
int vrt__cpu_matmul_q4_avx2(int threads, float *y, const float *x, const vrt_weight *W,
                            const float *bias, int T, vrt_err *err);

/* Keys scored before each softmax rescale in attention (attn.c). */
#define VRT_CPU_ATT_CHUNK 32
/* attn_avx2.c: attn.c's attend_one (output o[head_dim] of query qv of
 * sequence s at position p, KV head kvh) with AVX2+FMA+F16C; call only at
 * VRT_CPU_ISA_AVX2. */
void vrt__cpu_attend_one_avx2(float *o, const float *qv, const uint16_t *k_cache,
                              const uint16_t *v_cache, const vrt_attn_batch *a, int s, int p,
                              int kvh);

/* The CPU backend's memory functions: "device" memory is host memory
 * (64-byte aligned malloc, memcpy). The cuda-emu backend, whose memory is
 * host memory too, uses them as well. */
void *vrt__host_alloc(vrt_backend *b, size_t bytes, vrt_err *err);
void vrt__host_free(vrt_backend *b, void *p);
int vrt__host_copy(vrt_backend *b, void *dst, const void *src, size_t n, vrt_err *err);
int vrt__host_memset(vrt_backend *b, void *p, int value, size_t n, vrt_err *err);
int vrt__host_sync(vrt_backend *b, vrt_err *err);

/* Creates the CPU backend (threads: 0 = all cores). */
int vrt__cpu_backend_create(vrt_backend **out, int threads, vrt_err *err);

/* The dot products of the f32 matmul tiles (matmul.c, matmul_q4.c). */
/* r[0..3] = w0·x_j, r[4..7] = w1·x_j for the four token rows x0..x3. */
static inline void dot_2x4(const float *w0, const float *w1, const float *x0, const float *x1,
                           const float *x2, const float *x3, int64_t K, float *r)
{
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, b0, b1, b2, b3)
    for (int64_t k = 0; k < K; k++) {
        float u = w0[k], v = w1[k];
        a0 += u * x0[k];
        a1 += u * x1[k];
        a2 += u * x2[k];
        a3 += u * x3[k];
        b0 += v * x0[k];
        b1 += v * x1[k];
        b2 += v * x2[k];
        b3 += v * x3[k];
    }
    r[0] = a0, r[1] = a1, r[2] = a2, r[3] = a3;
    r[4] = b0, r[5] = b1, r[6] = b2, r[7] = b3;
}

/* w0·x0 over K. */
static inline float dot_1x1(const float *w0, const float *x0, int64_t K)
{
    float a0 = 0;
#pragma omp simd reduction(+ : a0)
    for (int64_t k = 0; k < K; k++)
        a0 += w0[k] * x0[k];
    return a0;
}

/* The ops of ops.def, one per entry: vrt__cpu_<name> in the file of its
 * family (embed.c, norm.c, rope.c, matmul.c, act.c, kv_store.c, attn.c,
 * moe.c). They compute only: the arguments were checked by the caller (the
 * checked front, backend/ops.h, or the forward pass). */
#define VRT_OP(name, ENUM, weights, front, params, args)                                           \
    int vrt__cpu_##name(vrt_backend *b, VRT_OP_UNPAREN params, vrt_err *err);
#include "backend/ops.def"
#undef VRT_OP
/* matmul_q4.c: the int4 matmul (called by vrt__cpu_matmul). */
int vrt__cpu_matmul_q4(vrt_backend *b, float *y, const float *x, const vrt_weight *W,
                       const float *bias, int T, vrt_err *err);

#endif
