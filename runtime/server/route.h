/* route.h — the server's route table: which handler answers a method and
 * a path, and the 404 / 405 answer when none does.
 *
 * A row names the method ("GET" rows answer HEAD too), the path (exact, or
 * a prefix followed by "{id}", which matches any rest: "/v1/models/{id}"),
 * the API it belongs to, whether it needs the model (503 while loading) and
 * the handler. A path of a TGI or OpenAI route asked with another method
 * is 405; the operational routes (/health, /metrics) answer only their own
 * method, anything else there is 404 like an unknown path.
 */
#ifndef VRT_SERVER_ROUTE_H
#define VRT_SERVER_ROUTE_H

#include "server/http.h"

#include <stddef.h>

enum {
    VRT_ROUTE_OPS = 0, /* probes and metrics */
    VRT_ROUTE_TGI,     /* text-generation-inference's API */
    VRT_ROUTE_OPENAI,  /* OpenAI's (vLLM's) API */
};

typedef struct vrt_route vrt_route;

/* Answers req on res (which the handler borrows: it retains res to answer
 * later). id is the part of the path "{id}" matched ("" for other rows). */
typedef void (*vrt_route_handler)(void *ud, const vrt_route *rt, const vrt_http_req *req,
                                  vrt_http_res *res, const char *id);

struct vrt_route {
    const char *method; /* "GET" (and HEAD) or "POST" */
    const char *path;   /* "/generate", or a prefix + "{id}" */
    int api;            /* VRT_ROUTE_* */
    int kind;           /* the VRT_API_* whose body it parses and whose error format
                           it answers in, else 0 */
    int needs_ready;    /* 1: answered 503 until the model is loaded */
    vrt_route_handler handle;
};

/* The row of t[0..n) for method and path, with *id set to the part of the
 * path matched by "{id}"; or NULL with *status 405 (a TGI or OpenAI route
 * has this path, with another method) or 404. */
const vrt_route *vrt_route_find(const vrt_route *t, size_t n, const char *method, const char *path,
                                const char **id, int *status);

/* The message of a 404 or 405 answer (as find's status) into buf[cap],
 * truncated to fit: "method GET is not allowed on /generate", or
 * "no route GET /x (routes: /generate, ..., /v1/models/{id})" listing every
 * path in table order. */
void vrt_route_error_msg(const vrt_route *t, size_t n, int status, const char *method,
                         const char *path, char *buf, size_t cap);

#endif
