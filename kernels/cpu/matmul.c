/* matmul.c — CPU y = x·Wᵀ + bias with f32 or f16 weights (int4: matmul_q4.c).
 *
 * The output [T][N] is cut into tiles of MM_NB weight rows × MM_TB tokens;
 * OpenMP threads take tiles (row-block major, so one thread's consecutive
 * tiles share a weight block). Inside a tile, a micro-kernel computes 2 rows ×
 * 4 tokens at once: each weight value loaded is used for 4 tokens and each
 * token value for 2 rows, and the loop over K is an OpenMP SIMD reduction
 * that gcc vectorizes without -ffast-math. f16 weight rows are converted
 * into a per-thread f32 buffer of MM_NB rows (never a full copy of W), once
 * per weight block a thread works on.
 */
#include "cpu/cpu.h"

#include "backend/half.h"
#include "core/err.h"

#include <stdlib.h>

#define MM_NB 16 /* weight rows per tile */
#define MM_TB 64 /* tokens per tile */

static inline void dot_1x4(const float *w0, const float *x0, const float *x1, const float *x2,
                           const float *x3, int64_t K, float *r)
{
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
    for (int64_t k = 0; k < K; k++) {
        float u = w0[k];
        a0 += u * x0[k];
        a1 += u * x1[k];
        a2 += u * x2[k];
        a3 += u * x3[k];
    }
    r[0] = a0, r[1] = a1, r[2] = a2, r[3] = a3;
}

static inline void dot_2x1(const float *w0, const float *w1, const float *x0, int64_t K, float *r)
{
    float a0 = 0, b0 = 0;
#pragma omp simd reduction(+ : a0, b0)
    for (int64_t k = 0; k < K; k++) {
        a0 += w0[k] * x0[k];
        b0 += w1[k] * x0[k];
    }
    r[0] = a0, r[1] = b0;
}

/* y[t0..t1)[n0..n0+nb) for weight rows wr (nb of them, contiguous, stride K). */
static void tile(float *y, const float *x, const float *wr, const float *bias, int64_t N, int64_t K,
                 int64_t n0, int nb, int t0, int t1)
{
    float r[8];
    int t = t0;
    for (; t + 4 <= t1; t += 4) {
        const float *x0 = x + (int64_t)t * K, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
        int i = 0;
        for (; i + 2 <= nb; i += 2) {
            dot_2x4(wr + i * K, wr + (i + 1) * K, x0, x1, x2, x3, K, r);
            for (int j = 0; j < 4; j++) {
                y[(int64_t)(t + j) * N + n0 + i] = r[j];
                y[(int64_t)(t + j) * N + n0 + i + 1] = r[4 + j];
            }
        }
        if (i < nb) {
            dot_1x4(wr + i * K, x0, x1, x2, x3, K, r);
            for (int j = 0; j < 4; j++)
                y[(int64_t)(t + j) * N + n0 + i] = r[j];
        }
    }
    for (; t < t1; t++) { /* the last < 4 tokens */
        const float *x0 = x + (int64_t)t * K;
        int i = 0;
        for (; i + 2 <= nb; i += 2) {
            dot_2x1(wr + i * K, wr + (i + 1) * K, x0, K, r);
            y[(int64_t)t * N + n0 + i] = r[0];
            y[(int64_t)t * N + n0 + i + 1] = r[1];
        }
        if (i < nb)
            y[(int64_t)t * N + n0 + i] = dot_1x1(wr + i * K, x0, K);
    }
    if (bias)
        for (t = t0; t < t1; t++)
            for (int i = 0; i < nb; i++)
                y[(int64_t)t * N + n0 + i] += bias[n0 + i];
}

int vrt__cpu_matmul(vrt_backend *b, float *y, const float *x, const vrt_weight *W,
                    const float *bias, int T, vrt_err *err)
{
    const int q4 = W->dtype == VRT_DT_Q4;
    if (T == 0)
        return 0;
    if (q4)
        return vrt__cpu_matmul_q4(b, y, x, W, bias, T, err);
    if (W->dtype == VRT_DT_F16 && ((vrt__cpu_ctx *)b->ctx)->isa == VRT_CPU_ISA_AVX2)
        return vrt__cpu_matmul_f16_avx2(vrt__cpu_threads(b), y, x, W, bias, T, err);
    const int64_t N = W->rows, K = W->cols;
    const int f16 = W->dtype == VRT_DT_F16;
    const int64_t nblk = (N + MM_NB - 1) / MM_NB, ntb = (T + MM_TB - 1) / MM_TB;
    const int64_t items = nblk * ntb;
    const int nt = vrt__cpu_threads(b);
    int failed = 0;
#pragma omp parallel num_threads(nt) if (items > 1 && (double)T * N * K > 65536.0)
    {
        float *buf = f16 ? malloc((size_t)(MM_NB * K) * sizeof(float)) : NULL;
        int64_t have = -1; /* the weight block buf holds */
        if (f16 && !buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            if (f16 && !buf)
                continue;
            int64_t blk = it / ntb, tb = it % ntb;
            int64_t n0 = blk * MM_NB;
            int nb = (int)(N - n0 < MM_NB ? N - n0 : MM_NB);
            const float *wr;
            if (f16) {
                if (have != blk) {
                    vrt_f16_to_f32_n(buf, (const uint16_t *)W->data + n0 * K, (size_t)(nb * K));
                    have = blk;
                }
                wr = buf;
            } else {
                wr = (const float *)W->data + n0 * K;
            }
            int t0 = (int)(tb * MM_TB), t1 = t0 + MM_TB < T ? t0 + MM_TB : T;
            tile(y, x, wr, bias, N, K, n0, nb, t0, t1);
        }
        free(buf);
    }
    if (failed)
        return vrt_err_set(err, VRT_ENOMEM,
                           "matmul: out of memory for the f16 conversion buffer (%lld bytes "
                           "per thread)",
                           (long long)(MM_NB * K * (int64_t)sizeof(float)));
    return 0;
}
