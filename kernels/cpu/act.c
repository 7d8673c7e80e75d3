/* act.c — CPU element-wise ops: silu·mul, gelu·mul, gelu, add.
 *
 * Flat loops over n elements, parallel over chunks. GELU comes in the exact
 * form 0.5·x·(1 + erf(x/√2)) and the tanh approximation
 * 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) that GPT-2/phi/Gemma use.
 * Outputs may alias inputs (each element is read before it is written).
 */
#include "cpu/cpu.h"

#include "core/err.h"

#include <math.h>

#define ACT_PAR_MIN 65536 /* below this many elements one thread is faster */

static inline float silu(float g)
{
    return g / (1.0f + expf(-g));
}

static inline float gelu1(float g, int tanh_approx)
{
    if (tanh_approx) {
        const float k = 0.7978845608028654f; /* sqrt(2/pi) */
        return 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
    }
    return 0.5f * g * (1.0f + erff(g * 0.7071067811865476f));
}

int vrt__cpu_silu_mul(vrt_backend *b, float *out, const float *gate, const float *up, int64_t n,
                      vrt_err *err)
{
    const int nt = vrt__cpu_threads(b);
#pragma omp parallel for num_threads(nt) if (n > ACT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        out[i] = silu(gate[i]) * up[i];
    return 0;
}

int vrt__cpu_gelu_mul(vrt_backend *b, float *out, const float *gate, const float *up, int64_t n,
                      int tanh_approx, vrt_err *err)
{
    const int nt = vrt__cpu_threads(b);
#pragma omp parallel for num_threads(nt) if (n > ACT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        out[i] = gelu1(gate[i], tanh_approx) * up[i];
    return 0;
}

int vrt__cpu_gelu(vrt_backend *b, float *out, const float *x, int64_t n, int tanh_approx,
                  vrt_err *err)
{
    const int nt = vrt__cpu_threads(b);
#pragma omp parallel for num_threads(nt) if (n > ACT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        out[i] = gelu1(x[i], tanh_approx);
    return 0;
}

int vrt__cpu_add(vrt_backend *b, float *out, const float *a, const float *c, int64_t n,
                 vrt_err *err)
{
    const int nt = vrt__cpu_threads(b);
#pragma omp parallel for simd num_threads(nt) if (n > ACT_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] + c[i];
    return 0;
}
