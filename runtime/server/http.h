/* http.h — the HTTP/1.1 transport of the server: libuv TCP + http_parser.
 *
 * This layer knows nothing about LLMs. It accepts connections, parses
 * requests (keep-alive, pipelining, chunked request bodies), enforces the
 * transport limits (payload size, header size, read and idle timeouts,
 * connection cap), API keys and CORS, and hands every other request to one
 * handler. The handler answers with a full response (Content-Length) or a
 * chunked stream (SSE), now or later from the loop thread; other threads
 * get onto the loop thread with vrt_http_server_post().
 *
 * Threads: everything here runs on the thread that runs the uv loop, except
 * vrt_http_server_post(), which any thread may call.
 *
 * Ownership of a response (vrt_http_res): it is reference counted. The
 * handler receives ONE reference and must call vrt_http_res_release() exactly
 * once when it no longer needs the response (usually right after
 * vrt_http_respond() or vrt_http_stream_end(), or in the on_close callback).
 * The request (vrt_http_req) stays valid as long as the handler holds its
 * reference. A response that is never finished keeps its connection waiting;
 * one that is finished after the client went away is simply dropped.
 *
 * Pipelined requests on one connection are dispatched as they arrive (their
 * handlers may run concurrently) but answered strictly in request order: the
 * output of a later response is buffered until all earlier ones are sent.
 *
 * Errors produced by this layer are JSON in the TGI style:
 *   {"error": "request body is larger than ...", "error_type": "payload_too_large"}
 * with statuses 400 (malformed HTTP), 401 (missing/wrong API key), 408
 * (request not received within read_timeout_s), 413 (body > payload_limit),
 * 431 (headers > 64 KiB) and 503 (more than max_connections open).
 */
#ifndef VRT_SERVER_HTTP_H
#define VRT_SERVER_HTTP_H

#include "core/err.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Request headers (request line + all header lines) larger than this are
 * answered with 431. */
#define VRT_HTTP_MAX_HEADER_BYTES (64 * 1024)
/* At most this many requests of one connection wait for their responses;
 * further pipelined input is left unread until one finishes. */
#define VRT_HTTP_MAX_PIPELINE 32

typedef struct vrt_http_server vrt_http_server;

/* A parsed request. All strings are NUL-terminated and owned by the
 * response; they stay valid while the handler holds its reference. */
typedef struct vrt_http_req {
    const char *method;         /* "GET", "POST", "OPTIONS", ... */
    const char *path;           /* "/v1/completions" (raw, not percent-decoded) */
    const char *query;          /* "a=1" or "" (without the '?') */
    int n_headers;              /* in arrival order; duplicates kept */
    const char **header_names;  /* [n_headers], lower-cased */
    const char **header_values; /* [n_headers], as received */
    const char *body;           /* [body_len] + NUL; "" when there is none */
    size_t body_len;
    uint64_t id;        /* unique per request within the server */
    const char *remote; /* "127.0.0.1:54321" or "[::1]:54321" */
    int http_minor;     /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
} vrt_http_req;

typedef struct vrt_http_res vrt_http_res;

/* Called on the loop thread once per request that passed the transport
 * checks. res carries one reference for the handler (see above). */
typedef void (*vrt_http_handler)(void *ud, const vrt_http_req *req, vrt_http_res *res);

typedef struct vrt_http_opts {
    /* All from the config (server.*), resolved by the schema; no defaults
     * here: a missing value is an error. */
    const char *host;            /* "127.0.0.1", "0.0.0.0", "::", "localhost" */
    int port;                    /* 0 = ephemeral (see vrt_http_server_port) */
    int64_t payload_limit;       /* max request body bytes, > 0 */
    int max_connections;         /* open connections before 503, > 0 */
    double read_timeout_s;       /* a request must arrive completely within this, > 0 */
    double keep_alive_timeout_s; /* idle keep-alive connections are closed after; 0 = at once */
    const char *const *api_keys; /* when n_api_keys > 0, "Authorization: Bearer <key>" needed */
    int n_api_keys;
    const char *const *cors_origins; /* allowed Origins; "*" allows any */
    int n_cors_origins;
} vrt_http_opts;

/* Binds and listens on o->host:o->port on loop (whose thread becomes the
 * loop thread). Options are copied. On failure returns a VRT_E* code with a
 * message; handles opened so far are released when the loop next runs. */
int vrt_http_server_start(vrt_http_server **out, uv_loop_t *loop, const vrt_http_opts *o,
                          vrt_http_handler h, void *ud, vrt_err *err);
/* The port actually bound (useful with port 0). */
int vrt_http_server_port(const vrt_http_server *s);
/* Graceful drain: closes the listener, closes idle keep-alive connections
 * now and every other connection once its responses are sent. */
void vrt_http_server_stop_accepting(vrt_http_server *s);
/* Requests handed to the handler whose response is neither finished nor
 * abandoned by a client disconnect. */
size_t vrt_http_server_in_flight(const vrt_http_server *s);
/* Closes the listener and every connection (unfinished responses get their
 * on_close callback), runs what is still queued by vrt_http_server_post,
 * and calls done(ud) on the loop thread once all handles are closed; then
 * s is freed. Responses still referenced by handlers stay valid (their
 * writes fail with VRT_ECANCELED) until released. No vrt_http_server_post
 * may start after this call (those that race with it get VRT_ECANCELED, but
 * s itself must still be alive when they are called). */
void vrt_http_server_close(vrt_http_server *s, void (*done)(void *), void *ud);

/* --- Responses: loop thread only. Each returns 0, VRT_EINVAL when called in
 * the wrong state (e.g. respond after stream_begin, write after end),
 * VRT_ECANCELED when the client has gone away (the data is dropped), or
 * VRT_ENOMEM. --- */

/* A complete response with Content-Length; finishes the response. */
int vrt_http_respond(vrt_http_res *r, int status, const char *content_type, const char *body,
                     size_t len);
/* Convenience: a TGI-style JSON error {"error": msg, "error_type": type}. */
int vrt_http_respond_error(vrt_http_res *r, int status, const char *error_type, const char *msg);
/* Starts a chunked response (HTTP/1.0 clients: raw body, then close). */
int vrt_http_stream_begin(vrt_http_res *r, int status, const char *content_type);
/* One chunk; len 0 is a no-op. */
int vrt_http_stream_write(vrt_http_res *r, const char *data, size_t len);
/* The terminating chunk; finishes the response. */
int vrt_http_stream_end(vrt_http_res *r);
/* Adds a response header; only before respond/stream_begin. Names or values
 * containing CR, LF or NUL are refused (logged, not sent). */
void vrt_http_res_set_header(vrt_http_res *r, const char *name, const char *value);
/* 1 once the client has disconnected (or the server closed the connection)
 * before this response was finished. */
int vrt_http_res_closed(const vrt_http_res *r);
/* cb(ud) runs once on the loop thread if the connection goes away before
 * the response is finished (use it to cancel generation). If that already
 * happened, cb is scheduled to run soon (never from inside this call). A
 * second call replaces the callback. cb may write (writes fail harmlessly)
 * and may release the handler's reference. */
void vrt_http_res_on_close(vrt_http_res *r, void (*cb)(void *ud), void *ud);
/* Bytes of this response not yet handed to the kernel (buffered behind
 * earlier pipelined responses or queued in libuv); lets a streaming
 * producer notice a client that does not read. 0 once finished or closed. */
size_t vrt_http_res_pending_bytes(const vrt_http_res *r);
/* The request this response answers. */
const vrt_http_req *vrt_http_res_req(const vrt_http_res *r);
void vrt_http_res_retain(vrt_http_res *r);
void vrt_http_res_release(vrt_http_res *r);

/* Any thread: runs fn(ud) on the loop thread soon, in posting order.
 * Returns VRT_ECANCELED after vrt_http_server_close, VRT_ENOMEM. */
int vrt_http_server_post(vrt_http_server *s, void (*fn)(void *), void *ud);

/* Case-insensitive header lookup in a request; NULL when absent. */
const char *vrt_http_req_header(const vrt_http_req *req, const char *name);

#endif
