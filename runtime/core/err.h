/* err.h — error codes and the error struct every library function fills.
 *
 * Library code returns 0 or a negative VRT_E* code and, where the caller
 * passed a vrt_err, a message saying what went wrong, where (file, key,
 * tensor) and what to do about it. It never exits or aborts on bad input.
 * The code table is one X-macro so that the enum, vrt_strerror() and
 * vrt_err_name() cannot drift apart.
 */
#ifndef VRT_CORE_ERR_H
#define VRT_CORE_ERR_H

#include "vrt.h"

#include <stdarg.h>
#include <stddef.h>

/* X(name, value, description) */
#define VRT_ERRNO_MAP(X)                                                                           \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EIO, -3, "input/output error")                                                               \
    X(ENOENT, -4, "no such file or entry")                                                         \
    X(ECONFIG, -5, "invalid configuration")                                                        \
    X(ELUA, -6, "Lua error")                                                                       \
    X(EFORMAT, -7, "malformed file or data")                                                       \
    X(EUNSUPPORTED, -8, "not supported")                                                           \
    X(ERANGE, -9, "value out of range")                                                            \
    X(EOVERLOADED, -10, "overloaded")                                                              \
    X(ETIMEDOUT, -11, "timed out")                                                                 \
    X(ECANCELED, -12, "canceled")                                                                  \
    X(EDEVICE, -13, "device error")                                                                \
    X(EDEVICEOOM, -14, "device out of memory")                                                     \
    X(EUSAGE, -15, "bad command-line usage")                                                       \
    X(EINTERNAL, -16, "internal error")                                                            \
    X(ENOSPC, -17, "no free KV cache blocks")                                                      \
    X(EPOLICY, -18, "scheduling policy hook failed")

typedef enum {
    VRT_OK = 0,
#define VRT_X_ENUM(name, value, desc) VRT_##name = value,
    VRT_ERRNO_MAP(VRT_X_ENUM)
#undef VRT_X_ENUM
} vrt_errno;

/* vrt_err itself is declared in vrt.h (it is part of the FFI surface). */
#define VRT_ERR_MSG_MAX ((int)sizeof(((vrt_err *)0)->msg))

/* Clears e (NULL is allowed everywhere an error is optional). */
void vrt_err_clear(vrt_err *e);
/* Sets code and a printf-style message; returns code so callers can write
 * `return vrt_err_set(e, VRT_EINVAL, "...")`. */
int vrt_err_set(vrt_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vrt_err_setv(vrt_err *e, int code, const char *fmt, va_list ap);
/* Prepends context ("loading model x: ") to an error already set; returns
 * its code. */
int vrt_err_prefix(vrt_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
