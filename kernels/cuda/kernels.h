/* kernels.h — the extern "C" launchers of kernels/cuda/<op>.cu.
 *
 * Plain C, so that a backend written in C (kernels/emu/backend_emu.c and
 * kernels/cuda/backend_cuda.c) calls the same entry points whichever compiler
 * built the kernels. Every pointer is a device pointer; stream is a
 * cudaStream_t (NULL = the default stream). Each launcher only launches:
 * arguments were validated by the caller (shapes, dtypes, token ids, slots,
 * block tables), and it returns the launch status (cudaError_t, 0 = ok).
 * Activations are f32; weights f32 (dtype 0) or f16 (dtype 1), or int4
 * (matmul_q4.cu); the KV cache is fp16 bit patterns.
 */
#ifndef VRT_CUDA_KERNELS_H
#define VRT_CUDA_KERNELS_H

#include "backend/backend.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* embed.cu: out[t] = table[ids[t]] */
int vrt_cuda_embed(float *out /* [T][D] */, const void *table /* [V][D] */, int dtype, int D,
                   const int32_t *ids /* [T] */, int T, void *stream);
/* norm.cu: out = x / sqrt(mean(x²) + eps) * (w + w_offset); out may alias x */
int vrt_cuda_rmsnorm(float *out /* [T][D] */, const float *x /* [T][D] */, const void *w /* [D] */,
                     int dtype, int T, int D, float eps, float w_offset, void *stream);
/* norm.cu: x += a, then out = rmsnorm(x) (out may alias a) */
int vrt_cuda_add_rmsnorm(float *x /* [T][D] */, const float *a /* [T][D] */,
                         float *out /* [T][D] */, const void *w /* [D] */, int dtype, int T, int D,
                         float eps, float w_offset, void *stream);
/* norm.cu: out = (x - mean) / sqrt(var + eps) * w + bias (bias may be NULL) */
int vrt_cuda_layernorm(float *out /* [T][D] */, const float *x /* [T][D] */,
                       const void *w /* [D] */, int w_dtype, const void *bias /* [D] or NULL */,
                       int b_dtype, int T, int D, float eps, void *stream);
/* rope.cu: rotary embedding in place (see backend.h) */
int vrt_cuda_rope(float *x /* [T][n_heads][head_dim] */, const int32_t *pos /* [T] */, int T,
                  int n_heads, int head_dim, int rot_dim, int interleaved,
                  const float *inv_freq /* [rot_dim/2] */, void *stream);
/* act.cu: element-wise */
int vrt_cuda_silu_mul(float *out, const float *gate, const float *up, int64_t n, void *stream);
int vrt_cuda_gelu_mul(float *out, const float *gate, const float *up, int64_t n, int tanh_approx,
                      void *stream);
int vrt_cuda_gelu(float *out, const float *x, int64_t n, int tanh_approx, void *stream);
int vrt_cuda_add(float *out, const float *a, const float *c, int64_t n, void *stream);
/* kv_store.cu: K/V rounded to fp16 at slots[t] (slot < 0 skips) */
int vrt_cuda_kv_store(uint16_t *k_cache /* [num_slots][n_kv_heads][head_dim] */,
                      uint16_t *v_cache /* [num_slots][n_kv_heads][head_dim] */,
                      const float *k /* [T][n_kv_heads][head_dim] */,
                      const float *v /* [T][n_kv_heads][head_dim] */,
                      const int32_t *slots /* [T] */, int T, int n_kv_heads, int head_dim,
                      void *stream);
/* attn.cu: paged causal attention, any q_len (prefill and decode);
 * T = total query tokens, the batch's arrays are device pointers. */
int vrt_cuda_attention(float *out /* [T][n_heads][head_dim] */,
                       const float *q /* [T][n_heads][head_dim] */, const uint16_t *k_cache,
                       const uint16_t *v_cache, vrt_attn_batch batch, int T, void *stream);
/* attn_decode.cu: decode attention (q_len 1 per sequence) split over the
 * context, K/V in 128-bit loads; for the shapes attn_decode_ok accepts.
 * scratch: attn_decode_scratch(batch) bytes of device memory (NULL when
 * that is 0). The batch pointer of the two helpers is a host struct. */
int vrt_cuda_attn_decode(float *out, const float *q, const uint16_t *k_cache,
                         const uint16_t *v_cache, vrt_attn_batch batch, float *scratch,
                         void *stream);
int vrt_cuda_attn_decode_ok(int head_dim, int n_heads, int n_kv_heads);
int vrt_cuda_attn_decode_splits(const vrt_attn_batch *batch);
size_t vrt_cuda_attn_decode_scratch(const vrt_attn_batch *batch);
/* attn_prefill.cu: prefill attention on tensor cores (wmma 16×16×16, fp16
 * Q and probabilities, f32 softmax and sums) for the head_dims
 * attn_prefill_ok accepts (multiples of 16 up to 128). */
int vrt_cuda_attn_prefill(float *out, const float *q, const uint16_t *k_cache,
                          const uint16_t *v_cache, vrt_attn_batch batch, int T, void *stream);
int vrt_cuda_attn_prefill_ok(int head_dim);
/* matmul.cu: y = x·Wᵀ + bias (tiled FMA; the cuda backend sends larger T to cuBLAS) */
int vrt_cuda_matmul(float *y /* [T][N] */, const float *x /* [T][K] */, const void *W /* [N][K] */,
                    int dtype, int N, int K, const float *bias /* [N] or NULL */, int T,
                    void *stream);
/* matmul_gemv.cu: the same for T <= VRT_CUDA_GEMV_MAX_T tokens (decode): a warp
 * per output row, 128-bit fp16 weight loads */
int vrt_cuda_gemv(float *y /* [T][N] */, const float *x /* [T][K] */, const void *W /* [N][K] */,
                  int dtype, int N, int K, const float *bias /* [N] or NULL */, int T,
                  void *stream);
/* Up to 4 tokens: on an H100 the GEMV beat cuBLAS at 1 and 2 tokens and
 * lost at 8 (examples/bench/RESULTS.md). */
#define VRT_CUDA_GEMV_MAX_T 4
/* matmul_gemv.cu: up to VRT_CUDA_GEMV_GROUP projections of the same x (same K,
 * same dtype) in one launch, T <= VRT_CUDA_GEMV_MAX_T. */
#define VRT_CUDA_GEMV_GROUP 4
typedef struct vrt_gemv_group {
    int n;
    const void *W[VRT_CUDA_GEMV_GROUP]; /* [N[m]][K] */
    float *y[VRT_CUDA_GEMV_GROUP];      /* [T][N[m]] */
    const float *bias[VRT_CUDA_GEMV_GROUP];
    int N[VRT_CUDA_GEMV_GROUP];
} vrt_gemv_group;
int vrt_cuda_gemv_group(vrt_gemv_group g, const float *x, int dtype, int K, int T, void *stream);
/* matmul_gemv.cu: dst = fp16(src) (round to nearest), for the cuBLAS path */
int vrt_cuda_to_half(uint16_t *dst, const float *src, int64_t n, void *stream);
/* matmul_gemv.cu: y[t][n] += bias[n] */
int vrt_cuda_add_bias(float *y /* [T][N] */, const float *bias /* [N] */, int T, int N,
                      void *stream);
/* matmul_q4.cu: y = x·Wᵀ + bias with W [N][K] in the internal int4 layout
 * (backend.h vrt_q4: q's arrays are device pointers, its group_size a
 * multiple of 32 or >= K, qweight rows 16-byte aligned). A warp-per-row
 * GEMV for T <= 4, a staged GEMV for T <= 8, a tiled kernel above (the cuda
 * backend sends T > 4 to vrt_cuda_q4_dequant + cuBLAS instead). Launches need N <= 65535 * 16 and
 * T <= 65535 * 64 (grid limits). */
/* matmul_q4.cu: dst [N][K] fp16 = the dequantized weight in its original
 * column order (the cuda backend's prefill path: then cuBLAS). */
int vrt_cuda_q4_dequant(uint16_t *dst, vrt_q4 q, int N, int K, void *stream);
int vrt_cuda_matmul_q4(float *y /* [T][N] */, const float *x /* [T][K] */, vrt_q4 q, int N, int K,
                       const float *bias /* [N] or NULL */, int T, void *stream);

/* moe.cu: softmax over E experts, the k largest (ties: lower index first) */
int vrt_cuda_moe_topk(const float *router_logits /* [T][E] */, int T, int E, int k, int renormalize,
                      int32_t *idx /* [T][k] */, float *weights /* [T][k] */, void *stream);

/* The largest head_dim attention and rope accept. */
#define VRT_CUDA_MAX_HEAD_DIM VRT_MAX_HEAD_DIM

/* The launchers the shared GPU ops call (kernels/gpu/gpu_ops.c), as one
 * list: X(name) for vrt_cuda_<name>. A backend's table of them (struct
 * vrt_gpu_kernels) and its initializer (VRT_GPU_LAUNCHERS) are expanded
 * from it, so a new launcher is declared above and named here. */
#define VRT_CUDA_LAUNCHERS(X)                                                                      \
    X(embed)                                                                                       \
    X(rmsnorm)                                                                                     \
    X(add_rmsnorm)                                                                                 \
    X(layernorm)                                                                                   \
    X(rope)                                                                                        \
    X(silu_mul)                                                                                    \
    X(gelu_mul)                                                                                    \
    X(gelu)                                                                                        \
    X(add)                                                                                         \
    X(kv_store)                                                                                    \
    X(attention)                                                                                   \
    X(matmul)                                                                                      \
    X(gemv)                                                                                        \
    X(gemv_group)                                                                                  \
    X(matmul_q4)                                                                                   \
    X(attn_decode)                                                                                 \
    X(attn_decode_ok)                                                                              \
    X(attn_decode_scratch)                                                                         \
    X(attn_prefill)                                                                                \
    X(attn_prefill_ok)                                                                             \
    X(moe_topk)

#ifdef __cplusplus
}
#endif

#endif
