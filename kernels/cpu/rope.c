/* rope.c — CPU rotary position embedding, in place, both pairings, partial rotary.
 *
 * For each token the cos/sin table of its position is computed once (in
 * double: pos * inv_freq reaches thousands of radians, where an f32 angle
 * would already be off by ~1e-4) and applied to every head. Interleaved
 * (GPT-J) rotates pairs (2i, 2i+1); rotate-half (Llama/NeoX) rotates pairs
 * (i, i + rot_dim/2). Dims past rot_dim are left untouched.
 */
#include "cpu/cpu.h"

#include "core/err.h"

#include <math.h>

int vrt__cpu_rope(vrt_backend *b, float *x, const int32_t *pos, int T, int n_heads, int head_dim,
                  int rot_dim, int interleaved, const float *inv_freq, vrt_err *err)
{
    /* Kept here although the front checks it: cs/sn below are stack arrays
     * of VRT_CPU_MAX_HEAD_DIM / 2, and a model's head_dim is not bounded
     * before it reaches the kernel. */
    if (head_dim > VRT_CPU_MAX_HEAD_DIM)
        return vrt_err_set(err, VRT_EINVAL, "rope: head_dim = %d (the cpu backend allows 1..%d)",
                           head_dim, VRT_CPU_MAX_HEAD_DIM);
    const int half = rot_dim / 2;
    const int nt = vrt__cpu_threads(b);
#pragma omp parallel for num_threads(nt) if ((int64_t)T * n_heads * rot_dim > 16384)               \
    schedule(static)
    for (int t = 0; t < T; t++) {
        float cs[VRT_CPU_MAX_HEAD_DIM / 2], sn[VRT_CPU_MAX_HEAD_DIM / 2];
        for (int i = 0; i < half; i++) {
            double a = (double)pos[t] * (double)inv_freq[i];
            cs[i] = (float)cos(a);
            sn[i] = (float)sin(a);
        }
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((int64_t)t * n_heads + h) * head_dim;
            if (interleaved) {
                for (int i = 0; i < half; i++) {
                    float x0 = v[2 * i], x1 = v[2 * i + 1];
                    v[2 * i] = x0 * cs[i] - x1 * sn[i];
                    v[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
                }
            } else {
                for (int i = 0; i < half; i++) {
                    float x0 = v[i], x1 = v[i + half];
                    v[i] = x0 * cs[i] - x1 * sn[i];
                    v[i + half] = x0 * sn[i] + x1 * cs[i];
                }
            }
        }
    }
    return 0;
}
