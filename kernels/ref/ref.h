/* ref.h — naive float64 reference of every backend op, used only by tests.
 *
 * Each function mirrors one op of backend.h but works on host memory,
 * converts its inputs (f32, or f16 through its own conversion, independent
 * of runtime/backend/half.h) to double, and writes double results. Plain
 * loops, no tiling, no streaming softmax: obviously correct rather than
 * fast. Arguments are assumed valid (tests validate through the backend).
 */
#ifndef VRT_KERNELS_REF_H
#define VRT_KERNELS_REF_H

#include "backend/backend.h"

#include <stdint.h>

/* fp16 bits -> double, exactly (inf/NaN included). */
double vrt_ref_f16_to_double(uint16_t h);
/* double -> fp16 bits, round to nearest even, overflow to inf, NaN -> NaN. */
uint16_t vrt_ref_f16_from_double(double x);

void vrt_ref_embed(double *out /* [T][D] */, const vrt_weight *table /* [V][D] */,
                   const int32_t *ids /* [T] */, int T);
void vrt_ref_rmsnorm(double *out /* [T][D] */, const float *x /* [T][D] */,
                     const vrt_weight *w /* [D] */, int T, int D, double eps, double w_offset);
void vrt_ref_layernorm(double *out /* [T][D] */, const float *x /* [T][D] */,
                       const vrt_weight *w /* [D] */, const vrt_weight *bias /* [D] or NULL */,
                       int T, int D, double eps);
/* out = rope(x); x is not modified. */
void vrt_ref_rope(double *out /* [T][n_heads][head_dim] */,
                  const float *x /* [T][n_heads][head_dim] */, const int32_t *pos /* [T] */, int T,
                  int n_heads, int head_dim, int rot_dim, int interleaved,
                  const float *inv_freq /* [rot_dim/2] */);
/* W may be f32, f16 or q4 (dequantized with vrt_ref_q4_dequant first). */
void vrt_ref_matmul(double *y /* [T][N] */, const float *x /* [T][K] */,
                    const vrt_weight *W /* [N][K] */, const float *bias /* [N] or NULL */, int T);
/* The q4 weight W (host memory) dequantized, in activation column order. */
void vrt_ref_q4_dequant(double *out /* [N][K] */, const vrt_weight *W);
void vrt_ref_silu_mul(double *out, const float *gate, const float *up, int64_t n);
void vrt_ref_gelu_mul(double *out, const float *gate, const float *up, int64_t n, int tanh_approx);
void vrt_ref_gelu(double *out, const float *x, int64_t n, int tanh_approx);
void vrt_ref_add(double *out, const float *a, const float *c, int64_t n);
/* Writes K/V rounded to fp16 at their slots (slot < 0 skips the token). */
void vrt_ref_kv_store(uint16_t *k_cache /* [num_slots][n_kv_heads][head_dim] */,
                      uint16_t *v_cache /* [num_slots][n_kv_heads][head_dim] */,
                      const float *k /* [T][n_kv_heads][head_dim] */,
                      const float *v /* [T][n_kv_heads][head_dim] */,
                      const int32_t *slots /* [T] */, int T, int n_kv_heads, int head_dim);
/* Paged causal attention (prefill and decode alike), two-pass softmax in
 * double over the visible keys read from the fp16 cache. */
void vrt_ref_attention(double *out /* [T][n_heads][head_dim] */,
                       const float *q /* [T][n_heads][head_dim] */, const uint16_t *k_cache,
                       const uint16_t *v_cache, const vrt_attn_batch *batch);
/* Softmax over E, top-k by a full stable sort (ties: lower index first). */
void vrt_ref_moe_topk(const float *router_logits /* [T][E] */, int T, int E, int k, int renormalize,
                      int32_t *idx /* [T][k] */, double *weights /* [T][k] */);

#endif
