/* cpu_backend.c — the CPU backend's vtable and memory functions.
 *
 * "Device" memory is host memory here: alloc is a 64-byte aligned malloc,
 * the copies are memcpy and sync does nothing. The ops live in the other
 * files of kernels/cpu/ (one per op family).
 */
#include "cpu/cpu.h"

#include "core/err.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *vrt__host_alloc(vrt_backend *b, size_t bytes, vrt_err *err)
{
    /* aligned_alloc wants a multiple of the alignment; 0 bytes still gets a
     * unique pointer so that free() stays uniform. */
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n < bytes) {
        vrt_err_set(err, VRT_ENOMEM, "%s backend: allocation of %zu bytes is too large", b->name,
                    bytes);
        return NULL;
    }
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p)
        vrt_err_set(err, VRT_ENOMEM,
                    "%s backend: out of memory allocating %zu bytes (%.1f MiB); lower "
                    "cache.num_blocks or batching.max_batch_prefill_tokens",
                    b->name, bytes, (double)bytes / (1024.0 * 1024.0));
    return p;
}

void vrt__host_free(vrt_backend *b, void *p)
{
    free(p);
}

int vrt__host_copy(vrt_backend *b, void *dst, const void *src, size_t n, vrt_err *err)
{
    if (n == 0)
        return 0;
    if (!dst || !src)
        return vrt_err_set(err, VRT_EINVAL, "%s backend: copy of %zu bytes with a NULL pointer",
                           b->name, n);
    memmove(dst, src, n);
    return 0;
}

int vrt__host_memset(vrt_backend *b, void *p, int value, size_t n, vrt_err *err)
{
    if (n == 0)
        return 0;
    if (!p)
        return vrt_err_set(err, VRT_EINVAL, "%s backend: memset of %zu bytes on NULL", b->name, n);
    memset(p, value, n);
    return 0;
}

int vrt__host_sync(vrt_backend *b, vrt_err *err)
{
    return 0;
}

static void cpu_destroy(vrt_backend *b)
{
    if (!b)
        return;
    free(b->ctx);
    free(b);
}

/* "model name" of /proc/cpuinfo into buf (empty when there is none). */
static void cpu_model(char *buf, size_t n)
{
    buf[0] = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && c) {
            c += 1 + (c[1] == ' ');
            c[strcspn(c, "\n")] = 0;
            snprintf(buf, n, "%s", c);
            break;
        }
    }
    fclose(f);
}

static const char *cpu_device_name(vrt_backend *b)
{
    return ((vrt__cpu_ctx *)b->ctx)->name;
}

int vrt__cpu_backend_create(vrt_backend **out, int threads, vrt_err *err)
{
    int isa = 0;
    int rc = vrt__cpu_isa_select(&isa, err);
    if (rc)
        return rc;
    vrt_backend *b = calloc(1, sizeof *b);
    vrt__cpu_ctx *ctx = calloc(1, sizeof *ctx);
    if (!b || !ctx) {
        free(b);
        free(ctx);
        return vrt_err_set(err, VRT_ENOMEM, "cpu backend: out of memory");
    }
    ctx->threads = threads > 0 ? threads : omp_get_num_procs();
    if (ctx->threads < 1)
        ctx->threads = 1;
    ctx->isa = isa;
    char model[128];
    cpu_model(model, sizeof model);
    snprintf(ctx->name, sizeof ctx->name, "%s%skernels %s (V100RT_CPU_ISA), %d thread%s", model,
             model[0] ? ", " : "", vrt__cpu_isa_name(isa), ctx->threads,
             ctx->threads == 1 ? "" : "s");
    b->name = "cpu";
    b->ctx = ctx;
    b->host_memory = true;
    b->supports_op = vrt_op_weights;
    b->alloc = vrt__host_alloc;
    b->free = vrt__host_free;
    b->copy_to_device = vrt__host_copy;
    b->copy_to_host = vrt__host_copy;
    b->copy_on_device = vrt__host_copy;
    b->memset = vrt__host_memset;
    b->sync = vrt__host_sync;
    b->device_name = cpu_device_name;
    b->destroy = cpu_destroy;
#define VRT_OP(name, ENUM, weights, front, params, args) b->name = vrt__cpu_##name;
#include "backend/ops.def"
#undef VRT_OP
    *out = b;
    return 0;
}
