/* test_quant_algo.c — the 4-bit quantizers of runtime/model/quant_algo.h.
 *
 * The packed tensors are decoded here independently, by the published
 * rules of docs/formats.md §3.2/§3.4 (GPTQ v1: nibble 4j of qweight[k/8][n] is
 * row 8(k/8)+j, stored zero + 1) and §4.2/§4.3 (AWQ GEMM: column 8c+j sits
 * in nibble slot REV[j], REV = [0, 4, 1, 5, 2, 6, 3, 7]), never by calling
 * the packer's inverse. GPTQ and AWQ are checked for the property that
 * makes them worth their cost, on random data: GPTQ's output error below
 * round-to-nearest's, AWQ's chosen scales never worse than no scaling.
 */
#include "test.h"

#include "backend/half.h"
#include "core/err.h"
#include "model/quant_algo.h"

#include <stdlib.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((rng_state >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static float nrand(void)
{
    return (float)(sqrt(-2 * log(urand())) * cos(6.283185307179586 * urand()));
}

/* docs/formats.md §3.4, v1: W[n,k] = scales[g,n] * (q(k,n) - (zs(g,n) + 1)). */
static float gptq_decode(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales,
                         const int32_t *g_idx, int64_t N, int64_t n, int64_t k)
{
    uint32_t qw = (uint32_t)qweight[(k / 8) * N + n];
    int q = (int)((qw >> (4 * (k % 8))) & 0xF);
    int g = g_idx[k];
    uint32_t qz = (uint32_t)qzeros[g * (N / 8) + n / 8];
    int zs = (int)((qz >> (4 * (n % 8))) & 0xF);
    return vrt_f16_to_f32(scales[g * N + n]) * (float)(q - (zs + 1));
}

/* docs/formats.md §4.2/§4.3: W[n,k] = (q(k,n) - z(g,n)) * scales[g,n], g = k / G. */
static float awq_decode(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales,
                        int64_t N, int64_t G, int64_t n, int64_t k)
{
    static const int REV[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    uint32_t qw = (uint32_t)qweight[k * (N / 8) + n / 8];
    int q = (int)((qw >> (4 * REV[n % 8])) & 0xF);
    int64_t g = k / G;
    uint32_t qz = (uint32_t)qzeros[g * (N / 8) + n / 8];
    int z = (int)((qz >> (4 * REV[n % 8])) & 0xF);
    return (float)(q - z) * vrt_f16_to_f32(scales[g * N + n]);
}

static float *rand_mat(int64_t rows, int64_t cols, float scale)
{
    float *m = malloc((size_t)(rows * cols) * sizeof *m);
    for (int64_t i = 0; m && i < rows * cols; i++)
        m[i] = scale * nrand();
    return m;
}

/* Largest |W - Ŵ| / scale of the element's group: round-to-nearest keeps it
 * at 1/2 a step (+ the fp16 rounding of the scale: 15 steps * 2^-11). */
static double worst_step_err(const float *W, const float *Wq, const vrt_qlinear *ql)
{
    double worst = 0;
    for (int64_t n = 0; n < ql->N; n++)
        for (int64_t k = 0; k < ql->K; k++) {
            double s = vrt_f16_to_f32(ql->scales[(int64_t)ql->g_idx[k] * ql->N + n]);
            double e = fabs((double)W[n * ql->K + k] - Wq[n * ql->K + k]) / s;
            worst = e > worst ? e : worst;
        }
    return worst;
}

TEST(quant_rtn_gptq_packing_decodes_by_formats_md)
{
    /* N 24, K 200: with G 64 the last group has 8 columns (GPTQ allows a
     * partial group: ng = ceil(K/G)). */
    const int64_t N = 24, K = 200;
    const int groups[] = {32, 64, -1};
    for (int sym = 0; sym <= 1; sym++)
        for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
            float *W = rand_mat(N, K, 0.05f), *Wq = malloc((size_t)(N * K) * sizeof *Wq);
            /* One row all positive: an asymmetric zero of 0, which GPTQ v1 cannot store. */
            for (int64_t k = 0; k < K; k++)
                W[3 * K + k] = fabsf(W[3 * K + k]) + 0.01f;
            vrt_qlinear ql;
            vrt_err err = {0};
            ASSERT_OK(vrt_quant_rtn(W, N, K, groups[gi], sym, VRT_QSTYLE_GPTQ, &ql, &err), &err);
            int ng = ql.n_groups;
            ASSERT_EQ_INT(ng, groups[gi] == -1 ? 1 : (K + groups[gi] - 1) / groups[gi]);
            int32_t *qweight = malloc((size_t)(K / 8 * N) * 4),
                    *qzeros = malloc((size_t)ng * N / 8 * 4);
            ASSERT_OK(vrt_pack_gptq(&ql, qweight, qzeros, &err), &err);
            vrt_qlinear_dequant(&ql, Wq);
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < K; k++) {
                    float d = gptq_decode(qweight, qzeros, ql.scales, ql.g_idx, N, n, k);
                    if (d != Wq[n * K + k])
                        TFAIL("sym %d G %d: W[%lld][%lld] decodes to %g, the quantizer made %g",
                              sym, groups[gi], (long long)n, (long long)k, d, Wq[n * K + k]);
                }
            if (sym)
                for (int64_t i = 0; i < ng * N / 8; i++)
                    ASSERT_EQ_INT((uint32_t)qzeros[i], 0x77777777u); /* docs/formats.md §3.4 */
            double worst = worst_step_err(W, Wq, &ql);
            if (worst > 0.5 + 15 * 0x1p-11)
                TFAIL("sym %d G %d: an element is %.4f steps from its weight", sym, groups[gi],
                      worst);
            vrt_qlinear_free(&ql);
            free(W);
            free(Wq);
            free(qweight);
            free(qzeros);
        }
}

TEST(quant_rtn_awq_packing_decodes_by_formats_md)
{
    const int64_t N = 40, K = 256;
    const int groups[] = {32, 128, -1};
    for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
        float *W = rand_mat(N, K, 0.05f), *Wq = malloc((size_t)(N * K) * sizeof *Wq);
        for (int64_t k = 0; k < K; k++)
            W[5 * K + k] += 0.03f; /* a shifted row (still spanning 0, as AWQ's
                                      quantizer assumes): zero points away from 8 */
        vrt_qlinear ql;
        vrt_err err = {0};
        ASSERT_OK(vrt_quant_rtn(W, N, K, groups[gi], 0, VRT_QSTYLE_AWQ, &ql, &err), &err);
        int64_t G = ql.group_size, ng = ql.n_groups;
        int32_t *qweight = malloc((size_t)(K * N / 8) * 4),
                *qzeros = malloc((size_t)(ng * N / 8) * 4);
        ASSERT_OK(vrt_pack_awq(&ql, qweight, qzeros, &err), &err);
        vrt_qlinear_dequant(&ql, Wq);
        int zero_not_8 = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) {
                float d = awq_decode(qweight, qzeros, ql.scales, N, G, n, k);
                if (d != Wq[n * K + k])
                    TFAIL("G %d: W[%lld][%lld] decodes to %g, the quantizer made %g", groups[gi],
                          (long long)n, (long long)k, d, Wq[n * K + k]);
            }
        for (int64_t i = 0; i < ng * N; i++)
            zero_not_8 += ql.zeros[i] != 8;
        ASSERT(zero_not_8 > 0);
        double worst = worst_step_err(W, Wq, &ql);
        if (worst > 0.5 + 15 * 0x1p-11)
            TFAIL("G %d: an element is %.4f steps from its weight", groups[gi], worst);
        vrt_qlinear_free(&ql);
        free(W);
        free(Wq);
        free(qweight);
        free(qzeros);
    }
}

TEST(quant_pack_rejects_what_the_formats_cannot_hold)
{
    vrt_qlinear ql;
    vrt_err err = {0};
    float *W = rand_mat(8, 20, 0.1f);
    ASSERT_OK(vrt_quant_rtn(W, 8, 20, 8, 0, VRT_QSTYLE_AWQ, &ql, &err), &err);
    int32_t buf[64];
    ASSERT_EQ_INT(vrt_pack_gptq(&ql, buf, buf, &err), VRT_EUNSUPPORTED); /* K 20 % 8 */
    ASSERT_CONTAINS(err.msg, "divisible by 8");
    ASSERT_EQ_INT(vrt_pack_awq(&ql, buf, buf, &err), VRT_EUNSUPPORTED); /* K 20 % G 8 */
    ASSERT_CONTAINS(err.msg, "group size");
    vrt_qlinear_free(&ql);
    free(W);
}

/* X [T][K] with correlated channels of very different sizes, as real
 * activations have: x = z·A, z ~ N(0, 1)^(T x r), then channel k scaled. */
static float *calib_rows(int64_t T, int64_t K, int r)
{
    float *A = rand_mat(r, K, 1.0f), *X = calloc((size_t)(T * K), sizeof *X);
    for (int64_t t = 0; t < T; t++)
        for (int i = 0; i < r; i++) {
            float z = nrand();
            for (int64_t k = 0; k < K; k++)
                X[t * K + k] += z * A[i * K + k];
        }
    for (int64_t t = 0; t < T; t++)
        for (int64_t k = 0; k < K; k++)
            X[t * K + k] = X[t * K + k] * (0.2f + (float)(k % 7)) + 0.1f * nrand();
    free(A);
    return X;
}

/* ||X·Wᵀ - X·Ŵᵀ||² */
static double out_err(const float *X, int64_t T, const float *W, const float *Wq, int64_t N,
                      int64_t K)
{
    double total = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) {
            double a = 0;
            for (int64_t k = 0; k < K; k++)
                a += (double)X[t * K + k] * ((double)W[n * K + k] - Wq[n * K + k]);
            total += a * a;
        }
    return total;
}

TEST(quant_hessian_is_two_over_n_xtx)
{
    const int64_t T = 37, K = 24;
    float *X = rand_mat(T, K, 1.0f);
    vrt_hessian h;
    vrt_err err = {0};
    ASSERT_OK(vrt_hessian_init(&h, K, &err), &err);
    vrt_hessian_add(&h, X, 20); /* in two parts */
    vrt_hessian_add(&h, X + 20 * K, T - 20);
    vrt_hessian_finish(&h);
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < K; j++) {
            double want = 0;
            for (int64_t t = 0; t < T; t++)
                want += (double)X[t * K + i] * X[t * K + j];
            want *= 2.0 / T;
            ASSERT_NEAR(h.H[i * K + j], want, 1e-9 * (1 + fabs(want)));
        }
    vrt_hessian_free(&h);
    free(X);
}

TEST(quant_gptq_output_error_below_rtn)
{
    const int64_t N = 48, K = 256, T = 1024;
    float *W = rand_mat(N, K, 0.05f), *X = calib_rows(T, K, 64);
    float *Wq = malloc((size_t)(N * K) * sizeof *Wq);
    vrt_err err = {0};
    vrt_hessian h;
    ASSERT_OK(vrt_hessian_init(&h, K, &err), &err);
    vrt_hessian_add(&h, X, T);
    vrt_hessian_finish(&h);
    for (int sym = 0; sym <= 1; sym++) {
        vrt_qlinear ql;
        ASSERT_OK(vrt_quant_rtn(W, N, K, 64, sym, VRT_QSTYLE_GPTQ, &ql, &err), &err);
        vrt_qlinear_dequant(&ql, Wq);
        double e_rtn = out_err(X, T, W, Wq, N, K);
        vrt_qlinear_free(&ql);
        for (int act = 0; act <= 1; act++) {
            vrt_gptq_prep p;
            ASSERT_OK(vrt_gptq_prepare(&p, &h, act, 0.01, &err), &err);
            ASSERT_OK(vrt_gptq_quantize(&p, W, N, 64, sym, &ql, &err), &err);
            vrt_qlinear_dequant(&ql, Wq);
            double e_gptq = out_err(X, T, W, Wq, N, K);
            /* g_idx: every group has exactly G members; with act-order
             * they are not contiguous. */
            int count[4] = {0}, monotonic = 1;
            for (int64_t k = 0; k < K; k++) {
                ASSERT(ql.g_idx[k] >= 0 && ql.g_idx[k] < 4);
                count[ql.g_idx[k]]++;
                if (k && ql.g_idx[k] < ql.g_idx[k - 1])
                    monotonic = 0;
            }
            for (int g = 0; g < 4; g++)
                ASSERT_EQ_INT(count[g], 64);
            ASSERT_EQ_INT(monotonic, !act);
            fprintf(stderr, "  sym %d act-order %d: ||X(W-Ŵ)ᵀ||² GPTQ %.4g, RTN %.4g (%.2fx)\n",
                    sym, act, e_gptq, e_rtn, e_rtn / e_gptq);
            if (!(e_gptq < 0.9 * e_rtn))
                TFAIL("sym %d act-order %d: GPTQ output error %.6g is not below 0.9 x RTN's %.6g",
                      sym, act, e_gptq, e_rtn);
            vrt_qlinear_free(&ql);
            vrt_gptq_prep_free(&p);
        }
    }
    vrt_hessian_free(&h);
    free(W);
    free(X);
    free(Wq);
}

TEST(quant_gptq_dead_inputs_and_rank_deficient_hessian)
{
    /* Input 5 is always 0 (dead: its weights are zeroed) and H has rank 8 < K:
     * the 1% dampening makes it positive definite. */
    const int64_t N = 16, K = 32, T = 64;
    float *W = rand_mat(N, K, 0.1f), *X = calib_rows(T, K, 8);
    for (int64_t t = 0; t < T; t++)
        X[t * K + 5] = 0;
    vrt_err err = {0};
    vrt_hessian h;
    ASSERT_OK(vrt_hessian_init(&h, K, &err), &err);
    vrt_hessian_add(&h, X, T);
    vrt_hessian_finish(&h);
    vrt_gptq_prep p;
    ASSERT_OK(vrt_gptq_prepare(&p, &h, 1, 0.01, &err), &err);
    ASSERT_EQ_INT(p.dead[5], 1);
    vrt_qlinear ql;
    ASSERT_OK(vrt_gptq_quantize(&p, W, N, -1, 0, &ql, &err), &err);
    float *Wq = malloc((size_t)(N * K) * sizeof *Wq);
    vrt_qlinear_dequant(&ql, Wq);
    for (int64_t n = 0; n < N; n++) {
        ASSERT(isfinite(Wq[n * K + 1]));
        float s = vrt_f16_to_f32(ql.scales[n]);
        ASSERT(fabsf(Wq[n * K + 5]) <= 0.5f * s); /* the dead column quantizes 0 */
    }
    vrt_qlinear_free(&ql);
    vrt_gptq_prep_free(&p);
    vrt_hessian_free(&h);
    free(W);
    free(X);
    free(Wq);
}

TEST(quant_awq_search_never_worse_than_no_scaling)
{
    const int64_t K = 128, T = 512;
    const int64_t N[2] = {32, 24};
    float *W0 = rand_mat(N[0], K, 0.05f), *W1 = rand_mat(N[1], K, 0.05f);
    float *X = rand_mat(T, K, 1.0f);
    /* A few salient input channels, 30x larger, as AWQ's paper observes. */
    for (int64_t t = 0; t < T; t++)
        for (int64_t k = 3; k < K; k += 29)
            X[t * K + k] *= 30;
    float xmean[128] = {0}, s[128];
    for (int64_t t = 0; t < T; t++)
        for (int64_t k = 0; k < K; k++)
            xmean[k] += fabsf(X[t * K + k]) / T;
    const float *Ws[2] = {W0, W1};
    vrt_err err = {0};
    vrt_awq_result res;
    ASSERT_OK(vrt_awq_search(Ws, N, 2, K, X, T, xmean, 32, 20, s, &res, &err), &err);
    double plain, again;
    ASSERT_OK(vrt_awq_loss(Ws, N, 2, K, X, T, NULL, 32, &plain, &err), &err);
    ASSERT_OK(vrt_awq_loss(Ws, N, 2, K, X, T, s, 32, &again, &err), &err);
    fprintf(stderr, "  AWQ: alpha %.3f, loss %.4g vs %.4g unscaled (%.2fx)\n", res.alpha, res.loss,
            plain, plain / res.loss);
    ASSERT_NEAR(res.loss_alpha0, plain, 1e-12 * plain);
    ASSERT_NEAR(again, res.loss, 1e-12 * res.loss);
    ASSERT(res.loss <= plain);
    /* With salient channels the search must find a real improvement. */
    ASSERT(res.alpha > 0 && res.loss < 0.9 * plain);
    free(W0);
    free(W1);
    free(X);
}
