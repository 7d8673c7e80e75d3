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

/* Largest head_dim the attention and rope kernels accept (their per-thread
 * scratch lives on the stack). */
#define VRT_CPU_MAX_HEAD_DIM 1024

/* Kernel levels (isa.c): the plain C kernels, and AVX2+FMA+F16C. */
enum { VRT_CPU_ISA_GENERIC = 0, VRT_CPU_ISA_AVX2 = 1 };

typedef struct vrt__cpu_ctx {
    int threads; /* OpenMP threads per op, >= 1 */
    int isa;     /* VRT_CPU_ISA_*, chosen at creation (isa.c) */
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

/* Keys scored before each softmax rescale in attention (kv_attn.c). */
#define VRT_CPU_ATT_CHUNK 32
/* attn_avx2.c: kv_attn.c's attend_one (output o[head_dim] of query qv of
 * sequence s at position p, KV head kvh) with AVX2+FMA+F16C; call only at
 * VRT_CPU_ISA_AVX2. */
void vrt__cpu_attend_one_avx2(float *o, const float *qv, const uint16_t *k_cache,
                              const uint16_t *v_cache, const vrt_attn_batch *a, int s, int p,
                              int kvh);

/* The CPU backend's op support, and its memory functions: "device" memory
 * is host memory (64-byte aligned malloc, memcpy). The cuda-emu backend,
 * whose memory is host memory too, uses them as well. */
bool vrt__cpu_supports_op(vrt_backend *b, vrt_op op, int weight_dtype);
void *vrt__host_alloc(vrt_backend *b, size_t bytes, vrt_err *err);
void vrt__host_free(vrt_backend *b, void *p);
int vrt__host_copy(vrt_backend *b, void *dst, const void *src, size_t n, vrt_err *err);
int vrt__host_memset(vrt_backend *b, void *p, int value, size_t n, vrt_err *err);
int vrt__host_sync(vrt_backend *b, vrt_err *err);

/* Creates the CPU backend (threads: 0 = all cores). */
int vrt__cpu_backend_create(vrt_backend **out, int threads, vrt_err *err);

/* Checks that w is a weight of dtype f32 or f16 with rows*cols == n (when
 * n >= 0); what names the tensor in the message. */
int vrt__cpu_check_weight(const vrt_weight *w, int64_t n, const char *op, const char *what,
                          vrt_err *err);

/* Checks an attention call's arguments (host-readable batch arrays): shapes,
 * q_start/ctx_len consistency, and every block the call reads against
 * num_blocks. Shared with the cuda-emu backend, whose memory is host memory. */
int vrt__cpu_check_attn_batch(const char *op, const float *out, const float *q, const uint16_t *kc,
                              const uint16_t *vc, const vrt_attn_batch *a, vrt_err *err);

/* Argument checks of single ops, shared with the cuda-emu backend (whose
 * memory is host memory). Each returns a negative VRT_E* code with a
 * message, 1 when there is nothing to do (T == 0 ...), or 0 to go on. */
int vrt__cpu_check_embed(float *out, const vrt_weight *table, const int32_t *ids, int T,
                         vrt_err *err);
int vrt__cpu_check_rope(const float *x, const int32_t *pos, int T, int n_heads, int head_dim,
                        int rot_dim, const float *inv_freq, int max_head_dim, vrt_err *err);
int vrt__cpu_check_kv_store(const uint16_t *k_cache, const uint16_t *v_cache, const float *k,
                            const float *v, const int32_t *slots, int T, int n_kv_heads,
                            int head_dim, int64_t num_slots, vrt_err *err);
/* Norms over rows: T >= 0 rows of D > 0, no NULL array when T > 0, eps >= 0. */
int vrt__cpu_check_rows(const char *op, const float *out, const float *x, int T, int D, float eps,
                        vrt_err *err);
/* Element-wise ops: n >= 0, and no NULL array when n > 0 (c may repeat a
 * for one-input ops). */
int vrt__cpu_check_elem(const char *op, const float *out, const float *a, const float *c, int64_t n,
                        vrt_err *err);
/* Decode takes exactly one query token per sequence. */
int vrt__cpu_check_decode(const vrt_attn_batch *a, vrt_err *err);

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

/* embed_norm.c */
int vrt__cpu_embed(vrt_backend *b, float *out, const vrt_weight *table, const int32_t *ids, int T,
                   vrt_err *err);
int vrt__cpu_rmsnorm(vrt_backend *b, float *out, const float *x, const vrt_weight *w, int T, int D,
                     float eps, float w_offset, vrt_err *err);
int vrt__cpu_layernorm(vrt_backend *b, float *out, const float *x, const vrt_weight *w,
                       const vrt_weight *bias, int T, int D, float eps, vrt_err *err);
/* rope.c */
int vrt__cpu_rope(vrt_backend *b, float *x, const int32_t *pos, int T, int n_heads, int head_dim,
                  int rot_dim, int interleaved, const float *inv_freq, vrt_err *err);
/* matmul.c */
int vrt__cpu_matmul(vrt_backend *b, float *y, const float *x, const vrt_weight *W,
                    const float *bias, int T, vrt_err *err);
/* matmul_q4.c: checks a VRT_DT_Q4 weight's descriptor (shared with
 * cuda-emu), and the int4 matmul (arguments already checked). */
int vrt__cpu_check_q4(const vrt_weight *w, const char *op, const char *what, vrt_err *err);
int vrt__cpu_matmul_q4(vrt_backend *b, float *y, const float *x, const vrt_weight *W,
                       const float *bias, int T, vrt_err *err);
/* act.c */
int vrt__cpu_silu_mul(vrt_backend *b, float *out, const float *gate, const float *up, int64_t n,
                      vrt_err *err);
int vrt__cpu_gelu_mul(vrt_backend *b, float *out, const float *gate, const float *up, int64_t n,
                      int tanh_approx, vrt_err *err);
int vrt__cpu_gelu(vrt_backend *b, float *out, const float *x, int64_t n, int tanh_approx,
                  vrt_err *err);
int vrt__cpu_add(vrt_backend *b, float *out, const float *a, const float *c, int64_t n,
                 vrt_err *err);
/* kv_attn.c */
int vrt__cpu_kv_store(vrt_backend *b, uint16_t *k_cache, uint16_t *v_cache, const float *k,
                      const float *v, const int32_t *slots, int T, int n_kv_heads, int head_dim,
                      int64_t num_slots, vrt_err *err);
int vrt__cpu_attention_prefill(vrt_backend *b, float *out, const float *q, const uint16_t *k_cache,
                               const uint16_t *v_cache, const vrt_attn_batch *batch, vrt_err *err);
int vrt__cpu_attention_decode(vrt_backend *b, float *out, const float *q, const uint16_t *k_cache,
                              const uint16_t *v_cache, const vrt_attn_batch *batch, vrt_err *err);
/* moe.c */
int vrt__cpu_moe_topk(vrt_backend *b, const float *router_logits, int T, int E, int k,
                      int renormalize, int32_t *idx, float *weights, vrt_err *err);

#endif
