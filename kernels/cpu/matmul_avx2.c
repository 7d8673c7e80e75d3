/* matmul_avx2.c — y = x·Wᵀ + bias for f16 and int4 weights with AVX2, FMA and F16C.
 *
 * Compiled with -mavx2 -mfma -mf16c (Makefile) and called only when
 * isa.c found the features (the backend's isa is VRT_CPU_ISA_AVX2), so
 * the binary still runs on any x86-64. matmul.c and matmul_q4.c stay the
 * generic path and the tests' second opinion.
 *
 * Both kernels stream each weight row once per call for all tokens (up to
 * MT tokens, 32, per pass; longer prefills read the rows once per 32
 * tokens): rows are split over OpenMP threads (static), and a thread takes
 * 2 rows and runs every token block of up to 4 tokens against them while
 * they sit in L1; at T = 1 it reads its rows one after the other (f16_row1). The weights are
 * converted in registers (f16: 8 at a time with vcvtph2ps; int4: nibbles masked in place, see
 * below) and multiply-added into one accumulator per row and token.
 *
 * int4 (layout in backend.h, vrt_q4): word w of a row holds columns
 * 8w..8w+7 in its nibbles 0..7. Eight words (two 32-column blocks) are one
 * vector; nibble j of all eight lanes is (w & 15<<4j), an integer q·16^j
 * that converts to float exactly, so the activations are stored pre-scaled
 * by 16^-j (exact: a power of two) and no shift is needed (j = 7 uses a
 * shift instead: the masked value would be negative as int32). Per call the
 * activations x' (permuted, zero-padded to Kp) are gathered into that
 * order: for a pair of blocks starting at block b, xs[32b + 8j + l] =
 * x'[32b + 8l + j]·16^-j (l = 0..7); a group with an odd number of blocks
 * ends with a single block in 4-lane order, xs[32b + 4j + l] (l = 0..3).
 * One output is Σ_g s_g·Σ_{k∈g} q·x'  −  Σ_g s_g·z_g·Σ_{k∈g} x', the
 * second sum from per-group sums of x' computed once per call.
 */
#include "cpu/cpu.h"

#include "core/err.h"

#include <omp.h>
#include <stdlib.h>

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

const int vrt__cpu_avx2_built = 1;

#define AI static inline __attribute__((always_inline))
#define MT 32 /* tokens per pass over the weight rows */

/* This thread's share [*i0, *i1) of n items: contiguous, as schedule(static)
 * would cut them, but kept across the passes over token tiles. */
static void thread_range(int64_t n, int64_t *i0, int64_t *i1)
{
    int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
    int64_t q = n / nt, r = n % nt;
    *i0 = id * q + (id < r ? id : r);
    *i1 = *i0 + q + (id < r);
}

AI float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- f16 ---- */

/* out[r*NT + t] = W row r · x[t] for R rows (stride K) and NT tokens. */
AI void f16_mk(const uint16_t *w, int64_t K, const float *const *x, const int R, const int NT,
               float *out)
{
    __m256 acc[4][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++)
            acc[r][t] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 wv[4];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            wv[r] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + r * K + k)));
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            __m256 xv = _mm256_loadu_ps(x[t] + k);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++)
                acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            float s = hsum8(acc[r][t]);
            for (int64_t kk = k; kk < K; kk++)
                s += _cvtsh_ss(w[r * K + kk]) * x[t][kk];
            out[r * NT + t] = s;
        }
}

#define F16_CASE(R, NT)                                                                            \
    case (R)*8 + (NT): f16_mk(w, K, x, R, NT, out); break;

static void f16_block(const uint16_t *w, int64_t K, const float *const *x, int R, int NT,
                      float *out)
{
    switch (R * 8 + NT) {
        F16_CASE(2, 1)
        F16_CASE(2, 2)
        F16_CASE(2, 3)
        F16_CASE(2, 4)
        F16_CASE(1, 1)
        F16_CASE(1, 2)
        F16_CASE(1, 3)
        F16_CASE(1, 4)
    default: /* not used */
        for (int r = 0; r < R; r++)
            f16_block(w + r * K, K, x, 1, NT, out + r * NT);
    }
}

/* T = 1: W row · x, one row at a time, one 64-byte line per iteration into
 * four accumulators. A thread reads its rows as one sequential stream:
 * measured on Zen 4 (examples/bench/RESULTS.md), this reads 2x faster from
 * DRAM than interleaving 4 or 8 rows (4 or 8 streams 2K bytes apart, which
 * the hardware prefetcher follows worse), and software prefetch did not help. */
static float f16_row1(const uint16_t *w, int64_t K, const float *x)
{
    __m256 acc[4];
#pragma GCC unroll 4
    for (int a = 0; a < 4; a++)
        acc[a] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= K; k += 32)
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            acc[u] =
                _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + k + 8 * u))),
                                _mm256_loadu_ps(x + k + 8 * u), acc[u]);
    for (; k + 8 <= K; k += 8)
        acc[0] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + k))),
                                 _mm256_loadu_ps(x + k), acc[0]);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; k < K; k++)
        s += _cvtsh_ss(w[k]) * x[k];
    return s;
}

int vrt__cpu_matmul_f16_avx2(int threads, float *y, const float *x, const vrt_weight *W,
                             const float *bias, int T, vrt_err *err)
{
    const int64_t N = W->rows, K = W->cols;
    const uint16_t *w = W->data;
    const int RB = 2; /* rows per block at T > 1 */
    const int64_t nrb = (N + RB - 1) / RB;
#pragma omp parallel num_threads(threads) if ((double)T * N * K > 65536.0)
    {
        if (T == 1) {
            int64_t n0, n1;
            thread_range(N, &n0, &n1);
            for (int64_t n = n0; n < n1; n++)
                y[n] = f16_row1(w + n * K, K, x) + (bias ? bias[n] : 0.0f);
        } else {
            int64_t rb0, rb1;
            thread_range(nrb, &rb0, &rb1);
            for (int tt = 0; tt < T; tt += MT) {
                const int tend = T - tt < MT ? T : tt + MT;
                for (int64_t rb = rb0; rb < rb1; rb++) {
                    const int64_t n = rb * RB;
                    const int R = N - n < RB ? (int)(N - n) : RB;
                    for (int t0 = tt; t0 < tend; t0 += 4) {
                        const int NT = tend - t0 < 4 ? tend - t0 : 4;
                        const float *xr[4];
                        float out[16];
                        for (int t = 0; t < NT; t++)
                            xr[t] = x + (int64_t)(t0 + t) * K;
                        if (R == RB)
                            f16_block(w + n * K, K, xr, R, NT, out);
                        else /* the last < RB rows, one at a time */
                            for (int r = 0; r < R; r++)
                                f16_block(w + (n + r) * K, K, xr, 1, NT, out + r * NT);
                        for (int r = 0; r < R; r++)
                            for (int t = 0; t < NT; t++)
                                y[(int64_t)(t0 + t) * N + n + r] =
                                    out[r * NT + t] + (bias ? bias[n + r] : 0.0f);
                    }
                }
            }
        }
    }
    (void)err;
    return 0;
}

/* ---- int4 ---- */

typedef struct q4g {
    int64_t K, Kp, G, bpg, nblk, wpr;
    int ng;
} q4g;

/* Token t's activations in the kernel's order (see the top of the file) and
 * its per-group sums. */
static void q4_gather(float *xs, float *xsum, const float *x, const int32_t *perm, const q4g *g)
{
    for (int gi = 0; gi < g->ng; gi++) {
        int64_t b0 = gi * g->bpg, b1 = b0 + g->bpg < g->nblk ? b0 + g->bpg : g->nblk;
        float sum = 0;
        for (int64_t b = b0; b < b1; b += 2) {
            const int lanes = b + 1 < b1 ? 8 : 4; /* a pair of blocks, or the last one */
            for (int l = 0; l < lanes; l++)
                for (int j = 0; j < 8; j++) {
                    int64_t k = 32 * b + 8 * l + j;
                    float v = k < g->K ? x[perm ? perm[k] : k] : 0.0f;
                    sum += v;
                    xs[32 * b + lanes * j + l] = j < 7 ? v * (1.0f / (float)(1 << (4 * j))) : v;
                }
        }
        xsum[gi] = sum;
    }
}

/* out[t] for one row (words q, scales s, zeros z) and NT tokens. A: the
 * accumulators per token (more when there are fewer tokens, so that the
 * FMA chains overlap). */
AI void q4_mk(const uint32_t *q, const uint16_t *s, const uint16_t *z, const float *const *xs,
              const float *const *xsum, const q4g *g, const int NT, float *out)
{
    enum { A = 4 };
    const int na = NT == 1 ? 4 : NT == 2 ? 2 : 1;
    __m256 fa[4];
    float zc[4];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        fa[t] = _mm256_setzero_ps(), zc[t] = 0;
    for (int gi = 0; gi < g->ng; gi++) {
        const int64_t b0 = gi * g->bpg, b1 = b0 + g->bpg < g->nblk ? b0 + g->bpg : g->nblk;
        __m256 ga[4][A];
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++)
#pragma GCC unroll 8
            for (int a = 0; a < na; a++)
                ga[t][a] = _mm256_setzero_ps();
        int64_t b = b0;
        for (; b + 2 <= b1; b += 2) {
            const __m256i wv = _mm256_loadu_si256((const __m256i *)(q + 4 * b));
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                __m256i qi = j < 7 ? _mm256_and_si256(wv, _mm256_set1_epi32(15 << (4 * j)))
                                   : _mm256_srli_epi32(wv, 28);
                __m256 qf = _mm256_cvtepi32_ps(qi);
#pragma GCC unroll 8
                for (int t = 0; t < NT; t++)
                    ga[t][j % na] =
                        _mm256_fmadd_ps(qf, _mm256_loadu_ps(xs[t] + 32 * b + 8 * j), ga[t][j % na]);
            }
        }
        if (b < b1) { /* the group's last block, alone: 4 lanes */
            const __m128i wv = _mm_loadu_si128((const __m128i *)(q + 4 * b));
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                __m128i qi = j < 7 ? _mm_and_si128(wv, _mm_set1_epi32(15 << (4 * j)))
                                   : _mm_srli_epi32(wv, 28);
                __m256 qf = _mm256_zextps128_ps256(_mm_cvtepi32_ps(qi));
#pragma GCC unroll 8
                for (int t = 0; t < NT; t++)
                    ga[t][j % na] = _mm256_fmadd_ps(
                        qf, _mm256_zextps128_ps256(_mm_loadu_ps(xs[t] + 32 * b + 4 * j)),
                        ga[t][j % na]);
            }
        }
        const float sg = _cvtsh_ss(s[gi]), zg = _cvtsh_ss(z[gi]);
        const __m256 sv = _mm256_set1_ps(sg);
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            __m256 d = ga[t][0];
#pragma GCC unroll 8
            for (int a = 1; a < na; a++)
                d = _mm256_add_ps(d, ga[t][a]);
            fa[t] = _mm256_fmadd_ps(sv, d, fa[t]);
            zc[t] += sg * zg * xsum[t][gi];
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        out[t] = hsum8(fa[t]) - zc[t];
}

static void q4_row(const uint32_t *q, const uint16_t *s, const uint16_t *z, const float *const *xs,
                   const float *const *xsum, const q4g *g, int NT, float *out)
{
    switch (NT) {
    case 1: q4_mk(q, s, z, xs, xsum, g, 1, out); break;
    case 2: q4_mk(q, s, z, xs, xsum, g, 2, out); break;
    case 3: q4_mk(q, s, z, xs, xsum, g, 3, out); break;
    default: q4_mk(q, s, z, xs, xsum, g, 4, out); break;
    }
}

int vrt__cpu_matmul_q4_avx2(int threads, float *y, const float *x, const vrt_weight *W,
                            const float *bias, int T, vrt_err *err)
{
    const vrt_q4 *q = W->q4;
    q4g g = {.K = W->cols, .ng = q->n_groups};
    g.Kp = (g.K + VRT_Q4_KBLOCK - 1) / VRT_Q4_KBLOCK * VRT_Q4_KBLOCK;
    g.nblk = g.Kp / 32;
    g.G = q->group_size >= g.K ? g.Kp : q->group_size;
    g.bpg = g.G / 32;
    g.wpr = g.Kp / 8;
    const int64_t N = W->rows, per_tok = g.Kp + g.ng;
    float *buf = aligned_alloc(32, (size_t)(((int64_t)T * per_tok * 4 + 31) / 32 * 32));
    if (!buf)
        return vrt_err_set(err, VRT_ENOMEM,
                           "matmul: out of memory for the gathered activations (%lld bytes)",
                           (long long)((int64_t)T * per_tok * 4));
    const double work = (double)T * N * g.K;
#pragma omp parallel num_threads(threads) if (work > 65536.0)
    {
#pragma omp for schedule(static)
        for (int t = 0; t < T; t++)
            q4_gather(buf + (int64_t)t * per_tok, buf + (int64_t)t * per_tok + g.Kp,
                      x + (int64_t)t * g.K, q->perm, &g);
        int64_t n0, n1;
        thread_range(N, &n0, &n1);
        for (int tt = 0; tt < T; tt += MT) {
            const int tend = T - tt < MT ? T : tt + MT;
            for (int64_t n = n0; n < n1; n++) {
                const uint32_t *qr = q->qweight + n * g.wpr;
                const uint16_t *sr = q->scales + n * g.ng, *zr = q->zeros + n * g.ng;
                for (int t0 = tt; t0 < tend; t0 += 4) {
                    const int NT = tend - t0 < 4 ? tend - t0 : 4;
                    const float *xs[4], *xsum[4];
                    float out[4];
                    for (int t = 0; t < NT; t++) {
                        xs[t] = buf + (int64_t)(t0 + t) * per_tok;
                        xsum[t] = xs[t] + g.Kp;
                    }
                    q4_row(qr, sr, zr, xs, xsum, &g, NT, out);
                    for (int t = 0; t < NT; t++)
                        y[(int64_t)(t0 + t) * N + n] = out[t] + (bias ? bias[n] : 0.0f);
                }
            }
        }
    }
    free(buf);
    return 0;
}

#else /* no AVX2 in this build (another architecture or compiler) */

const int vrt__cpu_avx2_built = 0;

int vrt__cpu_matmul_f16_avx2(int threads, float *y, const float *x, const vrt_weight *W,
                             const float *bias, int T, vrt_err *err)
{
    return vrt_err_set(err, VRT_EUNSUPPORTED, "matmul: this build has no AVX2 kernels");
}

int vrt__cpu_matmul_q4_avx2(int threads, float *y, const float *x, const vrt_weight *W,
                            const float *bias, int T, vrt_err *err)
{
    return vrt_err_set(err, VRT_EUNSUPPORTED, "matmul: this build has no AVX2 kernels");
}

#endif
