/* err.c — the error table and the vrt_err helpers (see err.h). */
#include "core/err.h"

#include <stdio.h>
#include <string.h>

const char *vrt_strerror(int code)
{
    switch (code) {
    case VRT_OK: return "success";
#define VRT_X_STR(name, value, desc)                                                               \
    case VRT_##name: return desc;
        VRT_ERRNO_MAP(VRT_X_STR)
#undef VRT_X_STR
    }
    return "unknown error";
}

const char *vrt_err_name(int code)
{
    switch (code) {
    case VRT_OK: return "OK";
#define VRT_X_NAME(name, value, desc)                                                              \
    case VRT_##name: return #name;
        VRT_ERRNO_MAP(VRT_X_NAME)
#undef VRT_X_NAME
    }
    return "EUNKNOWN";
}

void vrt_err_clear(vrt_err *e)
{
    if (e) {
        e->code = 0;
        e->msg[0] = '\0';
    }
}

int vrt_err_setv(vrt_err *e, int code, const char *fmt, va_list ap)
{
    if (e) {
        e->code = code;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    }
    return code;
}

int vrt_err_set(vrt_err *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vrt_err_setv(e, code, fmt, ap);
    va_end(ap);
    return code;
}

int vrt_err_prefix(vrt_err *e, const char *fmt, ...)
{
    if (!e)
        return VRT_EINTERNAL;
    char head[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    size_t hn = strlen(head), cap = sizeof e->msg;
    size_t on = strnlen(e->msg, cap - 1);
    if (hn > cap - 1)
        hn = cap - 1;
    if (hn + on > cap - 1)
        on = cap - 1 - hn;
    memmove(e->msg + hn, e->msg, on); /* the old text, cut to fit */
    memcpy(e->msg, head, hn);
    e->msg[hn + on] = '\0';
    return e->code ? e->code : VRT_EINTERNAL;
}
