/* registry.c — the built-in backends by name, and the names of ops and dtypes.
 *
 * vrt_backend_create("cpu", ...) is the one way the runtime gets a backend.
 * "cuda-emu" runs the CUDA kernels on the CPU (kernels/emu); the real cuda
 * backend is not built in yet and says so instead of failing later with a
 * missing symbol.
 */
#include "backend/backend.h"
#include "core/err.h"
#include "cpu/cpu.h"
#include "emu/backend_emu.h"

#include <string.h>

static const char *const op_names[VRT_OP_COUNT] = {
    [VRT_OP_EMBED] = "embed",
    [VRT_OP_RMSNORM] = "rmsnorm",
    [VRT_OP_LAYERNORM] = "layernorm",
    [VRT_OP_ROPE] = "rope",
    [VRT_OP_MATMUL] = "matmul",
    [VRT_OP_SILU_MUL] = "silu_mul",
    [VRT_OP_GELU_MUL] = "gelu_mul",
    [VRT_OP_GELU] = "gelu",
    [VRT_OP_ADD] = "add",
    [VRT_OP_KV_STORE] = "kv_store",
    [VRT_OP_ATTN_PREFILL] = "attention_prefill",
    [VRT_OP_ATTN_DECODE] = "attention_decode",
    [VRT_OP_MOE_TOPK] = "moe_topk",
};

const char *vrt_op_name(vrt_op op)
{
    if ((int)op < 0 || op >= VRT_OP_COUNT || !op_names[op])
        return "unknown";
    return op_names[op];
}

const char *vrt_dtype_name(int dtype)
{
    switch (dtype) {
    case VRT_DT_F32: return "f32";
    case VRT_DT_F16: return "f16";
    case VRT_DT_Q4: return "q4";
    }
    return "unknown";
}

const char *vrt_backend_list(void)
{
    return "cpu,cuda-emu";
}

int vrt_backend_create(vrt_backend **out, const char *kind, int threads, vrt_err *err)
{
    if (!out)
        return vrt_err_set(err, VRT_EINVAL, "vrt_backend_create: out is NULL");
    *out = NULL;
    if (!kind)
        return vrt_err_set(err, VRT_EINVAL,
                           "vrt_backend_create: no backend kind given (built in: %s)",
                           vrt_backend_list());
    if (threads < 0)
        return vrt_err_set(err, VRT_ERANGE,
                           "backend \"%s\": threads is %d; use 0 (all cores) or a positive "
                           "count (device.threads)",
                           kind, threads);
    if (strcmp(kind, "cpu") == 0)
        return vrt__cpu_backend_create(out, threads, err);
    if (strcmp(kind, "cuda-emu") == 0)
        return vrt__cuda_emu_backend_create(out, threads, err);
    if (strcmp(kind, "cuda") == 0)
        return vrt_err_set(
            err, VRT_EUNSUPPORTED,
            "backend \"%s\" is not built in this binary (built in: %s); set "
            "device.kind = \"cpu\" (or \"cuda-emu\" to run the CUDA kernels on the CPU)",
            kind, vrt_backend_list());
    return vrt_err_set(err, VRT_EINVAL, "unknown backend kind \"%s\" (device.kind); built in: %s",
                       kind, vrt_backend_list());
}

void vrt_backend_destroy(vrt_backend *b)
{
    if (b && b->destroy)
        b->destroy(b);
}
