/* attn_avx2.c — one (query token, head) of paged causal attention with AVX2, FMA and F16C.
 *
 * The same walk as attend_one in attn.c (chunks of VRT_CPU_ATT_CHUNK
 * keys through the block table, streaming softmax), with the fp16 keys and
 * values converted 8 at a time (vcvtph2ps) and the dot products and the
 * value accumulation in 8-wide FMAs; a head_dim that is no multiple of 8
 * ends in scalar code. Compiled with -mavx2 -mfma -mf16c (Makefile) and
 * called only at VRT_CPU_ISA_AVX2 (attn.c).
 */
#include "cpu/cpu.h"

#include <math.h>

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 ld16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

void vrt__cpu_attend_one_avx2(float *o, const float *qv, const uint16_t *k_cache,
                              const uint16_t *v_cache, const vrt_attn_batch *a, int s, int p,
                              int kvh)
{
    const int hd = a->head_dim, bs = a->block_size, hd8 = hd / 8 * 8;
    const int64_t row = (int64_t)a->n_kv_heads * hd;
    const int32_t *table = a->block_table + (int64_t)s * a->max_blocks_per_seq;
    float qs[VRT_CPU_MAX_HEAD_DIM], acc[VRT_CPU_MAX_HEAD_DIM], sc[VRT_CPU_ATT_CHUNK];
    int64_t off[VRT_CPU_ATT_CHUNK];
    for (int d = 0; d < hd; d++) {
        qs[d] = qv[d] * a->scale;
        acc[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    int lo = 0;
    if (a->sliding_window > 0 && p - a->sliding_window + 1 > 0)
        lo = p - a->sliding_window + 1;
    for (int k0 = lo; k0 <= p; k0 += VRT_CPU_ATT_CHUNK) {
        int n = p + 1 - k0 < VRT_CPU_ATT_CHUNK ? p + 1 - k0 : VRT_CPU_ATT_CHUNK;
        float cmax = -INFINITY;
        for (int i = 0; i < n; i++) {
            int k = k0 + i;
            int64_t slot = (int64_t)table[k / bs] * bs + k % bs;
            off[i] = slot * row + (int64_t)kvh * hd;
            const uint16_t *kr = k_cache + off[i];
            __m256 d0 = _mm256_setzero_ps(), d1 = _mm256_setzero_ps();
            int d = 0;
            for (; d + 16 <= hd8; d += 16) {
                d0 = _mm256_fmadd_ps(_mm256_loadu_ps(qs + d), ld16(kr + d), d0);
                d1 = _mm256_fmadd_ps(_mm256_loadu_ps(qs + d + 8), ld16(kr + d + 8), d1);
            }
            if (d < hd8)
                d0 = _mm256_fmadd_ps(_mm256_loadu_ps(qs + d), ld16(kr + d), d0);
            float dot = hsum8(_mm256_add_ps(d0, d1));
            for (d = hd8; d < hd; d++)
                dot += qs[d] * _cvtsh_ss(kr[d]);
            sc[i] = dot;
            cmax = dot > cmax ? dot : cmax;
        }
        if (cmax > m) {                  /* rescale what was accumulated under the old max */
            float corr = expf(m - cmax); /* exp(-inf) = 0 on the first chunk */
            l *= corr;
            for (int d = 0; d < hd; d++)
                acc[d] *= corr;
            m = cmax;
        }
        for (int i = 0; i < n; i++) {
            const float w = expf(sc[i] - m);
            const __m256 wv = _mm256_set1_ps(w);
            const uint16_t *vr = v_cache + off[i];
            l += w;
            int d = 0;
            for (; d < hd8; d += 8)
                _mm256_storeu_ps(acc + d,
                                 _mm256_fmadd_ps(wv, ld16(vr + d), _mm256_loadu_ps(acc + d)));
            for (; d < hd; d++)
                acc[d] += w * _cvtsh_ss(vr[d]);
        }
    }
    float inv = 1.0f / l;
    for (int d = 0; d < hd; d++)
        o[d] = acc[d] * inv;
}

#else /* no AVX2 in this build: never called (isa.c does not pick the level) */

void vrt__cpu_attend_one_avx2(float *o, const float *qv, const uint16_t *k_cache,
                              const uint16_t *v_cache, const vrt_attn_batch *a, int s, int p,
                              int kvh)
{
    (void)o, (void)qv, (void)k_cache, (void)v_cache, (void)a, (void)s, (void)p, (void)kvh;
}

#endif
