/* common.cuh — what every kernels/cuda/<op>.cu includes: the two-way dialect.
 *
 * The same source compiles with nvcc (the real cuda backend) and with g++
 * plus kernels/emu/cuda_emu.h (the cuda-emu backend, which runs the kernels
 * on the CPU). The differences are hidden here:
 *   VRT_LAUNCH(kernel, grid, block, smem, stream, args...)  launch (never <<<>>>)
 *   VRT_SHARED(type, name, count)  a static __shared__ array; `name` is a
 *                                  pointer under emu, so never take sizeof(name)
 *   vrt_dyn_smem<T>()              the dynamic shared memory (extern __shared__)
 * and the block reductions every op family uses.
 */
#ifndef VRT_CUDA_COMMON_CUH
#define VRT_CUDA_COMMON_CUH

#ifdef __CUDACC__
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#define VRT_LAUNCH(kernel, grid, block, smem, stream, ...)                                         \
    kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#define VRT_SHARED(type, name, count) __shared__ type name[(count)]
template <class T> __device__ __forceinline__ T *vrt_dyn_smem()
{
    extern __shared__ __align__(16) unsigned char vrt_dyn_smem_buf[];
    return reinterpret_cast<T *>(vrt_dyn_smem_buf);
}
#else
#ifndef VRT_CUDA_EMU
#error "compile kernels/cuda/<op>.cu with nvcc, or with g++ -include kernels/emu/cuda_emu.h"
#endif
#define VRT_LAUNCH(kernel, grid, block, smem, stream, ...)                                         \
    vrt_emu::launch_lambda(#kernel, dim3(grid), dim3(block), (size_t)(smem), (stream),             \
                           [=]() { kernel(__VA_ARGS__); })
#define VRT_SHARED(type, name, count)                                                              \
    static const int name##_vrt_site = vrt_emu::site_new();                                        \
    type *const name = static_cast<type *>(                                                        \
        vrt_emu::static_smem(name##_vrt_site, sizeof(type) * (size_t)(count), alignof(type)))
template <class T> static inline T *vrt_dyn_smem()
{
    return static_cast<T *>(vrt_emu::dyn_smem());
}
#endif

#include "cuda/kernels.h"

#define VRT_FULL_MASK 0xffffffffu

/* Sum over the 32 lanes of a warp; every lane gets the total. */
__device__ __forceinline__ float vrt_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(VRT_FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float vrt_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(VRT_FULL_MASK, v, o));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets the total. Ends with a barrier, so it can be called again
 * right away (the scratch is reused). */
__device__ __forceinline__ float vrt_block_sum(float v)
{
    VRT_SHARED(float, part, 32);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = vrt_warp_sum(v);
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    v = lane < nw ? part[lane] : 0.0f;
    v = vrt_warp_sum(v);
    __syncthreads();
    return v;
}

__device__ __forceinline__ float vrt_block_max(float v)
{
    VRT_SHARED(float, part, 32);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = vrt_warp_max(v);
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    v = lane < nw ? part[lane] : -INFINITY;
    v = vrt_warp_max(v);
    __syncthreads();
    return v;
}

/* Loads element i of a weight stored as f32 or f16 (dtype VRT_DT_*). */
__device__ __forceinline__ float vrt_wload(const void *w, int dtype, int64_t i)
{
    if (dtype == 1)
        return __half2float(reinterpret_cast<const __half *>(w)[i]);
    return reinterpret_cast<const float *>(w)[i];
}

/* Grid size for n items at `per_block` items per block, capped for the
 * grid-stride loops. */
inline unsigned vrt_grid_1d(int64_t n, int per_block)
{
    int64_t g = (n + per_block - 1) / per_block;
    if (g < 1)
        g = 1;
    return (unsigned)(g > 65535 ? 65535 : g);
}

#endif
