/* route.c — see route.h. */
#include "server/route.h"

#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 when path is the row's path; *id gets what "{id}" matched. */
static int path_matches(const vrt_route *r, const char *path, const char **id)
{
    const char *brace = strstr(r->path, "{id}");
    if (!brace) {
        *id = "";
        return strcmp(r->path, path) == 0;
    }
    size_t n = (size_t)(brace - r->path);
    if (strncmp(r->path, path, n) != 0)
        return 0;
    *id = path + n;
    return 1;
}

static int method_matches(const vrt_route *r, const char *method)
{
    return strcmp(r->method, method) == 0 ||
           (strcmp(r->method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

const vrt_route *vrt_route_find(const vrt_route *t, size_t n, const char *method, const char *path,
                                const char **id, int *status)
{
    *status = 404;
    for (size_t i = 0; i < n; i++) {
        const char *rest;
        if (!path_matches(&t[i], path, &rest))
            continue;
        if (method_matches(&t[i], method)) {
            *id = rest;
            return &t[i];
        }
        if (t[i].api != VRT_ROUTE_OPS)
            *status = 405;
    }
    *id = "";
    return NULL;
}

void vrt_route_error_msg(const vrt_route *t, size_t n, int status, const char *method,
                         const char *path, char *buf, size_t cap)
{
    if (status == 405) {
        snprintf(buf, cap, "method %s is not allowed on %s", method, path);
        return;
    }
    vrt_strbuf list = {0};
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < i && strcmp(t[k].path, t[i].path) != 0)
            k++;
        if (k < i)
            continue; /* listed with another method */
        if (list.len)
            vrt_strbuf_put(&list, ", ", 2);
        vrt_strbuf_put(&list, t[i].path, strlen(t[i].path));
    }
    snprintf(buf, cap, "no route %s %s (routes: %s)", method, path,
             list.oom || !list.p ? "..." : list.p);
    free(list.p);
}
