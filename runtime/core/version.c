/* version.c — version and build information, and the embedded FFI text. */
#include "core/log.h"
#include "cpu/cpu.h"
#include "vrt.h"

#include <luajit.h>
#include <stdio.h>

#ifndef VRT_VERSION
#define VRT_VERSION "0.0.0"
#endif
#ifndef VRT_GIT_REV
#define VRT_GIT_REV "unknown"
#endif
#ifndef VRT_BACKENDS
#define VRT_BACKENDS ""
#endif

const char *vrt_version(void)
{
    return VRT_VERSION;
}

const char *vrt_build_info(void)
{
    static char buf[1024];
    const char *backends = VRT_BACKENDS[0] ? VRT_BACKENDS : "none built in yet";
#if defined(__clang__)
    const char *cc = "clang " __clang_version__;
#elif defined(__GNUC__)
    const char *cc = "gcc " __VERSION__;
#else
    const char *cc = "unknown compiler";
#endif
    /* The cpu backend's kernel level (kernels/cpu/isa.c). */
    char isa[200];
    vrt_err err = {0};
    int level = 0;
    if (vrt__cpu_isa_select(&level, &err) == 0)
        snprintf(isa, sizeof isa,
                 "%s (best on this CPU: %s; V100RT_CPU_ISA=generic|avx2 forces one)",
                 vrt__cpu_isa_name(level), vrt__cpu_isa_name(vrt__cpu_isa_best()));
    else
        snprintf(isa, sizeof isa, "none: %.190s", err.msg);
    snprintf(buf, sizeof buf,
             "v100rt %s\n"
             "git revision: %s\n"
             "compiler:     %s\n"
             "lua:          %s\n"
             "backends:     %s\n"
             "cpu kernels:  %s\n"
#if defined(__SANITIZE_ADDRESS__)
             "sanitizers:   address, undefined\n"
#endif
             ,
             VRT_VERSION, VRT_GIT_REV, cc, LUAJIT_VERSION, backends, isa);
    return buf;
}

void vrt_log_write(int level, const char *msg)
{
    vrt_log(level, "%s", msg ? msg : "");
}
