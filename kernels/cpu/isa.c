/* isa.c — which instruction set the CPU backend's kernels use, chosen at run time.
 *
 * The build targets the baseline ISA of the machine (x86-64: SSE2), so the
 * binary runs on any CPU of the architecture. Kernels written for a wider
 * ISA live in their own translation units compiled with that ISA's flags
 * (matmul_avx2.c: -mavx2 -mfma -mf16c) and are only called after the CPU
 * said it has the features. V100RT_CPU_ISA forces a level:
 *     unset, "" or "auto"  the best level this CPU and build support
 *     "generic"            the plain C kernels (the reference of the tests)
 *     "avx2"               the AVX2+FMA+F16C kernels (an error if absent)
 */
#include "cpu/cpu.h"

#include "core/err.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

const char *vrt__cpu_isa_name(int isa)
{
    return isa == VRT_CPU_ISA_AVX2 ? "avx2" : "generic";
}

int vrt__cpu_isa_best(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (!vrt__cpu_avx2_built)
        return VRT_CPU_ISA_GENERIC;
    __builtin_cpu_init();
    /* __builtin_cpu_supports checks the OS saves the YMM state too; clang
     * has no "f16c" name for it, so F16C is read from CPUID leaf 1. */
    unsigned a = 0, b = 0, c = 0, d = 0;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c)
        return VRT_CPU_ISA_AVX2;
#endif
    return VRT_CPU_ISA_GENERIC;
}

int vrt__cpu_isa_select(int *isa, vrt_err *err)
{
    const char *v = getenv("V100RT_CPU_ISA");
    int best = vrt__cpu_isa_best();
    if (!v || !*v || strcmp(v, "auto") == 0) {
        *isa = best;
        return 0;
    }
    if (strcmp(v, "generic") == 0) {
        *isa = VRT_CPU_ISA_GENERIC;
        return 0;
    }
    if (strcmp(v, "avx2") == 0) {
        if (best < VRT_CPU_ISA_AVX2)
            return vrt_err_set(err, VRT_EUNSUPPORTED,
                               "cpu backend: V100RT_CPU_ISA=avx2, but %s; unset V100RT_CPU_ISA "
                               "or set it to generic",
                               vrt__cpu_avx2_built ? "this CPU lacks AVX2, FMA or F16C"
                                                   : "this build has no AVX2 kernels");
        *isa = VRT_CPU_ISA_AVX2;
        return 0;
    }
    return vrt_err_set(err, VRT_EINVAL,
                       "cpu backend: V100RT_CPU_ISA=\"%s\" is not a level; use auto, generic or "
                       "avx2 (or unset it)",
                       v);
}
