/* quant_algo.h — 4-bit weight quantization for `v100rt quantize`: the
 * quantizers (round-to-nearest per group), GPTQ (Hessian-aware error
 * feedback), AWQ's activation-aware scale search, and the two standard
 * on-disk packings, GPTQ v1 (docs/formats.md §3) and AutoAWQ GEMM (§4).
 *
 * Everything works on one nn.Linear weight W [N][K] (y = x·Wᵀ, N outputs,
 * K inputs) in float32 and produces a vrt_qlinear: one 4-bit code per
 * weight, and per (group, output) an fp16 scale and a zero point, so that
 *
 *     Ŵ[n][k] = f16_to_f32(scales[g][n]) * (q[n][k] - zeros[g][n]),  g = g_idx[k]
 *
 * which is the dequantization every reader of both formats computes (the
 * GPTQ v1 "zero minus one" is a packing detail, applied by the packer).
 * Scales are rounded to fp16 before the codes are chosen, so Ŵ is exactly
 * what a W4A16 kernel reconstructs.
 *
 * No allocation is hidden from the caller except working buffers, which
 * are freed before returning; errors are VRT_E* codes with a message.
 */
#ifndef VRT_MODEL_QUANT_ALGO_H
#define VRT_MODEL_QUANT_ALGO_H

#include "vrt.h"

#include <stdbool.h>
#include <stdint.h>

/* How per-group scale and zero are chosen from the group's min and max. */
typedef enum vrt_qstyle {
    /* AutoGPTQ quantizer.py: the range always includes 0; sym puts the zero
     * at 8. An asymmetric zero of 0 cannot be stored in GPTQ v1 (it is
     * written as zero - 1 = -1, docs/formats.md §3.4 [DISAGREE]), so such a
     * group uses zero 1 and scale max/14 instead: every reader then decodes
     * the same values. */
    VRT_QSTYLE_GPTQ = 0,
    /* AutoAWQ pseudo_quantize_tensor with zero_point: s = (max-min)/15
     * (>= 1e-5), z = clamp(-round(min/s), 0, 15). */
    VRT_QSTYLE_AWQ = 1,
} vrt_qstyle;

/* A quantized linear before packing. */
typedef struct vrt_qlinear {
    int64_t N, K;     /* out_features, in_features */
    int group_size;   /* G: K when the option was -1 */
    int n_groups;     /* ceil(K / G) */
    uint8_t *q;       /* [N][K] codes 0..15 */
    uint16_t *scales; /* [n_groups][N] fp16 bits */
    uint8_t *zeros;   /* [n_groups][N] zero points 0..15 */
    int32_t *g_idx;   /* [K] group of input k (k / G unless act-order) */
} vrt_qlinear;

/* Allocates a vrt_qlinear for W [N][K] with groups of group_size (-1: one
 * group of K); g_idx is set to k / G. */
int vrt_qlinear_init(vrt_qlinear *ql, int64_t N, int64_t K, int group_size, vrt_err *err);
void vrt_qlinear_free(vrt_qlinear *ql);
/* Ŵ [N][K] in float32, by the formula above. */
void vrt_qlinear_dequant(const vrt_qlinear *ql, float *W);

/* Scale (fp16 bits) and zero for one group's n values (4 bits). */
void vrt_quant_group_params(const float *w, int64_t n, int sym, int style, uint16_t *scale,
                            uint8_t *zero);
/* The 4-bit code of w: clamp(round(w / scale) + zero, 0, 15) (round half
 * to even, as torch.round). */
uint8_t vrt_quant_code(float w, float scale, int zero);

/* Round-to-nearest: each (row, group) quantized on its own. */
int vrt_quant_rtn(const float *W, int64_t N, int64_t K, int group_size, int sym, int style,
                  vrt_qlinear *out, vrt_err *err);

/* ---- GPTQ ---------------------------------------------------------------
 * A Hessian H = 2/n · Σ x xᵀ over the n calibration rows x of the linear's
 * input, accumulated in float64. */
typedef struct vrt_hessian {
    int64_t K;
    double *H; /* [K][K] */
    int64_t n; /* rows seen */
} vrt_hessian;

int vrt_hessian_init(vrt_hessian *h, int64_t K, vrt_err *err);
/* H += xᵀx for x [T][K] (OpenMP over rows of H). */
void vrt_hessian_add(vrt_hessian *h, const float *x, int64_t T);
/* H := 2/n · H (call once, after the last add). */
void vrt_hessian_finish(vrt_hessian *h);
void vrt_hessian_free(vrt_hessian *h);

/* What GPTQ derives from H once for every linear that shares the input. */
typedef struct vrt_gptq_prep {
    int64_t K;
    int32_t *perm; /* [K] processing order: identity, or by descending diag(H) (act-order) */
    uint8_t *dead; /* [K] 1 where diag(H) == 0: the input never varied; W's column is zeroed */
    double *U;     /* [K][K] upper Cholesky factor of (H[perm][perm] + damp·I)⁻¹ */
    double damp;   /* the dampening actually added (a fraction of mean diag(H)) */
} vrt_gptq_prep;

/* damp_percent: fraction of mean(diag(H)) added to the diagonal (0.01).
 * If H + damp·I is not positive definite (numerically), damp is raised
 * ten-fold up to three times before VRT_ERANGE. */
int vrt_gptq_prepare(vrt_gptq_prep *p, const vrt_hessian *h, int act_order, double damp_percent,
                     vrt_err *err);
void vrt_gptq_prep_free(vrt_gptq_prep *p);
/* GPTQ (Frantar et al. 2022, AutoGPTQ gptq.py fasterquant): columns in
 * p->perm order, one at a time, each quantized with its group's parameters
 * (computed from the current, error-updated weights when the group starts)
 * and its error (w - ŵ) / U[i][i] fed to the columns after it through
 * U[i][·]; the updates beyond the current block of 128 columns are applied
 * once per block. Groups are formed in processing order, so with act-order
 * g_idx[k] = (position of k in perm) / G. style: VRT_QSTYLE_GPTQ. */
int vrt_gptq_quantize(const vrt_gptq_prep *p, const float *W, int64_t N, int group_size, int sym,
                      vrt_qlinear *out, vrt_err *err);

/* ---- AWQ ----------------------------------------------------------------
 * The scale search for the linears that share one input (q/k/v, gate/up,
 * or one alone): for α in n_grid points of [0, 1], s = xmean^α (clamped
 * >= 1e-4, normalized by sqrt(max(s)·min(s))), and the loss is the mean
 * squared error over the calibration rows X [R][K] and all outputs of the
 * linears between X·Wᵀ and X·(Q(W·diag(s))·diag(1/s))ᵀ, Q the AWQ-style
 * round-to-nearest. α = 0 is s = 1, plain round-to-nearest. */
typedef struct vrt_awq_result {
    double alpha;       /* the best α */
    double loss;        /* its loss */
    double loss_alpha0; /* the loss of α = 0 (plain round-to-nearest) */
} vrt_awq_result;

int vrt_awq_search(const float *const *W, const int64_t *N, int n_lin, int64_t K, const float *X,
                   int64_t R, const float *xmean, int group_size, int n_grid, float *s_best,
                   vrt_awq_result *res, vrt_err *err);
/* The loss of one scale vector s (NULL: s = 1), as the search computes it. */
int vrt_awq_loss(const float *const *W, const int64_t *N, int n_lin, int64_t K, const float *X,
                 int64_t R, const float *s, int group_size, double *loss, vrt_err *err);

/* ---- packing ------------------------------------------------------------ */

/* GPTQ v1 (docs/formats.md §3.2): qweight [K/8][N] int32 packed along K (row
 * 8r+j in bits 4j..4j+3), qzeros [n_groups][N/8] packed along N with the
 * stored value zero - 1 (v1), g_idx as in ql. Needs K % 8 == 0, N % 8 == 0
 * and no zero point of 0 (VRT_ERANGE otherwise: v1 cannot store it). */
int vrt_pack_gptq(const vrt_qlinear *ql, int32_t *qweight, int32_t *qzeros, vrt_err *err);
/* AutoAWQ GEMM (docs/formats.md §4.2): qweight [K][N/8] and qzeros
 * [n_groups][N/8] packed along N in the interleaved order
 * [0, 2, 4, 6, 1, 3, 5, 7] (nibble slot i holds column 8c + order[i]),
 * zeros stored as they are. Needs K % G == 0, N % 8 == 0 and contiguous
 * groups (g_idx[k] == k / G). */
int vrt_pack_awq(const vrt_qlinear *ql, int32_t *qweight, int32_t *qzeros, vrt_err *err);

#endif
