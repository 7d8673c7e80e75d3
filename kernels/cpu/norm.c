/* norm.c — CPU RMSNorm and LayerNorm.
 *
 * Both work one token (row) at a time, parallel over tokens. Weights
 * may be f32 or f16; f16 values are converted as they are read. Sums are
 * f32 with OpenMP SIMD reductions (several partial sums, which also keeps
 * the rounding error small).
 */
#include "cpu/cpu.h"

#include "backend/half.h"
#include "core/err.h"

#include <math.h>

/* Loads w[i] as f32 whatever its dtype (f32 or f16). */
static inline float wget(const vrt_weight *w, int64_t i)
{
    if (w->dtype == VRT_DT_F16)
        return vrt_f16_to_f32(((const uint16_t *)w->data)[i]);
    return ((const float *)w->data)[i];
}

int vrt__cpu_rmsnorm(vrt_backend *b, float *out, const float *x, const vrt_weight *w, int T, int D,
                     float eps, float w_offset, vrt_err *err)
{
    const int nt = vrt__cpu_threads(b);
#pragma omp parallel for num_threads(nt) if ((int64_t)T * D > 32768) schedule(static)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (int64_t)t * D;
        float *o = out + (int64_t)t * D;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int i = 0; i < D; i++)
            ss += xr[i] * xr[i];
        float inv = 1.0f / sqrtf(ss / (float)D + eps);
        if (w->dtype == VRT_DT_F16) {
            const uint16_t *wh = w->data;
            for (int i = 0; i < D; i++)
                o[i] = xr[i] * inv * (vrt_f16_to_f32(wh[i]) + w_offset);
        } else {
            const float *wf = w->data;
            for (int i = 0; i < D; i++)
                o[i] = xr[i] * inv * (wf[i] + w_offset);
        }
    }
    return 0;
}

int vrt__cpu_layernorm(vrt_backend *b, float *out, const float *x, const vrt_weight *w,
                       const vrt_weight *bias, int T, int D, float eps, vrt_err *err)
{
    const int nt = vrt__cpu_threads(b);
#pragma omp parallel for num_threads(nt) if ((int64_t)T * D > 32768) schedule(static)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (int64_t)t * D;
        float *o = out + (int64_t)t * D;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < D; i++)
            s += xr[i];
        float mean = s / (float)D;
        /* Two passes (mean, then squared deviations) instead of E[x²]-E[x]²,
         * which cancels badly when |mean| is large. */
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int i = 0; i < D; i++)
            v += (xr[i] - mean) * (xr[i] - mean);
        float inv = 1.0f / sqrtf(v / (float)D + eps);
        for (int i = 0; i < D; i++) {
            float y = (xr[i] - mean) * inv * wget(w, i);
            o[i] = bias ? y + wget(bias, i) : y;
        }
    }
    return 0;
}
