/* quant_awq.c — AWQ's activation-aware scale search (Lin et al., "AWQ:
 * Activation-aware Weight Quantization for LLM Compression and
 * Acceleration", 2023; AutoAWQ quantizer.py _search_best_scale without
 * "duo scaling"):
 *
 *   x_mean = mean over calibration rows of |x|           (per input channel)
 *   for α in linspace(0, 1, n_grid):
 *       s = clamp(x_mean^α, 1e-4);  s /= sqrt(max(s) · min(s))
 *       Ŵ = Q(W · diag(s)) · diag(1/s)                   (Q: AWQ round-to-nearest)
 *       loss(α) = mean((X·Wᵀ - X·Ŵᵀ)²)                   (over all linears sharing X)
 *   keep the s of the smallest loss
 *
 * The caller folds 1/s into the operation before the linears (an RMSNorm
 * weight or the rows of the previous linear) and quantizes W · diag(s).
 * The error X·(W - Ŵ)ᵀ is computed directly (one matrix product per α).
 */
#include "model/quant_algo.h"

#include "backend/half.h"
#include "core/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Σ over rows of X and outputs of (X·Dᵀ)², D = W - Q(W·s)/s for one linear. */
static int linear_sq_err(const float *W, int64_t N, int64_t K, const float *X, int64_t R,
                         const float *s, int group_size, double *sum, vrt_err *err)
{
    float *Ws = malloc((size_t)(N * K) * sizeof *Ws);
    if (!Ws)
        return vrt_err_set(err, VRT_ENOMEM, "AWQ: out of memory");
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++)
            Ws[n * K + k] = s ? W[n * K + k] * s[k] : W[n * K + k];
    vrt_qlinear ql;
    int rc = vrt_quant_rtn(Ws, N, K, group_size, 0, VRT_QSTYLE_AWQ, &ql, err);
    if (rc) {
        free(Ws);
        return rc;
    }
    /* Ws := D = W - Ŵ, Ŵ = dequant / s */
    vrt_qlinear_dequant(&ql, Ws);
    vrt_qlinear_free(&ql);
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++)
            Ws[n * K + k] = W[n * K + k] - (s ? Ws[n * K + k] / s[k] : Ws[n * K + k]);
    double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t r = 0; r < R; r++) {
        const float *x = X + r * K;
        for (int64_t n = 0; n < N; n++) {
            const float *d = Ws + n * K;
            /* Eight partial sums so that the compiler vectorizes the dot product. */
            float a8[8] = {0};
            int64_t k = 0;
            for (; k + 8 <= K; k += 8)
                for (int j = 0; j < 8; j++)
                    a8[j] += x[k + j] * d[k + j];
            float acc = ((a8[0] + a8[1]) + (a8[2] + a8[3])) + ((a8[4] + a8[5]) + (a8[6] + a8[7]));
            for (; k < K; k++)
                acc += x[k] * d[k];
            total += (double)acc * acc;
        }
    }
    free(Ws);
    *sum = total;
    return 0;
}

int vrt_awq_loss(const float *const *W, const int64_t *N, int n_lin, int64_t K, const float *X,
                 int64_t R, const float *s, int group_size, double *loss, vrt_err *err)
{
    double total = 0, count = 0;
    for (int i = 0; i < n_lin; i++) {
        double sq = 0;
        int rc = linear_sq_err(W[i], N[i], K, X, R, s, group_size, &sq, err);
        if (rc)
            return rc;
        total += sq;
        count += (double)R * (double)N[i];
    }
    *loss = count > 0 ? total / count : 0;
    return 0;
}

int vrt_awq_search(const float *const *W, const int64_t *N, int n_lin, int64_t K, const float *X,
                   int64_t R, const float *xmean, int group_size, int n_grid, float *s_best,
                   vrt_awq_result *res, vrt_err *err)
{
    if (n_grid < 2 || R < 1 || n_lin < 1)
        return vrt_err_set(err, VRT_EINVAL, "AWQ: %d grid points, %lld rows, %d linears", n_grid,
                           (long long)R, n_lin);
    float *s = malloc((size_t)K * sizeof *s);
    if (!s)
        return vrt_err_set(err, VRT_ENOMEM, "AWQ: out of memory");
    res->loss = INFINITY;
    res->alpha = 0;
    res->loss_alpha0 = INFINITY;
    int rc = 0;
    for (int gi = 0; gi < n_grid && !rc; gi++) {
        double alpha = (double)gi / (double)(n_grid - 1);
        float mx = 0, mn = INFINITY;
        for (int64_t k = 0; k < K; k++) {
            float v = powf(xmean[k], (float)alpha);
            v = v < 1e-4f || !isfinite(v) ? 1e-4f : v;
            s[k] = v;
            mx = v > mx ? v : mx;
            mn = v < mn ? v : mn;
        }
        float norm = sqrtf(mx * mn);
        for (int64_t k = 0; k < K; k++)
            s[k] /= norm;
        double loss;
        rc = vrt_awq_loss(W, N, n_lin, K, X, R, s, group_size, &loss, err);
        if (rc)
            break;
        if (gi == 0)
            res->loss_alpha0 = loss;
        if (loss < res->loss) {
            res->loss = loss;
            res->alpha = alpha;
            memcpy(s_best, s, (size_t)K * sizeof *s);
        }
    }
    free(s);
    return rc;
}
