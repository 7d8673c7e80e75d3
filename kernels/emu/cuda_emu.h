/* cuda_emu.h — the CUDA dialect of kernels/cuda/<op>.cu, emulated in C++17 on the CPU.
 *
 * The Makefile compiles every kernels/cuda/<op>.cu with g++ and
 * `-include kernels/emu/cuda_emu.h`, which turns the CUDA keywords into
 * plain C++ and provides what the kernels use: threadIdx/blockIdx/blockDim/
 * gridDim (per fiber), __syncthreads (a barrier over the block's fibers),
 * warp shuffles and votes (exchanged through the warp's 32 fibers), static
 * and dynamic shared memory (one buffer per block, filled with 0xff so that
 * a read before the write shows up as NaN), atomics, __half/half2 in
 * software (round to nearest even, via runtime/backend/half.h) and the few
 * runtime calls the launchers make. Kernels launch through VRT_LAUNCH
 * (kernels/cuda/common.cuh); emu.cc runs each block's threads as ucontext
 * fibers, in an order shuffled from VRT_EMU_SEED between sync points, so a
 * missing barrier gives a wrong result instead of a lucky right one.
 */
#ifndef VRT_CUDA_EMU_H
#define VRT_CUDA_EMU_H

#ifndef __cplusplus
#error "cuda_emu.h is C++: compile kernels/cuda/<op>.cu with g++ -x c++"
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

extern "C" {
#include "backend/half.h"
}

#define VRT_CUDA_EMU 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)

/* ---- vector and index types ---- */

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

struct float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(16) int4 {
    int x, y, z, w;
};
static inline float2 make_float2(float x, float y)
{
    return float2{x, y};
}
static inline float4 make_float4(float x, float y, float z, float w)
{
    return float4{x, y, z, w};
}
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w)
{
    return uint4{x, y, z, w};
}

typedef struct CUstream_st *cudaStream_t;
typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorLaunchFailure = 719, cudaErrorInvalidConfiguration = 9 };

constexpr int warpSize = 32;

/* ---- the emulator's per-fiber state (emu.cc) ---- */

namespace vrt_emu
{

struct thread_ctx {
    dim3 tid, bid, bdim, gdim;
    int linear;        /* threadIdx linearized */
    struct block *blk; /* the block this thread belongs to */
};

extern thread_local thread_ctx *cur;

/* Block-wide barrier (__syncthreads) and the warp exchange behind the
 * shuffles and votes. kind: what the lane asks for (see emu.cc). */
void syncthreads();
void syncwarp(unsigned mask);
uint64_t warp_exchange(int kind, unsigned mask, uint64_t value, int arg, int width);
void *static_smem(int site, size_t bytes, size_t align);
void *dyn_smem();
int site_new();

enum { X_SHFL, X_XOR, X_DOWN, X_UP, X_ANY, X_ALL, X_BALLOT, X_SYNC };

typedef void (*kernel_fn)(void *closure);
cudaError_t launch(const char *name, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   kernel_fn fn, void *closure);

template <class F> static void call_closure(void *c)
{
    (*static_cast<F *>(c))();
}
template <class F>
static cudaError_t launch_lambda(const char *name, dim3 grid, dim3 block, size_t smem,
                                 cudaStream_t stream, F f)
{
    return launch(name, grid, block, smem, stream, &call_closure<F>, &f);
}

template <class T> static inline uint64_t to_bits(T v)
{
    static_assert(sizeof(T) <= 8, "shuffle of a type larger than 8 bytes");
    uint64_t u = 0;
    std::memcpy(&u, &v, sizeof v);
    return u;
}
template <class T> static inline T from_bits(uint64_t u)
{
    T v;
    std::memcpy(&v, &u, sizeof v);
    return v;
}

} // namespace vrt_emu

#define threadIdx (vrt_emu::cur->tid)
#define blockIdx (vrt_emu::cur->bid)
#define blockDim (vrt_emu::cur->bdim)
#define gridDim (vrt_emu::cur->gdim)

static inline void __syncthreads()
{
    vrt_emu::syncthreads();
}
static inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    vrt_emu::syncwarp(mask);
}
static inline void __threadfence() {}
static inline void __threadfence_block() {}

template <class T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = warpSize)
{
    return vrt_emu::from_bits<T>(
        vrt_emu::warp_exchange(vrt_emu::X_SHFL, mask, vrt_emu::to_bits(v), src, width));
}
template <class T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = warpSize)
{
    return vrt_emu::from_bits<T>(
        vrt_emu::warp_exchange(vrt_emu::X_XOR, mask, vrt_emu::to_bits(v), lane_mask, width));
}
template <class T>
static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize)
{
    return vrt_emu::from_bits<T>(
        vrt_emu::warp_exchange(vrt_emu::X_DOWN, mask, vrt_emu::to_bits(v), (int)delta, width));
}
template <class T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = warpSize)
{
    return vrt_emu::from_bits<T>(
        vrt_emu::warp_exchange(vrt_emu::X_UP, mask, vrt_emu::to_bits(v), (int)delta, width));
}
static inline int __any_sync(unsigned mask, int pred)
{
    return (int)vrt_emu::warp_exchange(vrt_emu::X_ANY, mask, pred != 0, 0, warpSize);
}
static inline int __all_sync(unsigned mask, int pred)
{
    return (int)vrt_emu::warp_exchange(vrt_emu::X_ALL, mask, pred != 0, 0, warpSize);
}
static inline unsigned __ballot_sync(unsigned mask, int pred)
{
    return (unsigned)vrt_emu::warp_exchange(vrt_emu::X_BALLOT, mask, pred != 0, 0, warpSize);
}

/* ---- atomics (blocks may run on several OS threads: real atomics) ---- */

static inline int atomicAdd(int *p, int v)
{
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
static inline unsigned atomicAdd(unsigned *p, unsigned v)
{
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
static inline float atomicAdd(float *p, float v)
{
    uint32_t *u = reinterpret_cast<uint32_t *>(p);
    uint32_t old = __atomic_load_n(u, __ATOMIC_RELAXED), nw;
    do {
        nw = vrt_f32_to_bits(vrt_bits_to_f32(old) + v);
    } while (!__atomic_compare_exchange_n(u, &old, nw, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return vrt_bits_to_f32(old);
}
static inline int atomicMax(int *p, int v)
{
    int old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (old < v &&
           !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}
static inline int atomicExch(int *p, int v)
{
    return __atomic_exchange_n(p, v, __ATOMIC_RELAXED);
}
static inline int atomicCAS(int *p, int cmp, int v)
{
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return cmp;
}

/* ---- fp16 in software ---- */

struct __half {
    uint16_t __x;
};
struct alignas(4) __half2 {
    __half x, y;
};
typedef __half half;
typedef __half2 half2;

static inline __half __ushort_as_half(unsigned short u)
{
    return __half{u};
}
static inline unsigned short __half_as_ushort(__half h)
{
    return h.__x;
}
static inline float __half2float(__half h)
{
    return vrt_f16_to_f32(h.__x);
}
static inline __half __float2half(float f)
{
    return __half{vrt_f32_to_f16(f)};
}
static inline __half __float2half_rn(float f)
{
    return __float2half(f);
}
static inline __half2 __halves2half2(__half a, __half b)
{
    return __half2{a, b};
}
static inline __half2 __floats2half2_rn(float a, float b)
{
    return __half2{__float2half(a), __float2half(b)};
}
static inline __half2 __float2half2_rn(float a)
{
    return __half2{__float2half(a), __float2half(a)};
}
static inline __half2 __float22half2_rn(float2 f)
{
    return __floats2half2_rn(f.x, f.y);
}
static inline float2 __half22float2(__half2 h)
{
    return float2{__half2float(h.x), __half2float(h.y)};
}
static inline float __low2float(__half2 h)
{
    return __half2float(h.x);
}
static inline float __high2float(__half2 h)
{
    return __half2float(h.y);
}
static inline __half __low2half(__half2 h)
{
    return h.x;
}
static inline __half __high2half(__half2 h)
{
    return h.y;
}
/* Arithmetic rounds the exact f32 result once to fp16, as the hardware does
 * for add and mul (an f32 sum or product of two fp16 values is exact or
 * within one f32 rounding, which cannot change the fp16 rounding except in
 * double-rounding corner cases that kernels must not depend on). */
static inline __half __hadd(__half a, __half b)
{
    return __float2half(__half2float(a) + __half2float(b));
}
static inline __half __hsub(__half a, __half b)
{
    return __float2half(__half2float(a) - __half2float(b));
}
static inline __half __hmul(__half a, __half b)
{
    return __float2half(__half2float(a) * __half2float(b));
}
static inline __half __hfma(__half a, __half b, __half c)
{
    return __float2half(std::fma(__half2float(a), __half2float(b), __half2float(c)));
}
static inline __half2 __hadd2(__half2 a, __half2 b)
{
    return __half2{__hadd(a.x, b.x), __hadd(a.y, b.y)};
}
static inline __half2 __hmul2(__half2 a, __half2 b)
{
    return __half2{__hmul(a.x, b.x), __hmul(a.y, b.y)};
}
static inline __half2 __hfma2(__half2 a, __half2 b, __half2 c)
{
    return __half2{__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y)};
}
static inline __half operator+(__half a, __half b)
{
    return __hadd(a, b);
}
static inline __half operator-(__half a, __half b)
{
    return __hsub(a, b);
}
static inline __half operator*(__half a, __half b)
{
    return __hmul(a, b);
}
static inline __half2 operator+(__half2 a, __half2 b)
{
    return __hadd2(a, b);
}
static inline __half2 operator*(__half2 a, __half2 b)
{
    return __hmul2(a, b);
}

/* ---- device math that is not in <cmath> ---- */

using std::isfinite; /* CUDA has these in the global namespace */
using std::isinf;
using std::isnan;

static inline float rsqrtf(float x)
{
    return 1.0f / std::sqrt(x);
}
static inline float __fdividef(float a, float b)
{
    return a / b;
}
static inline float __saturatef(float x)
{
    return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;
}
static inline float __int_as_float(int i)
{
    float f;
    std::memcpy(&f, &i, sizeof f);
    return f;
}
static inline float __uint_as_float(unsigned u)
{
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
static inline int __float2int_rn(float x)
{
    return (int)std::nearbyint(x);
}

/* ---- wmma (Volta tensor cores) for the shape kernels use: 16×16×16,
 * fp16 inputs, f32 accumulator ----
 * Each lane holds the whole tile (the hardware spreads it over the warp in
 * an unspecified layout, so kernels may only use the collective calls
 * below, never the elements: then a full copy per lane gives the same
 * results). mma_sync multiplies the fp16 values exactly and sums in f32. */
namespace nvcuda
{
namespace wmma
{
struct matrix_a {
};
struct matrix_b {
};
struct accumulator {
};
struct row_major {
};
struct col_major {
};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "cuda-emu: wmma shape 16x16x16 only");
    T v[16 * 16]; /* row-major: [m][k] (a), [k][n] (b), [m][n] (accumulator) */
};

template <class Use, class T, class L>
static inline void fill_fragment(fragment<Use, 16, 16, 16, T, L> &f, T value)
{
    for (int i = 0; i < 256; i++)
        f.v[i] = value;
}

template <class Use, class L>
static inline void load_matrix_sync(fragment<Use, 16, 16, 16, __half, L> &f, const __half *p,
                                    unsigned ldm)
{
    const bool col = std::is_same<L, col_major>::value;
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++)
            f.v[r * 16 + c] = col ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c];
}

static inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p,
                                    unsigned ldm, layout_t layout)
{
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++)
            f.v[r * 16 + c] =
                layout == mem_col_major ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c];
}

static inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f,
                                     unsigned ldm, layout_t layout)
{
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) {
            if (layout == mem_col_major)
                p[(size_t)c * ldm + r] = f.v[r * 16 + c];
            else
                p[(size_t)r * ldm + c] = f.v[r * 16 + c];
        }
}

template <class LA, class LB>
static inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                            const fragment<matrix_a, 16, 16, 16, __half, LA> &a,
                            const fragment<matrix_b, 16, 16, 16, __half, LB> &b,
                            const fragment<accumulator, 16, 16, 16, float> &c)
{
    float out[256];
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            float acc = c.v[m * 16 + n];
            for (int k = 0; k < 16; k++)
                acc += __half2float(a.v[m * 16 + k]) * __half2float(b.v[k * 16 + n]);
            out[m * 16 + n] = acc;
        }
    for (int i = 0; i < 256; i++)
        d.v[i] = out[i];
}
} // namespace wmma
} // namespace nvcuda

/* ---- the runtime calls launchers use ---- */

extern "C" {
/* The last launch error (cleared by reading, as in CUDA). */
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);
}

#endif
