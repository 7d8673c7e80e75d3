/* version.c — version and build information, and the embedded FFI text. */
#include "core/log.h"
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

const char *vrt_version(void) { return VRT_VERSION; }

const char *vrt_build_info(void)
{
    static char buf[512];
    const char *backends = VRT_BACKENDS[0] ? VRT_BACKENDS : "none built in yet";
#if defined(__clang__)
    const char *cc = "clang " __clang_version__;
#elif defined(__GNUC__)
    const char *cc = "gcc " __VERSION__;
#else
    const char *cc = "unknown compiler";
#endif
    snprintf(buf, sizeof buf,
             "v100rt %s\n"
             "git revision: %s\n"
             "compiler:     %s\n"
             "lua:          %s\n"
             "backends:     %s\n"
#if defined(__SANITIZE_ADDRESS__)
             "sanitizers:   address, undefined\n"
#endif
             ,
             VRT_VERSION, VRT_GIT_REV, cc, LUAJIT_VERSION, backends);
    return buf;
}

void vrt_log_write(int level, const char *msg) { vrt_log(level, "%s", msg ? msg : ""); }
