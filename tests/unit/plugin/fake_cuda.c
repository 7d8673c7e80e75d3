/* fake_cuda.c — a stand-in for libv100rt-cuda.so, built three ways by the
 * Makefile for test_ops.c's plugin test: with the binary's ABI version
 * (FAKE_ABI_OFFSET=0), with another one (1), and without the version symbol
 * (FAKE_NO_ABI). Its entry points only say that it is a fake. */
#include "backend/backend.h"
#include "core/err.h"

#define EXPORT __attribute__((visibility("default")))

#ifndef FAKE_NO_ABI
EXPORT const int vrt_cuda_backend_abi = VRT_BACKEND_ABI_VERSION + FAKE_ABI_OFFSET;
#endif

EXPORT int vrt_cuda_backend_create_dev(vrt_backend **out, int threads, int custom_kernels,
                                       int device, vrt_err *err);
EXPORT int vrt_cuda_backend_create_dev(vrt_backend **out, int threads, int custom_kernels,
                                       int device, vrt_err *err)
{
    *out = NULL;
    if (err) {
        err->code = VRT_EDEVICE;
        err->msg[0] = 0;
    }
    return VRT_EDEVICE;
}

EXPORT int vrt_cuda_device_count(void);
EXPORT int vrt_cuda_device_count(void)
{
    return 42;
}
