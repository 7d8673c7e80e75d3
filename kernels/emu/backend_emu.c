/* backend_emu.c — the cuda-emu backend: kernels/cuda run on the CPU through the emulator.
 *
 * A CUDA backend whose "device" is the CPU: memory is host memory (64-byte
 * aligned malloc, memcpy copies) but host_memory is false, so the model
 * copies its weights as it will for a GPU. The ops are the ones the cuda
 * backend uses too (kernels/gpu/gpu_ops.c); here they get the launchers
 * of kernels/cuda compiled with g++ and kernels/emu/cuda_emu.h. A failed
 * launch (a deadlock, a bad configuration) is a VRT_EDEVICE error carrying
 * the emulator's message.
 */
#include "emu/backend_emu.h"

#include "core/err.h"
#include "cpu/cpu.h"
#include "cuda/kernels.h"
#include "emu/emu.h"
#include "gpu/gpu_ops.h"

#include <stdlib.h>

static void emu_destroy(vrt_backend *b)
{
    vrt__gpu_ops_release(b);
    free(b->ctx);
    free(b);
}

static int emu_launch_error(void *owner, int status, const char *op, vrt_err *err)
{
    return vrt_err_set(err, VRT_EDEVICE, "cuda-emu: %s: %s", op, vrt_emu_last_error());
}

int vrt__cuda_emu_backend_create(vrt_backend **out, int threads, int custom_kernels, vrt_err *err)
{
    vrt_backend *b = calloc(1, sizeof *b);
    vrt_gpu_kernels *k = calloc(1, sizeof *k);
    if (!b || !k) {
        free(b);
        free(k);
        return vrt_err_set(err, VRT_ENOMEM, "cuda-emu backend: out of memory");
    }
    /* The blocks of a launch run one after another on the calling thread:
     * the ops are small (tests, CI), where an OpenMP team per launch costs
     * more in spinning than it gains, and the run stays deterministic for
     * a seed. `threads` (device.threads) is accepted and not used. */
    vrt_emu_set_threads(1);
    *k = (vrt_gpu_kernels){.name = "cuda-emu",
                           .no_custom = !custom_kernels,
                           .launch_error = emu_launch_error,
                           VRT_GPU_LAUNCHERS};
    b->name = "cuda-emu";
    b->ctx = k;
    b->host_memory = false;
    b->alloc = vrt__host_alloc;
    b->free = vrt__host_free;
    b->copy_to_device = vrt__host_copy;
    b->copy_to_host = vrt__host_copy;
    b->copy_on_device = vrt__host_copy;
    b->memset = vrt__host_memset;
    b->sync = vrt__host_sync;
    b->destroy = emu_destroy;
    vrt__gpu_ops_init(b);
    *out = b;
    return 0;
}
