/* quant_algo.c — the per-group 4-bit quantizers, round-to-nearest, the
 * Hessian accumulator GPTQ needs, and the GPTQ v1 / AutoAWQ GEMM packers
 * (quant_algo.h). GPTQ itself is in quant_gptq.c, the AWQ search in
 * quant_awq.c.
 */
#include "model/quant_algo.h"

#include "backend/half.h"
#include "core/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXQ 15 /* 2^4 - 1 */

int vrt_qlinear_init(vrt_qlinear *ql, int64_t N, int64_t K, int group_size, vrt_err *err)
{
    memset(ql, 0, sizeof *ql);
    if (N < 1 || K < 1)
        return vrt_err_set(err, VRT_EINVAL, "quantize: a %lld x %lld weight", (long long)N,
                           (long long)K);
    if (group_size == 0 || group_size < -1)
        return vrt_err_set(err, VRT_EINVAL, "quantize: group size %d (use -1 or a positive size)",
                           group_size);
    int64_t G = group_size == -1 || group_size > K ? K : group_size;
    ql->N = N;
    ql->K = K;
    ql->group_size = (int)G;
    ql->n_groups = (int)((K + G - 1) / G);
    ql->q = malloc((size_t)(N * K));
    ql->scales = malloc((size_t)ql->n_groups * (size_t)N * sizeof *ql->scales);
    ql->zeros = malloc((size_t)ql->n_groups * (size_t)N);
    ql->g_idx = malloc((size_t)K * sizeof *ql->g_idx);
    if (!ql->q || !ql->scales || !ql->zeros || !ql->g_idx) {
        vrt_qlinear_free(ql);
        return vrt_err_set(err, VRT_ENOMEM, "quantize: out of memory for a %lld x %lld weight",
                           (long long)N, (long long)K);
    }
    for (int64_t k = 0; k < K; k++)
        ql->g_idx[k] = (int32_t)(k / G);
    return 0;
}

void vrt_qlinear_free(vrt_qlinear *ql)
{
    if (!ql)
        return;
    free(ql->q);
    free(ql->scales);
    free(ql->zeros);
    free(ql->g_idx);
    memset(ql, 0, sizeof *ql);
}

void vrt_qlinear_dequant(const vrt_qlinear *ql, float *W)
{
    const int64_t N = ql->N, K = ql->K;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            int64_t g = ql->g_idx[k];
            float s = vrt_f16_to_f32(ql->scales[g * N + n]);
            W[n * K + k] = s * (float)((int)ql->q[n * K + k] - (int)ql->zeros[g * N + n]);
        }
}

/* fp16 bits of a positive scale, never 0 or infinite. */
static uint16_t scale_bits(float s)
{
    uint16_t h = vrt_f32_to_f16(s);
    if ((h & 0x7fff) == 0)
        h = 0x0001; /* the smallest subnormal */
    if ((h & 0x7c00) == 0x7c00)
        h = 0x7bff; /* 65504 */
    return h;
}

void vrt_quant_group_params(const float *w, int64_t n, int sym, int style, uint16_t *scale,
                            uint8_t *zero)
{
    float mn = w[0], mx = w[0];
    for (int64_t i = 1; i < n; i++) {
        mn = w[i] < mn ? w[i] : mn;
        mx = w[i] > mx ? w[i] : mx;
    }
    if (style == VRT_QSTYLE_AWQ) {
        float s = (mx - mn) / MAXQ;
        s = s < 1e-5f ? 1e-5f : s;
        float z = -rintf(mn / s);
        z = z < 0 ? 0 : z > MAXQ ? MAXQ : z;
        *scale = scale_bits(s);
        *zero = (uint8_t)z;
        return;
    }
    /* AutoGPTQ quantizer.py find_params: the range includes 0. */
    float xmin = mn < 0 ? mn : 0, xmax = mx > 0 ? mx : 0;
    if (sym) {
        xmax = fabsf(xmin) > xmax ? fabsf(xmin) : xmax;
        xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) {
        xmin = -1;
        xmax = 1;
    }
    float s = (xmax - xmin) / MAXQ;
    int z;
    if (sym) {
        z = (MAXQ + 1) / 2;
    } else {
        z = (int)rintf(-xmin / s);
        if (z < 1) {
            /* v1 stores zero - 1: a zero of 0 would be -1 (see the header). */
            z = 1;
            s = xmax / (MAXQ - 1);
        }
        z = z > MAXQ ? MAXQ : z;
    }
    *scale = scale_bits(s);
    *zero = (uint8_t)z;
}

uint8_t vrt_quant_code(float w, float scale, int zero)
{
    float q = rintf(w / scale) + (float)zero;
    return (uint8_t)(q < 0 ? 0 : q > MAXQ ? MAXQ : q);
}

int vrt_quant_rtn(const float *W, int64_t N, int64_t K, int group_size, int sym, int style,
                  vrt_qlinear *out, vrt_err *err)
{
    int rc = vrt_qlinear_init(out, N, K, group_size, err);
    if (rc)
        return rc;
    const int64_t G = out->group_size;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        for (int64_t g = 0; g < out->n_groups; g++) {
            int64_t k0 = g * G, k1 = k0 + G < K ? k0 + G : K;
            const float *w = W + n * K;
            uint16_t sb;
            uint8_t z;
            vrt_quant_group_params(w + k0, k1 - k0, sym, style, &sb, &z);
            out->scales[g * N + n] = sb;
            out->zeros[g * N + n] = z;
            float s = vrt_f16_to_f32(sb);
            for (int64_t k = k0; k < k1; k++)
                out->q[n * K + k] = vrt_quant_code(w[k], s, z);
        }
    }
    return 0;
}

/* ---- Hessian ------------------------------------------------------------- */

int vrt_hessian_init(vrt_hessian *h, int64_t K, vrt_err *err)
{
    h->K = K;
    h->n = 0;
    h->H = calloc((size_t)(K * K), sizeof *h->H);
    if (!h->H)
        return vrt_err_set(err, VRT_ENOMEM,
                           "quantize: out of memory for a %lld x %lld Hessian (%.1f MiB)",
                           (long long)K, (long long)K, (double)K * K * 8 / 1048576.0);
    return 0;
}

void vrt_hessian_add(vrt_hessian *h, const float *x, int64_t T)
{
    const int64_t K = h->K;
    /* Lower triangle only, mirrored in finish: row i gets Σ_t x[t][i]·x[t][j], j <= i. */
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t i = 0; i < K; i++) {
        double *Hi = h->H + i * K;
        for (int64_t t = 0; t < T; t++) {
            const float *xt = x + t * K;
            double a = xt[i];
            if (a == 0)
                continue;
            for (int64_t j = 0; j <= i; j++)
                Hi[j] += a * (double)xt[j];
        }
    }
    h->n += T;
}

void vrt_hessian_finish(vrt_hessian *h)
{
    const int64_t K = h->K;
    double f = h->n > 0 ? 2.0 / (double)h->n : 0;
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j <= i; j++) {
            double v = h->H[i * K + j] * f;
            h->H[i * K + j] = v;
            h->H[j * K + i] = v;
        }
}

void vrt_hessian_free(vrt_hessian *h)
{
    free(h->H);
    h->H = NULL;
}

/* ---- packing -------------------------------------------------------------- */

int vrt_pack_gptq(const vrt_qlinear *ql, int32_t *qweight, int32_t *qzeros, vrt_err *err)
{
    const int64_t N = ql->N, K = ql->K;
    if (K % 8 || N % 8)
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "GPTQ packing needs in_features and out_features divisible by 8, the "
                           "weight is %lld x %lld",
                           (long long)N, (long long)K);
    for (int64_t i = 0; i < (int64_t)ql->n_groups * N; i++)
        if (ql->zeros[i] < 1)
            return vrt_err_set(err, VRT_ERANGE,
                               "GPTQ v1 cannot store a zero point of 0 (group %lld, output %lld)",
                               (long long)(i / N), (long long)(i % N));
    /* qweight[r][n]: rows 8r..8r+7 of column n, row 8r+j in bits 4j. */
    for (int64_t r = 0; r < K / 8; r++)
        for (int64_t n = 0; n < N; n++) {
            uint32_t v = 0;
            for (int j = 0; j < 8; j++)
                v |= (uint32_t)ql->q[n * K + 8 * r + j] << (4 * j);
            qweight[r * N + n] = (int32_t)v;
        }
    /* qzeros[g][c]: columns 8c..8c+7, zero - 1 (v1). */
    for (int64_t g = 0; g < ql->n_groups; g++)
        for (int64_t c = 0; c < N / 8; c++) {
            uint32_t v = 0;
            for (int j = 0; j < 8; j++)
                v |= (uint32_t)(ql->zeros[g * N + 8 * c + j] - 1) << (4 * j);
            qzeros[g * (N / 8) + c] = (int32_t)v;
        }
    return 0;
}

int vrt_pack_awq(const vrt_qlinear *ql, int32_t *qweight, int32_t *qzeros, vrt_err *err)
{
    static const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    const int64_t N = ql->N, K = ql->K, G = ql->group_size;
    if (K % G || N % 8)
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "AWQ GEMM packing needs in_features divisible by the group size and "
                           "out_features by 8; the weight is %lld x %lld, group size %lld",
                           (long long)N, (long long)K, (long long)G);
    for (int64_t k = 0; k < K; k++)
        if (ql->g_idx[k] != k / G)
            return vrt_err_set(err, VRT_EINVAL,
                               "AWQ has no g_idx: groups must be contiguous (no act-order)");
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < N / 8; c++) {
            uint32_t v = 0;
            for (int i = 0; i < 8; i++)
                v |= (uint32_t)ql->q[(8 * c + order[i]) * K + k] << (4 * i);
            qweight[k * (N / 8) + c] = (int32_t)v;
        }
    for (int64_t g = 0; g < ql->n_groups; g++)
        for (int64_t c = 0; c < N / 8; c++) {
            uint32_t v = 0;
            for (int i = 0; i < 8; i++)
                v |= (uint32_t)ql->zeros[g * N + 8 * c + order[i]] << (4 * i);
            qzeros[g * (N / 8) + c] = (int32_t)v;
        }
    return 0;
}
