/* backend_emu.h — creating the cuda-emu backend (kernels/emu/backend_emu.c).
 *
 * Reached through vrt_backend_create(&b, "cuda-emu", ...) in
 * runtime/backend/registry.c.
 */
#ifndef VRT_KERNELS_BACKEND_EMU_H
#define VRT_KERNELS_BACKEND_EMU_H

#include "backend/backend.h"

/* threads: accepted for symmetry with the cpu backend; blocks run in
 * sequence (see backend_emu.c). custom_kernels = 0 takes the simpler
 * kernels, as kernels.custom = false does on cuda. */
int vrt__cuda_emu_backend_create(vrt_backend **out, int threads, int custom_kernels, vrt_err *err);

#endif
