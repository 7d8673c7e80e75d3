/* rope.cu — rotary position embedding in place: both pairings, partial rotary.
 *
 * One block per token: its threads first compute the cos/sin table of the
 * token's position into shared memory (in double, as the CPU backend: an
 * f32 angle at position ~4000 is already off by ~1e-4 rad), then rotate
 * every head's first rot_dim dims. Interleaved (GPT-J) pairs (2i, 2i+1),
 * rotate-half (Llama/NeoX) pairs (i, i + rot_dim/2).
 */
#include "cuda/common.cuh"

#define ROPE_THREADS 128

__global__ void rope_kernel(float *x, const int32_t *pos, int n_heads, int head_dim, int rot_dim,
                            int interleaved, const float *inv_freq)
{
    const int t = blockIdx.x, hrot = rot_dim / 2;
    float *cs = vrt_dyn_smem<float>(); /* [hrot] */
    float *sn = cs + hrot;             /* [hrot] */
    for (int i = threadIdx.x; i < hrot; i += blockDim.x) {
        double c, s;
        sincos((double)pos[t] * (double)inv_freq[i], &s, &c);
        cs[i] = (float)c;
        sn[i] = (float)s;
    }
    __syncthreads();
    for (int j = threadIdx.x; j < n_heads * hrot; j += blockDim.x) {
        const int h = j / hrot, i = j % hrot;
        float *v = x + ((int64_t)t * n_heads + h) * head_dim;
        const int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + hrot;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs[i] - x1 * sn[i];
        v[b] = x0 * sn[i] + x1 * cs[i];
    }
}

extern "C" int vrt_cuda_rope(float *x, const int32_t *pos, int T, int n_heads, int head_dim,
                             int rot_dim, int interleaved, const float *inv_freq, void *stream)
{
    if (T <= 0 || rot_dim <= 0)
        return 0;
    VRT_LAUNCH(rope_kernel, (unsigned)T, ROPE_THREADS, sizeof(float) * rot_dim,
               (cudaStream_t)stream, x, pos, n_heads, head_dim, rot_dim, interleaved, inv_freq);
    return (int)cudaGetLastError();
}
