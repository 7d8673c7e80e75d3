/* emu.h — the C side of the CUDA emulator (kernels/emu/emu.cc).
 *
 * Settings and diagnostics of the emulator that C code (the cuda-emu backend,
 * tests) reaches without C++: the seed that shuffles fiber order, the
 * number of OS threads that run blocks, and the message of the last failed
 * launch.
 */
#ifndef VRT_KERNELS_EMU_H
#define VRT_KERNELS_EMU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Seeds the fiber order of the following launches (all threads). The
 * default is VRT_EMU_SEED from the environment, else a fixed value. Launch
 * n of a process with seed s always runs in the same order. */
void vrt_emu_set_seed(uint64_t seed);
/* OS threads that run blocks of one launch (1 = in sequence; default 1). */
void vrt_emu_set_threads(int n);
/* What the last failed launch on this OS thread said ("" if none). */
const char *vrt_emu_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
