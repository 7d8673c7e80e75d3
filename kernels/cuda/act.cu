/* act.cu — element-wise ops: silu·mul, gelu·mul, gelu, residual add.
 *
 * Grid-stride loops over n, one element per thread per step; the formulas
 * are the CPU backend's (kernels/cpu/act.c) in f32: exact erf GELU or the
 * tanh approximation. Outputs may alias inputs.
 */
#include "cuda/common.cuh"

#define ACT_THREADS 256

__device__ __forceinline__ float act_silu(float g)
{
    return g / (1.0f + expf(-g));
}

__device__ __forceinline__ float act_gelu(float g, int tanh_approx)
{
    if (tanh_approx) {
        const float k = 0.7978845608028654f; /* sqrt(2/pi) */
        return 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
    }
    return 0.5f * g * (1.0f + erff(g * 0.7071067811865476f));
}

enum { ACT_SILU_MUL, ACT_GELU_MUL, ACT_GELU, ACT_ADD };

/* out[i] = f(a[i], c[i]) for the op `kind` (c unused by gelu). */
__global__ void act_kernel(float *out, const float *a, const float *c, int64_t n, int kind,
                           int tanh_approx)
{
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float x = a[i], r;
        switch (kind) {
        case ACT_SILU_MUL: r = act_silu(x) * c[i]; break;
        case ACT_GELU_MUL: r = act_gelu(x, tanh_approx) * c[i]; break;
        case ACT_GELU: r = act_gelu(x, tanh_approx); break;
        default: r = x + c[i]; break;
        }
        out[i] = r;
    }
}

static int act_launch(float *out, const float *a, const float *c, int64_t n, int kind,
                      int tanh_approx, void *stream)
{
    if (n <= 0)
        return 0;
    /* At most 1024 blocks: the grid-stride loop covers the rest (and keeps
     * the emulator's fiber count bounded). */
    unsigned g = vrt_grid_1d(n, ACT_THREADS);
    if (g > 1024)
        g = 1024;
    VRT_LAUNCH(act_kernel, g, ACT_THREADS, 0, (cudaStream_t)stream, out, a, c, n, kind,
               tanh_approx);
    return (int)cudaGetLastError();
}

extern "C" int vrt_cuda_silu_mul(float *out, const float *gate, const float *up, int64_t n,
                                 void *stream)
{
    return act_launch(out, gate, up, n, ACT_SILU_MUL, 0, stream);
}

extern "C" int vrt_cuda_gelu_mul(float *out, const float *gate, const float *up, int64_t n,
                                 int tanh_approx, void *stream)
{
    return act_launch(out, gate, up, n, ACT_GELU_MUL, tanh_approx, stream);
}

extern "C" int vrt_cuda_gelu(float *out, const float *x, int64_t n, int tanh_approx, void *stream)
{
    return act_launch(out, x, x, n, ACT_GELU, tanh_approx, stream);
}

extern "C" int vrt_cuda_add(float *out, const float *a, const float *c, int64_t n, void *stream)
{
    return act_launch(out, a, c, n, ACT_ADD, 0, stream);
}
