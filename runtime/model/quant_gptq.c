/* quant_gptq.c — GPTQ (Frantar et al., "GPTQ: Accurate Post-Training
 * Quantization for Generative Pre-trained Transformers", 2022), following
 * AutoGPTQ's gptq.py fasterquant step by step:
 *
 *   dead = diag(H) == 0;  H[dead, dead] = 1;  W[:, dead] = 0
 *   perm = argsort(diag(H), descending) if act-order else identity
 *   H += damp · mean(diag(H)) · I
 *   U = cholesky(cholesky_inverse(cholesky(H)), upper=True)
 *   for each block of 128 columns, for each column i in it:
 *       (at a group start) scale, zero = find_params(W[:, i:i+G])
 *       q = quantize(W[:, i]);  e = (W[:, i] - q) / U[i, i]
 *       W[:, i+1:block end] -= e ⊗ U[i, i+1:block end]
 *   then W[:, block end:] -= E_block · U[block, block end:]
 *
 * Every output row is independent given U (its groups' parameters are its
 * own), so rows are processed in parallel (OpenMP), each one with the
 * block-lazy update. The Cholesky steps run in float64.
 */
#include "model/quant_algo.h"

#include "backend/half.h"
#include "core/err.h"
#include "core/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 128

/* In-place lower Cholesky of the K x K matrix A (row-major; the upper
 * triangle is left as it was). Returns 0, or -1 when not positive definite. */
static int cholesky_lower(double *A, int64_t K)
{
    int bad = 0;
    for (int64_t j = 0; j < K && !bad; j++) {
        double *Aj = A + j * K;
        double s = Aj[j];
        for (int64_t k = 0; k < j; k++)
            s -= Aj[k] * Aj[k];
        if (!(s > 0) || !isfinite(s))
            return -1;
        double d = sqrt(s);
        Aj[j] = d;
#pragma omp parallel for schedule(static)
        for (int64_t i = j + 1; i < K; i++) {
            double *Ai = A + i * K;
            double t = Ai[j];
            for (int64_t k = 0; k < j; k++)
                t -= Ai[k] * Aj[k];
            Ai[j] = t / d;
        }
    }
    return bad ? -1 : 0;
}

int vrt_gptq_prepare(vrt_gptq_prep *p, const vrt_hessian *h, int act_order, double damp_percent,
                     vrt_err *err)
{
    const int64_t K = h->K;
    memset(p, 0, sizeof *p);
    p->K = K;
    p->perm = malloc((size_t)K * sizeof *p->perm);
    p->dead = calloc((size_t)K, 1);
    double *A = malloc((size_t)(K * K) * sizeof *A);
    p->U = malloc((size_t)(K * K) * sizeof *p->U);
    double *diag = malloc((size_t)K * sizeof *diag);
    if (!p->perm || !p->dead || !A || !p->U || !diag) {
        free(A);
        free(diag);
        vrt_gptq_prep_free(p);
        return vrt_err_set(err, VRT_ENOMEM,
                           "GPTQ: out of memory for two %lld x %lld float64 matrices (%.1f MiB)",
                           (long long)K, (long long)K, 2.0 * K * K * 8 / 1048576.0);
    }
    double mean = 0;
    for (int64_t k = 0; k < K; k++) {
        diag[k] = h->H[k * K + k];
        if (diag[k] == 0) {
            p->dead[k] = 1;
            diag[k] = 1;
        }
        mean += diag[k];
        p->perm[k] = (int32_t)k;
    }
    mean /= (double)K;
    if (act_order) {
        /* Stable insertion-free sort: a simple merge sort by descending diag. */
        int32_t *tmp = malloc((size_t)K * sizeof *tmp);
        if (!tmp) {
            free(A);
            free(diag);
            vrt_gptq_prep_free(p);
            return vrt_err_set(err, VRT_ENOMEM, "GPTQ: out of memory");
        }
        for (int64_t w = 1; w < K; w *= 2) {
            for (int64_t lo = 0; lo < K; lo += 2 * w) {
                int64_t mid = lo + w < K ? lo + w : K, hi = lo + 2 * w < K ? lo + 2 * w : K;
                int64_t a = lo, b = mid, o = lo;
                while (a < mid && b < hi)
                    tmp[o++] = diag[p->perm[b]] > diag[p->perm[a]] ? p->perm[b++] : p->perm[a++];
                while (a < mid)
                    tmp[o++] = p->perm[a++];
                while (b < hi)
                    tmp[o++] = p->perm[b++];
            }
            memcpy(p->perm, tmp, (size_t)K * sizeof *tmp);
        }
        free(tmp);
    }
    int rc = 0;
    double damp = damp_percent * mean;
    for (int attempt = 0;; attempt++) {
        /* A = H[perm][perm] with dead diagonals 1, + damp·I */
        for (int64_t i = 0; i < K; i++)
            for (int64_t j = 0; j < K; j++)
                A[i * K + j] = h->H[(int64_t)p->perm[i] * K + p->perm[j]];
        for (int64_t i = 0; i < K; i++) {
            if (p->dead[p->perm[i]])
                A[i * K + i] = 1;
            A[i * K + i] += damp;
        }
        if (cholesky_lower(A, K) == 0)
            break;
        if (attempt == 3) {
            rc = vrt_err_set(err, VRT_ERANGE,
                             "GPTQ: the Hessian (%lld x %lld) is not positive definite even "
                             "with dampening %g (%.2g of its mean diagonal); give more or more "
                             "varied calibration text (--calibration, --samples)",
                             (long long)K, (long long)K, damp, damp / mean);
            goto out;
        }
        VRT_WARN("GPTQ: Hessian not positive definite with dampening %.3g of its mean diagonal; "
                 "trying %.3g",
                 damp / mean, 10 * damp / mean);
        damp *= 10;
    }
    p->damp = damp;
    /* X = L⁻¹ (lower), stored transposed: XT[j][i] = X[i][j], i >= j. */
    double *XT = p->U;
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t j = 0; j < K; j++) {
        double *x = XT + j * K;
        for (int64_t i = 0; i < j; i++)
            x[i] = 0;
        x[j] = 1.0 / A[j * K + j];
        for (int64_t i = j + 1; i < K; i++) {
            const double *Li = A + i * K;
            double s = 0;
            for (int64_t k = j; k < i; k++)
                s += Li[k] * x[k];
            x[i] = -s / Li[i];
        }
    }
    /* H⁻¹ = Xᵀ X: H⁻¹[a][b] = Σ_{k >= max(a,b)} XT[a][k] XT[b][k], into A. */
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t a = 0; a < K; a++)
        for (int64_t b = 0; b <= a; b++) {
            const double *xa = XT + a * K, *xb = XT + b * K;
            double s = 0;
            for (int64_t k = a; k < K; k++)
                s += xa[k] * xb[k];
            A[a * K + b] = s;
            A[b * K + a] = s;
        }
    /* U = cholesky(H⁻¹, upper): H⁻¹ = M Mᵀ with M lower, U = Mᵀ. */
    if (cholesky_lower(A, K) != 0) {
        rc = vrt_err_set(err, VRT_ERANGE,
                         "GPTQ: the inverse Hessian (%lld x %lld) lost positive definiteness "
                         "in float64; give more varied calibration text",
                         (long long)K, (long long)K);
        goto out;
    }
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < K; j++)
            p->U[i * K + j] = j >= i ? A[j * K + i] : 0;
out:
    free(A);
    free(diag);
    if (rc)
        vrt_gptq_prep_free(p);
    return rc;
}

void vrt_gptq_prep_free(vrt_gptq_prep *p)
{
    free(p->perm);
    free(p->dead);
    free(p->U);
    memset(p, 0, sizeof *p);
}

int vrt_gptq_quantize(const vrt_gptq_prep *p, const float *W, int64_t N, int group_size, int sym,
                      vrt_qlinear *out, vrt_err *err)
{
    const int64_t K = p->K;
    int rc = vrt_qlinear_init(out, N, K, group_size, err);
    if (rc)
        return rc;
    const int64_t G = out->group_size;
    for (int64_t i = 0; i < K; i++)
        out->g_idx[p->perm[i]] = (int32_t)(i / G);
    int oom = 0;
#pragma omp parallel reduction(| : oom)
    {
        double *w = malloc((size_t)K * sizeof *w);
        float *grp = malloc((size_t)G * sizeof *grp);
        double e[BLOCK];
        if (!w || !grp)
            oom = 1;
#pragma omp for schedule(dynamic, 4)
        for (int64_t n = 0; n < N; n++) {
            if (!w || !grp)
                continue;
            const float *Wn = W + n * K;
            for (int64_t i = 0; i < K; i++)
                w[i] = p->dead[p->perm[i]] ? 0.0 : (double)Wn[p->perm[i]];
            float s = 1;
            int z = 0;
            for (int64_t i1 = 0; i1 < K; i1 += BLOCK) {
                int64_t i2 = i1 + BLOCK < K ? i1 + BLOCK : K;
                for (int64_t i = i1; i < i2; i++) {
                    if (i % G == 0) {
                        int64_t g = i / G, ge = i + G < K ? i + G : K;
                        for (int64_t t = i; t < ge; t++)
                            grp[t - i] = (float)w[t];
                        uint16_t sb;
                        uint8_t zb;
                        vrt_quant_group_params(grp, ge - i, sym, VRT_QSTYLE_GPTQ, &sb, &zb);
                        out->scales[g * N + n] = sb;
                        out->zeros[g * N + n] = zb;
                        s = vrt_f16_to_f32(sb);
                        z = zb;
                    }
                    uint8_t q = vrt_quant_code((float)w[i], s, z);
                    out->q[n * K + p->perm[i]] = q;
                    double wq = (double)(s * (float)((int)q - z));
                    const double *Ui = p->U + i * K;
                    double ei = (w[i] - wq) / Ui[i];
                    for (int64_t j = i + 1; j < i2; j++)
                        w[j] -= ei * Ui[j];
                    e[i - i1] = ei;
                }
                /* The lazy update of the columns after the block. */
                for (int64_t t = i1; t < i2; t++) {
                    const double *Ut = p->U + t * K;
                    double et = e[t - i1];
                    for (int64_t j = i2; j < K; j++)
                        w[j] -= et * Ut[j];
                }
            }
        }
        free(w);
        free(grp);
    }
    if (oom) {
        vrt_qlinear_free(out);
        return vrt_err_set(err, VRT_ENOMEM, "GPTQ: out of memory");
    }
    return 0;
}
