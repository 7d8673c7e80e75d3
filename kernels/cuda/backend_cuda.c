/* backend_cuda.c — the cuda backend: kernels/cuda on an NVIDIA GPU.
 *
 * Built only when nvcc exists, with the nvcc-compiled kernels into
 * libv100rt-cuda.so, which ./v100rt loads at startup (dlopen, see
 * runtime/backend/registry.c): ./v100rt itself needs no CUDA library and
 * runs on machines without one. The boundary is one-way: the .so carries
 * its own copy of the shared ops (kernels/gpu/gpu_ops.c) and of the error
 * functions (runtime/core/err.c) and calls nothing in ./v100rt; it is
 * linked with -Bsymbolic so that its own launchers, not the cuda-emu ones
 * of the binary, are the ones it calls. It exports its ABI version
 * (vrt_cuda_backend_abi), which the binary checks before anything else.
 *
 * Everything runs on one stream per backend. Every CUDA and cuBLAS call
 * goes through CU() / BLAS(), which turn a failure into a vrt error with
 * file:line and, for the failures operators meet, what to do: out of
 * memory (with the free/total figures), no kernel image for the GPU (its
 * compute capability and the archs in this build), driver too old.
 *
 * Dense projections: the GEMV kernel for up to VRT_CUDA_GEMV_MAX_T tokens
 * (decode), else cublasGemmEx on fp16 tensor cores with fp32 accumulation
 * (the activations are rounded to fp16 first, into a workspace that grows
 * as needed); f32 weights use cublasSgemm. kernels.custom = false sends
 * every projection to cuBLAS.
 */
#include "backend/backend.h"
#include "core/err.h"
#include "cuda/kernels.h"
#include "gpu/gpu_ops.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef VRT_CUDA_ARCHS
#define VRT_CUDA_ARCHS "unknown"
#endif

#define VRT_EXPORT __attribute__((visibility("default")))

typedef struct cuda_ctx {
    vrt_gpu_kernels k; /* first: the shared ops read it through b->ctx */
    vrt_backend *b;
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *half_ws; /* activations rounded to fp16 for cublasGemmEx */
    size_t half_ws_bytes;
    void *deq_ws; /* an int4 weight dequantized to fp16 (prefill) */
    size_t deq_ws_bytes;
    char desc[256];
    struct cudaDeviceProp prop;
} cuda_ctx;

/* What a CUDA failure means for the operator. */
static int cuda_fail(cudaError_t e, const char *call, const char *file, int line, int device,
                     vrt_err *err)
{
    (void)cudaGetLastError(); /* clear a non-sticky error */
    const char *name = cudaGetErrorName(e), *what = cudaGetErrorString(e);
    if (e == cudaErrorMemoryAllocation) {
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        return vrt_err_set(err, VRT_EDEVICEOOM,
                           "CUDA out of memory at %s:%d (%s): %.2f GiB free of %.2f GiB on GPU "
                           "%d; lower device.memory_fraction, batching.max_total_tokens or "
                           "batching.max_batch_prefill_tokens, or quantize (model.quantize), "
                           "and check that no other process holds the GPU (nvidia-smi)",
                           file, line, call, fr / 1073741824.0, tot / 1073741824.0, device);
    }
    if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction) {
        struct cudaDeviceProp p;
        int ok = cudaGetDeviceProperties(&p, device) == cudaSuccess;
        return vrt_err_set(err, VRT_EDEVICE,
                           "no kernel image for this GPU at %s:%d (%s): GPU %d is %s, compute "
                           "capability %d.%d (sm_%d%d), and this build holds sm_{%s}; rebuild "
                           "with a CUDA toolkit that targets it (the V100, sm_70, needs CUDA <= "
                           "12.9: see README, GPU build)",
                           file, line, call, device, ok ? p.name : "?", ok ? p.major : 0,
                           ok ? p.minor : 0, ok ? p.major : 0, ok ? p.minor : 0, VRT_CUDA_ARCHS);
    }
    if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice ||
        e == cudaErrorCompatNotSupportedOnDevice) {
        int drv = 0, rt = 0;
        cudaDriverGetVersion(&drv);
        cudaRuntimeGetVersion(&rt);
        if (drv == 0)
            return vrt_err_set(err, VRT_EDEVICE,
                               "%s at %s:%d (%s): no NVIDIA driver on this machine (libcuda.so.1 "
                               "not found) or no GPU; set device.kind = \"cpu\" (or \"auto\")",
                               what, file, line, call);
        return vrt_err_set(err, VRT_EDEVICE,
                           "%s at %s:%d (%s): the NVIDIA driver supports CUDA %d.%d, this build "
                           "needs CUDA %d.%d; update the driver, or rebuild v100rt with an "
                           "older CUDA toolkit (or set device.kind = \"cpu\")",
                           what, file, line, call, drv / 1000, (drv % 1000) / 10, rt / 1000,
                           (rt % 1000) / 10);
    }
    return vrt_err_set(err, VRT_EDEVICE, "CUDA error %s at %s:%d (%s): %s", name, file, line, call,
                       what);
}

static const char *blas_name(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "cuBLAS error";
    }
}

#define CU(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return cuda_fail(e_, #call, __FILE__, __LINE__, c->device, err);                       \
    } while (0)

#define BLAS(call)                                                                                 \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return vrt_err_set(err,                                                                \
                               s_ == CUBLAS_STATUS_ALLOC_FAILED ? VRT_EDEVICEOOM : VRT_EDEVICE,    \
                               "cuBLAS %s (%d) at %s:%d (%s)", blas_name(s_), (int)s_, __FILE__,   \
                               __LINE__, #call);                                                   \
    } while (0)

static cuda_ctx *C(vrt_backend *b)
{
    return (cuda_ctx *)b->ctx;
}

/* ---- memory ---- */

static void *cu_alloc(vrt_backend *b, size_t bytes, vrt_err *err)
{
    cuda_ctx *c = C(b);
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cuda_fail(e, "cudaMalloc", __FILE__, __LINE__, c->device, err);
        vrt_err_prefix(err, "allocating %.1f MiB: ", bytes / 1048576.0);
        return NULL;
    }
    return p;
}

static void cu_free(vrt_backend *b, void *p)
{
    if (p)
        cudaFree(p);
}

static int cu_copy_to_device(vrt_backend *b, void *dst, const void *src, size_t n, vrt_err *err)
{
    cuda_ctx *c = C(b);
    if (n == 0)
        return 0;
    /* From pageable memory the copy is staged before this returns, so the
     * caller may reuse src at once; it runs in order on the stream. */
    CU(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->stream));
    return 0;
}

static int cu_copy_to_host(vrt_backend *b, void *dst, const void *src, size_t n, vrt_err *err)
{
    cuda_ctx *c = C(b);
    if (n == 0)
        return 0;
    CU(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, c->stream));
    CU(cudaStreamSynchronize(c->stream));
    return 0;
}

static int cu_copy_on_device(vrt_backend *b, void *dst, const void *src, size_t n, vrt_err *err)
{
    cuda_ctx *c = C(b);
    if (n)
        CU(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, c->stream));
    return 0;
}

static int cu_memset(vrt_backend *b, void *p, int value, size_t n, vrt_err *err)
{
    cuda_ctx *c = C(b);
    if (n)
        CU(cudaMemsetAsync(p, value, n, c->stream));
    return 0;
}

static int cu_sync(vrt_backend *b, vrt_err *err)
{
    cuda_ctx *c = C(b);
    CU(cudaStreamSynchronize(c->stream));
    CU(cudaGetLastError());
    return 0;
}

static int cu_mem_info(vrt_backend *b, size_t *free_bytes, size_t *total_bytes, vrt_err *err)
{
    cuda_ctx *c = C(b);
    CU(cudaMemGetInfo(free_bytes, total_bytes));
    return 0;
}

static int cu_graph_begin(vrt_backend *b, vrt_err *err)
{
    cuda_ctx *c = C(b);
    CU(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    return 0;
}

static int cu_graph_end(vrt_backend *b, void **graph, vrt_err *err)
{
    cuda_ctx *c = C(b);
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    if (!graph || e != cudaSuccess) {
        if (g)
            cudaGraphDestroy(g);
        (void)cudaGetLastError();
        if (graph && e != cudaSuccess)
            return cuda_fail(e, "cudaStreamEndCapture", __FILE__, __LINE__, c->device, err);
        return 0;
    }
    cudaGraphExec_t x = NULL;
    e = cudaGraphInstantiateWithFlags(&x, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess)
        return cuda_fail(e, "cudaGraphInstantiateWithFlags", __FILE__, __LINE__, c->device, err);
    *graph = x;
    return 0;
}

static int cu_graph_launch(vrt_backend *b, void *graph, vrt_err *err)
{
    cuda_ctx *c = C(b);
    CU(cudaGraphLaunch((cudaGraphExec_t)graph, c->stream));
    return 0;
}

static void cu_graph_free(vrt_backend *b, void *graph)
{
    if (graph)
        cudaGraphExecDestroy((cudaGraphExec_t)graph);
}

static const char *cu_device_name(vrt_backend *b)
{
    return C(b)->desc;
}

static void cu_destroy(vrt_backend *b)
{
    cuda_ctx *c = C(b);
    if (c) {
        if (c->stream)
            cudaStreamSynchronize(c->stream);
        if (b->alloc)
            vrt__gpu_ops_release(b);
        if (c->half_ws)
            cudaFree(c->half_ws);
        if (c->deq_ws)
            cudaFree(c->deq_ws);
        if (c->blas)
            cublasDestroy(c->blas);
        if (c->stream)
            cudaStreamDestroy(c->stream);
        free(c);
    }
    free(b);
}

/* ---- launch errors and the dense projection ---- */

static int cu_launch_error(void *owner, int status, const char *op, vrt_err *err)
{
    cuda_ctx *c = owner;
    char where[64];
    snprintf(where, sizeof where, "%s launch", op);
    return cuda_fail((cudaError_t)status, where, __FILE__, __LINE__, c->device, err);
}

/* y = x·Wᵀ + bias through cuBLAS. Row-major y[T][N] is column-major
 * yᵀ[N][T] = W[N][K]·xᵀ: W (row-major [N][K] = column-major K×N) is taken
 * transposed, x (column-major K×T) as is. */
static int cu_matmul(void *owner, float *y, const float *x, const vrt_weight *W, const float *bias,
                     int T, vrt_err *err)
{
    cuda_ctx *c = owner;
    const int N = (int)W->rows, Kd = (int)W->cols;
    const float one = 1.0f, zero = 0.0f;
    if (W->dtype == VRT_DT_F32) {
        BLAS(cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, T, Kd, &one, W->data, Kd, x, Kd,
                         &zero, y, N));
    } else {
        size_t need = (size_t)T * Kd * 2;
        if (need > c->half_ws_bytes) {
            if (c->half_ws)
                CU(cudaFree(c->half_ws));
            c->half_ws = NULL;
            c->half_ws_bytes = 0;
            size_t cap = need < (1u << 20) ? (1u << 20) : need;
            CU(cudaMalloc(&c->half_ws, cap));
            c->half_ws_bytes = cap;
            c->b->buffers_epoch++;
        }
        int rc = vrt_cuda_to_half(c->half_ws, x, (int64_t)T * Kd, c->stream);
        if (rc)
            return cu_launch_error(c, rc, "matmul (to fp16)", err);
        BLAS(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, T, Kd, &one, W->data, CUDA_R_16F,
                          Kd, c->half_ws, CUDA_R_16F, Kd, &zero, y, CUDA_R_32F, N,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    if (bias) {
        int rc = vrt_cuda_add_bias(y, bias, T, N, c->stream);
        if (rc)
            return cu_launch_error(c, rc, "matmul (bias)", err);
    }
    return 0;
}

/* An int4 projection of many tokens: the weight dequantized to fp16 into
 * a workspace (one pass over it, at the bandwidth limit), then the fp16
 * GEMM on tensor cores: far faster than dequantizing tile by tile in FMA
 * kernels once T is large (prefill). */
static int cu_matmul_q4_large(void *owner, float *y, const float *x, const vrt_weight *W,
                              const float *bias, int T, vrt_err *err)
{
    cuda_ctx *c = owner;
    const size_t need = (size_t)W->rows * W->cols * 2;
    if (need > c->deq_ws_bytes) {
        if (c->deq_ws)
            CU(cudaFree(c->deq_ws));
        c->deq_ws = NULL;
        c->deq_ws_bytes = 0;
        c->b->buffers_epoch++;
        CU(cudaMalloc(&c->deq_ws, need));
        c->deq_ws_bytes = need;
    }
    int rc = vrt_cuda_q4_dequant(c->deq_ws, *W->q4, (int)W->rows, (int)W->cols, c->stream);
    if (rc)
        return cu_launch_error(c, rc, "matmul (int4 dequantize)", err);
    vrt_weight w16 = {.data = c->deq_ws, .dtype = VRT_DT_F16, .rows = W->rows, .cols = W->cols};
    return cu_matmul(c, y, x, &w16, bias, T, err);
}

/* ---- creation ---- */

static int setup(cuda_ctx *c, vrt_err *err)
{
    int n = 0;
    CU(cudaGetDeviceCount(&n));
    if (n < 1)
        return vrt_err_set(err, VRT_EDEVICE,
                           "no CUDA GPU visible (CUDA_VISIBLE_DEVICES=%s); set device.kind = "
                           "\"cpu\" to run on the CPU",
                           getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES")
                                                          : "unset");
    if (c->device < 0 || c->device >= n)
        return vrt_err_set(err, VRT_EDEVICE,
                           "device.gpus names GPU %d but %d CUDA GPU%s visible (ordinals 0..%d; "
                           "CUDA_VISIBLE_DEVICES=%s renumbers them): list a GPU that exists",
                           c->device, n, n == 1 ? " is" : "s are", n - 1,
                           getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES")
                                                          : "unset");
    CU(cudaSetDevice(c->device));
    CU(cudaGetDeviceProperties(&c->prop, c->device));
    /* A first kernel launch tells whether this build has an image for the
     * GPU (else every op would fail with the same message later). */
    CU(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    float *probe = NULL;
    CU(cudaMalloc((void **)&probe, 64));
    int rc = vrt_cuda_add(probe, probe, probe, 16, c->stream);
    if (!rc)
        rc = (int)cudaStreamSynchronize(c->stream);
    cudaFree(probe);
    if (rc)
        return cuda_fail((cudaError_t)rc, "a first kernel launch", __FILE__, __LINE__, c->device,
                         err);
    BLAS(cublasCreate(&c->blas));
    BLAS(cublasSetStream(c->blas, c->stream));
    BLAS(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH));
    size_t fr = 0, tot = 0;
    CU(cudaMemGetInfo(&fr, &tot));
    int drv = 0;
    cudaDriverGetVersion(&drv);
    snprintf(c->desc, sizeof c->desc,
             "GPU %d: %s (sm_%d%d, %d SMs, %.1f GiB, %.1f GiB free; driver CUDA %d.%d; build "
             "sm_{%s})",
             c->device, c->prop.name, c->prop.major, c->prop.minor, c->prop.multiProcessorCount,
             tot / 1073741824.0, fr / 1073741824.0, drv / 1000, (drv % 1000) / 10, VRT_CUDA_ARCHS);
    return 0;
}

/* The contract this plugin was built against: ./v100rt checks it before
 * calling anything else here (registry.c, vrt__cuda_plugin_open). */
VRT_EXPORT const int vrt_cuda_backend_abi = VRT_BACKEND_ABI_VERSION;

/* The entry point ./v100rt looks up with dlsym. */
VRT_EXPORT int vrt_cuda_backend_create_dev(vrt_backend **out, int threads, int custom_kernels,
                                           int device, vrt_err *err)
{
    vrt_backend *b = calloc(1, sizeof *b);
    cuda_ctx *c = calloc(1, sizeof *c);
    if (!b || !c) {
        free(b);
        free(c);
        return vrt_err_set(err, VRT_ENOMEM, "cuda backend: out of memory");
    }
    c->b = b;
    c->device = device;
    c->k = (vrt_gpu_kernels){.name = "cuda",
                             .owner = c,
                             .launch_error = cu_launch_error,
                             .no_custom = !custom_kernels,
                             .matmul_lib = cu_matmul,
                             .matmul_q4_large = cu_matmul_q4_large,
                             VRT_GPU_LAUNCHERS};
    b->name = "cuda";
    b->ctx = c;
    b->host_memory = false;
    b->alloc = cu_alloc;
    b->free = cu_free;
    b->copy_to_device = cu_copy_to_device;
    b->copy_to_host = cu_copy_to_host;
    b->copy_on_device = cu_copy_on_device;
    b->memset = cu_memset;
    b->sync = cu_sync;
    b->mem_info = cu_mem_info;
    b->device_name = cu_device_name;
    b->graph_begin = cu_graph_begin;
    b->graph_end = cu_graph_end;
    b->graph_launch = cu_graph_launch;
    b->graph_free = cu_graph_free;
    b->destroy = cu_destroy;
    vrt__gpu_ops_init(b);
    int rc = setup(c, err);
    if (rc) {
        cu_destroy(b);
        return rc;
    }
    c->k.stream = c->stream;
    *out = b;
    return 0;
}

/* For device.kind = "auto": the number of GPUs the driver shows (0 when
 * there is no driver or no GPU); never fails. */
VRT_EXPORT int vrt_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}
