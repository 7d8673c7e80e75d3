/* backend_emu.h — creating the cuda-emu backend (kernels/emu/backend_emu.c).
 *
 * Reached through vrt_backend_create(&b, "cuda-emu", ...) in
 * runtime/backend/registry.c.
 */
#ifndef VRT_KERNELS_BACKEND_EMU_H
#define VRT_KERNELS_BACKEND_EMU_H

#include "backend/backend.h"

/* threads: OS threads that run the blocks of a launch, 0 = all cores. */
int vrt__cuda_emu_backend_create(vrt_backend **out, int threads, vrt_err *err);

#endif
