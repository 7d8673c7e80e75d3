/* emu_probe.cu — small kernels that test the CUDA emulator itself (tests/unit/test_emu.c).
 *
 * Compiled like kernels/cuda/<op>.cu (g++ with kernels/emu/cuda_emu.h) and
 * linked into the unit tests only. Each probe launches one kernel and
 * returns the launch status; test_emu.c checks the results. probe_block_sum
 * is a copy of the block reduction of kernels/cuda/common.cuh used by
 * rmsnorm, with a switch that drops its first __syncthreads — the "test the
 * test" case: under the shuffled fiber order it must give wrong sums.
 */
#include "cuda/common.cuh"

/* ---- missing barrier ---- */

__device__ float probe_block_sum(float v, int with_barrier)
{
    VRT_SHARED(float, part, 32);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = vrt_warp_sum(v);
    if (lane == 0)
        part[warp] = v;
    if (with_barrier)
        __syncthreads(); /* the barrier under test */
    v = lane < nw ? part[lane] : 0.0f;
    v = vrt_warp_sum(v);
    __syncthreads();
    return v;
}

__global__ void probe_block_sum_kernel(float *out, const float *x, int D, int with_barrier)
{
    const float *xr = x + (int64_t)blockIdx.x * D;
    float s = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        s += xr[i];
    s = probe_block_sum(s, with_barrier);
    if (threadIdx.x == 0)
        out[blockIdx.x] = s;
}

extern "C" int vrt_probe_block_sum(float *out, const float *x, int rows, int D, int threads,
                                   int with_barrier)
{
    VRT_LAUNCH(probe_block_sum_kernel, (unsigned)rows, (unsigned)threads, 0, (cudaStream_t)0, out,
               x, D, with_barrier);
    return (int)cudaGetLastError();
}

/* ---- barrier: each thread reads its neighbour's shared slot ---- */

__global__ void probe_barrier_kernel(int *out)
{
    int *s = vrt_dyn_smem<int>();
    const int n = blockDim.x, t = threadIdx.x;
    s[t] = 1000 * (int)blockIdx.x + t;
    __syncthreads();
    int v = s[(t + 1) % n];
    __syncthreads();
    s[t] = v * 2; /* rewritten after everyone read: the second barrier */
    __syncthreads();
    out[blockIdx.x * n + t] = s[(t + n - 1) % n];
}

extern "C" int vrt_probe_barrier(int *out, int blocks, int threads)
{
    VRT_LAUNCH(probe_barrier_kernel, (unsigned)blocks, (unsigned)threads, sizeof(int) * threads,
               (cudaStream_t)0, out);
    return (int)cudaGetLastError();
}

/* ---- warp shuffles and votes: out[k][64] per probe k ---- */

__global__ void probe_warp_kernel(int *out)
{
    const int t = threadIdx.x, lane = t % 32;
    int *o = out + t; /* out[k * blockDim.x + t] */
    const int n = blockDim.x;
    o[0 * n] = __shfl_sync(VRT_FULL_MASK, 100 + t, 3);
    o[1 * n] = __shfl_xor_sync(VRT_FULL_MASK, 100 + t, 5);
    o[2 * n] = __shfl_down_sync(VRT_FULL_MASK, 100 + t, 4);
    o[3 * n] = __shfl_up_sync(VRT_FULL_MASK, 100 + t, 2, 16);
    o[4 * n] = __shfl_sync(VRT_FULL_MASK, 100 + t, 1, 8);
    o[5 * n] = __any_sync(VRT_FULL_MASK, lane == 7);
    o[6 * n] = __all_sync(VRT_FULL_MASK, lane < 31);
    o[7 * n] = (int)__ballot_sync(VRT_FULL_MASK, lane % 3 == 0);
    o[8 * n] = (int)vrt_warp_sum((float)lane);
    /* A float through a shuffle keeps its bits. */
    o[9 * n] = __shfl_xor_sync(VRT_FULL_MASK, 0.25f + (float)lane, 1) == 0.25f + (float)(lane ^ 1);
    /* Half the warp shuffles among itself (mask of the lower 16 lanes). */
    if (lane < 16)
        o[10 * n] = __shfl_down_sync(0x0000ffffu, lane, 1, 16);
    else
        o[10 * n] = -1;
}

extern "C" int vrt_probe_warp(int *out, int threads)
{
    VRT_LAUNCH(probe_warp_kernel, 1, (unsigned)threads, 0, (cudaStream_t)0, out);
    return (int)cudaGetLastError();
}

/* ---- static shared memory is per block ---- */

__global__ void probe_smem_kernel(int *out)
{
    VRT_SHARED(int, mine, 1);
    if (threadIdx.x == 0)
        mine[0] = (int)blockIdx.x;
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = mine[0];
}

extern "C" int vrt_probe_smem(int *out, int blocks, int threads)
{
    VRT_LAUNCH(probe_smem_kernel, (unsigned)blocks, (unsigned)threads, 0, (cudaStream_t)0, out);
    return (int)cudaGetLastError();
}

/* ---- atomics ---- */

__global__ void probe_atomic_kernel(float *fsum, int *isum)
{
    atomicAdd(fsum, 0.5f);
    atomicAdd(isum, (int)threadIdx.x);
}

extern "C" int vrt_probe_atomics(float *fsum, int *isum, int blocks, int threads)
{
    VRT_LAUNCH(probe_atomic_kernel, (unsigned)blocks, (unsigned)threads, 0, (cudaStream_t)0, fsum,
               isum);
    return (int)cudaGetLastError();
}

/* ---- half: f16 -> f32 -> f16 for the given bit patterns, and half2 ---- */

__global__ void probe_half_kernel(uint16_t *out, const uint16_t *in, int n, float *pair)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        out[i] = __half_as_ushort(__float2half(__half2float(__ushort_as_half(in[i]))));
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        __half2 h = __halves2half2(__float2half(1.5f), __float2half(-2.25f));
        pair[0] = __low2float(h);
        pair[1] = __high2float(h);
        pair[2] = __half2float(__float2half(1.0f + 1.0f / 2048)); /* tie: to even, 1.0 */
        pair[3] = __half2float(__float2half(70000.0f));           /* overflow: inf */
        pair[4] = __half2float(__hadd(__float2half(1.0f), __float2half(0.5f)));
    }
}

extern "C" int vrt_probe_half(uint16_t *out, const uint16_t *in, int n, float *pair)
{
    VRT_LAUNCH(probe_half_kernel, 64, 256, 0, (cudaStream_t)0, out, in, n, pair);
    return (int)cudaGetLastError();
}

/* ---- a deadlock: lane 0 waits at the block barrier, its warp at a shuffle ---- */

__global__ void probe_deadlock_kernel(int *out)
{
    if (threadIdx.x == 0)
        __syncthreads();
    else
        out[threadIdx.x] = __shfl_sync(VRT_FULL_MASK, (int)threadIdx.x, 0);
}

extern "C" int vrt_probe_deadlock(int *out)
{
    VRT_LAUNCH(probe_deadlock_kernel, 1, 32, 0, (cudaStream_t)0, out);
    return (int)cudaGetLastError();
}

/* ---- the order threads run in (no barrier): must not be 0, 1, 2, ... ---- */

__global__ void probe_order_kernel(int *order, int *next)
{
    order[atomicAdd(next, 1)] = (int)threadIdx.x;
}

extern "C" int vrt_probe_order(int *order, int *next, int threads)
{
    VRT_LAUNCH(probe_order_kernel, 1, (unsigned)threads, 0, (cudaStream_t)0, order, next);
    return (int)cudaGetLastError();
}

/* ---- a bad launch configuration ---- */

extern "C" int vrt_probe_bad_launch(int *out)
{
    VRT_LAUNCH(probe_smem_kernel, 1, 2048, 0, (cudaStream_t)0, out);
    return (int)cudaGetLastError();
}
