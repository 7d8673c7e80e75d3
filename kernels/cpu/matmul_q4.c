/* matmul_q4.c — CPU y = x·Wᵀ + bias with W in the internal int4 layout (vrt_q4).
 *
 * W[n][k] = (q - z) * s per group, so one output is
 *     y[t][n] = Σ_g s[n][g] · (Σ_{k∈g} q[n][k]·x'[t][k]  −  z[n][g] · Σ_{k∈g} x'[t][k])
 * with x' the activations gathered by the weight's permutation. The group
 * sums of x' are computed once per call, so the inner loop only turns
 * nibbles into floats and multiply-adds them: the weight matrix is never
 * dequantized as a whole.
 *
 * Once per call x' is gathered (perm, zero padding up to Kp) into a
 * scratch buffer in a "block-shuffled" order that matches the nibbles: for
 * a block b of 32 columns (4 words, one 128-bit vector of a row),
 *     xs[32b + 4j + l] = x'[32b + 8l + j]
 * so that lane l of a 4-wide vector holding words 4b..4b+3 meets its
 * activation at a contiguous address after the shift by 4j: the nibble loop
 * is a plain vector loop, no gather.
 *
 * T < 4 (decode): one fused pass per row, OpenMP over rows. T >= 4: tiles of
 * Q4_NB rows × Q4_TB tokens; a thread unpacks its rows' nibbles into a
 * small float buffer (Q4_NB rows, in the same shuffled order) once per row
 * block and reuses them for every token of the tile (2 rows × 4 tokens
 * micro-kernel per group).
 */
#include "cpu/cpu.h"

#include "backend/half.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>

#define Q4_NB 8  /* weight rows per tile */
#define Q4_TB 64 /* tokens per tile */

/* Kp: K rounded up to a whole 32-column block. */
static int64_t q4_kp(int64_t K)
{
    return (K + VRT_Q4_KBLOCK - 1) / VRT_Q4_KBLOCK * VRT_Q4_KBLOCK;
}

/* xs[t] (block-shuffled x'[t], [Kp]) and xsum[t][g] for tokens t0..t1. */
static void gather_x(float *xs, float *xsum, const float *x, const int32_t *perm, int64_t K,
                     int64_t Kp, int64_t G, int ng, int t0, int t1)
{
    for (int t = t0; t < t1; t++) {
        const float *xr = x + (int64_t)t * K;
        float *o = xs + (int64_t)t * Kp;
        for (int64_t b = 0; b < Kp; b += 32)
            for (int l = 0; l < 4; l++)
                for (int j = 0; j < 8; j++) {
                    int64_t k = b + 8 * l + j;
                    o[b + 4 * j + l] = k < K ? xr[perm ? perm[k] : k] : 0.0f;
                }
        float *sr = xsum + (int64_t)t * ng;
        for (int g = 0; g < ng; g++) {
            int64_t k0 = (int64_t)g * G, k1 = k0 + G < Kp ? k0 + G : Kp;
            float s = 0;
            for (int64_t k = k0; k < k1; k++)
                s += o[k]; /* a permutation of the group's values: same sum set */
            sr[g] = s;
        }
    }
}

/* 4 lanes of 32-bit values: GCC/Clang vector extensions, which become SSE2 on
 * x86-64, NEON on arm64 and VSX on POWER without intrinsics. */
typedef uint32_t v4u __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef float v4f __attribute__((vector_size(16)));

/* Σ q·x' over blocks [b0, b1) of one row (words q, shuffled activations xs):
 * lane l of the 4-word vector of block b holds columns 32b + 8l + j in its
 * nibbles j, and xs holds them at 32b + 4j + l, so each shift by 4j meets
 * one contiguous vector of activations. Two accumulators hide the add
 * latency. */
static inline float nib_dot(const uint32_t *q, const float *xs, int64_t b0, int64_t b1)
{
    const v4u m = {15u, 15u, 15u, 15u};
    v4f a0 = {0, 0, 0, 0}, a1 = {0, 0, 0, 0};
    for (int64_t b = b0; b < b1; b++) {
        v4u w;
        memcpy(&w, q + 4 * b, sizeof w);
        const float *xv = xs + 32 * b;
        for (int j = 0; j < 8; j += 2) {
            v4f x0, x1;
            memcpy(&x0, xv + 4 * j, sizeof x0);
            memcpy(&x1, xv + 4 * j + 4, sizeof x1);
            a0 += __builtin_convertvector((v4i)((w >> (unsigned)(4 * j)) & m), v4f) * x0;
            a1 += __builtin_convertvector((v4i)((w >> (unsigned)(4 * j + 4)) & m), v4f) * x1;
        }
    }
    v4f a = a0 + a1;
    return (a[0] + a[1]) + (a[2] + a[3]);
}

/* One output: row n's words q against token t's shuffled x' and group sums. */
static inline float row_out(const uint32_t *q, const uint16_t *s, const uint16_t *z,
                            const float *xs, const float *xsum, int ng, int64_t bpg, int64_t nblk)
{
    float y = 0;
    for (int g = 0; g < ng; g++) {
        int64_t b0 = g * bpg, b1 = b0 + bpg < nblk ? b0 + bpg : nblk;
        float d = nib_dot(q, xs, b0, b1);
        y += vrt_f16_to_f32(s[g]) * (d - vrt_f16_to_f32(z[g]) * xsum[g]);
    }
    return y;
}

/* Unpacks one row's nibbles into floats in the shuffled order of xs. */
static void unpack_row(float *o, const uint32_t *q, int64_t nblk)
{
    for (int64_t b = 0; b < nblk; b++)
        for (int j = 0; j < 8; j++)
            for (int l = 0; l < 4; l++)
                o[32 * b + 4 * j + l] = (float)(int32_t)((q[4 * b + l] >> (4 * j)) & 15u);
}

typedef struct q4_args {
    const vrt_q4 *q;
    int64_t N, K, Kp, G, bpg, nblk, wpr; /* wpr: words per row = Kp/8 */
    int ng;
    const float *xs, *xsum, *bias;
    float *y;
} q4_args;

/* y[t0..t1)[n0..n0+nb) from the unpacked rows qf ([nb][Kp], shuffled). */
static void tile(const q4_args *a, const float *qf, int64_t n0, int nb, int t0, int t1)
{
    const int64_t Kp = a->Kp, N = a->N, G = a->bpg * 32;
    const int ng = a->ng;
    int t = t0;
    float r[8];
    for (; t < t1; t += 4) {
        int nt = t1 - t < 4 ? t1 - t : 4;
        const float *xr[4];
        for (int j = 0; j < 4; j++)
            xr[j] = a->xs + (int64_t)(t + (j < nt ? j : 0)) * Kp;
        for (int i = 0; i < nb; i += 2) {
            int two = i + 1 < nb;
            const float *w0 = qf + (int64_t)i * Kp, *w1 = two ? w0 + Kp : w0;
            const uint16_t *s0 = a->q->scales + (n0 + i) * ng, *z0 = a->q->zeros + (n0 + i) * ng;
            const uint16_t *s1 = two ? s0 + ng : s0, *z1 = two ? z0 + ng : z0;
            float acc[8] = {0};
            for (int g = 0; g < ng; g++) {
                int64_t k0 = g * G, len = k0 + G < Kp ? G : Kp - k0;
                if (nt == 4) {
                    dot_2x4(w0 + k0, w1 + k0, xr[0] + k0, xr[1] + k0, xr[2] + k0, xr[3] + k0, len,
                            r);
                } else {
                    for (int j = 0; j < nt; j++) {
                        r[j] = dot_1x1(w0 + k0, xr[j] + k0, len);
                        r[4 + j] = two ? dot_1x1(w1 + k0, xr[j] + k0, len) : 0.0f;
                    }
                }
                float sa = vrt_f16_to_f32(s0[g]), za = vrt_f16_to_f32(z0[g]);
                float sb = vrt_f16_to_f32(s1[g]), zb = vrt_f16_to_f32(z1[g]);
                for (int j = 0; j < nt; j++) {
                    const float xsg = a->xsum[(int64_t)(t + j) * ng + g];
                    acc[j] += sa * (r[j] - za * xsg);
                    acc[4 + j] += sb * (r[4 + j] - zb * xsg);
                }
            }
            for (int j = 0; j < nt; j++) {
                float *yr = a->y + (int64_t)(t + j) * N + n0 + i;
                yr[0] = acc[j] + (a->bias ? a->bias[n0 + i] : 0.0f);
                if (two)
                    yr[1] = acc[4 + j] + (a->bias ? a->bias[n0 + i + 1] : 0.0f);
            }
        }
    }
}

int vrt__cpu_matmul_q4(vrt_backend *b, float *y, const float *x, const vrt_weight *W,
                       const float *bias, int T, vrt_err *err)
{
    if (((vrt__cpu_ctx *)b->ctx)->isa == VRT_CPU_ISA_AVX2)
        return vrt__cpu_matmul_q4_avx2(vrt__cpu_threads(b), y, x, W, bias, T, err);
    const vrt_q4 *q = W->q4;
    q4_args a = {.q = q, .N = W->rows, .K = W->cols, .ng = q->n_groups, .bias = bias, .y = y};
    a.Kp = q4_kp(a.K);
    a.nblk = a.Kp / 32;
    a.G = q->group_size >= a.K ? a.Kp : q->group_size;
    a.bpg = a.G / 32;
    a.wpr = a.Kp / 8;
    float *xs = malloc((size_t)(T * a.Kp + (int64_t)T * a.ng) * sizeof(float));
    if (!xs)
        return vrt_err_set(err, VRT_ENOMEM,
                           "matmul: out of memory for the gathered activations (%lld bytes)",
                           (long long)((T * a.Kp + (int64_t)T * a.ng) * 4));
    float *xsum = xs + (int64_t)T * a.Kp;
    a.xs = xs;
    a.xsum = xsum;
    const int nt = vrt__cpu_threads(b);
    const double work = (double)T * a.N * a.K;
#pragma omp parallel for num_threads(nt) schedule(static) if (T > 1 && work > 65536.0)
    for (int t = 0; t < T; t++)
        gather_x(xs, xsum, x, q->perm, a.K, a.Kp, a.G, a.ng, t, t + 1);

    int failed = 0;
    if (T < 4) {
#pragma omp parallel for num_threads(nt) schedule(static) if (work > 65536.0)
        for (int64_t n = 0; n < a.N; n++) {
            const uint32_t *qr = q->qweight + n * a.wpr;
            for (int t = 0; t < T; t++) {
                float v =
                    row_out(qr, q->scales + n * a.ng, q->zeros + n * a.ng, xs + (int64_t)t * a.Kp,
                            xsum + (int64_t)t * a.ng, a.ng, a.bpg, a.nblk);
                y[(int64_t)t * a.N + n] = bias ? v + bias[n] : v;
            }
        }
    } else {
        const int64_t nrb = (a.N + Q4_NB - 1) / Q4_NB, ntb = (T + Q4_TB - 1) / Q4_TB;
        const int64_t items = nrb * ntb;
#pragma omp parallel num_threads(nt) if (items > 1 && work > 65536.0)
        {
            float *qf = malloc((size_t)(Q4_NB * a.Kp) * sizeof(float));
            int64_t have = -1;
            if (!qf) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(static)
            for (int64_t it = 0; it < items; it++) {
                if (!qf)
                    continue;
                int64_t rb = it / ntb, tb = it % ntb, n0 = rb * Q4_NB;
                int nb = (int)(a.N - n0 < Q4_NB ? a.N - n0 : Q4_NB);
                if (have != rb) {
                    for (int i = 0; i < nb; i++)
                        unpack_row(qf + (int64_t)i * a.Kp, q->qweight + (n0 + i) * a.wpr, a.nblk);
                    have = rb;
                }
                int t0 = (int)(tb * Q4_TB), t1 = t0 + Q4_TB < T ? t0 + Q4_TB : T;
                tile(&a, qf, n0, nb, t0, t1);
            }
            free(qf);
        }
    }
    free(xs);
    if (failed)
        return vrt_err_set(err, VRT_ENOMEM,
                           "matmul: out of memory for the int4 unpack buffer (%lld bytes per "
                           "thread)",
                           (long long)(Q4_NB * a.Kp * 4));
    return 0;
}
