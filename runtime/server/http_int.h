/* http_int.h — internals shared by http.c (connections, parsing) and
 * http_res.c (responses). Not a public header.
 */
#ifndef VRT_SERVER_HTTP_INT_H
#define VRT_SERVER_HTTP_INT_H

#include "core/util.h"
#include "server/http.h"

#include <http_parser.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http_conn http_conn;

enum { RES_NEW, RES_STREAMING, RES_DONE };

struct vrt_http_res {
    int refs;
    uv_loop_t *loop;
    http_conn *conn; /* NULL once the response left the FIFO */
    vrt_http_res *next;
    vrt_http_req req;
    /* Storage behind req. */
    vrt_strbuf url, hdr, body;
    const char **names_values; /* [2 * n_headers] */
    char remote[64];
    char method[24];
    char cors_origin[256]; /* "" = no CORS header */
    vrt_strbuf extra;      /* handler's headers, "Name: value\r\n"... */
    vrt_strbuf out;        /* bytes waiting until this response is the FIFO head */
    int state;
    unsigned keep_alive : 1, closed : 1, head_only : 1, http10 : 1, counted : 1;
    void (*on_close)(void *);
    void *on_close_ud;
};

/* The request being received on a connection. */
typedef struct {
    int active; /* message begun, not complete */
    vrt_strbuf url, hdr;
    size_t *offs; /* name/value start offsets into hdr, [2 * n] */
    size_t cap;   /* of offs */
    int n, in_value, headers_done;
    size_t hdr_bytes;
    vrt_strbuf body;
    int reject; /* status for a rejection that stops the parser */
    int deny;   /* 401 after the message (body discarded), or 204 preflight */
    int keep_alive;
    char cors_origin[256];
    const char *err_type, *err_msg;
    char err_buf[160];
} parse_state;

enum { TM_NONE, TM_READ, TM_IDLE, TM_LINGER };

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut_req;
    vrt_http_server *srv;
    http_parser parser;
    http_conn *prev, *next;
    vrt_http_res *q_head, *q_tail;
    int q_len;
    parse_state ps;
    char remote[64];
    vrt_strbuf pend; /* unparsed input while the parser is paused */
    int open_handles;
    int timer_mode;
    unsigned closing : 1, no_more : 1, shutting : 1, paused : 1, reading : 1, in_feed : 1,
        rejected : 1;
};

typedef struct post_item {
    void (*fn)(void *);
    void *ud;
    struct post_item *next;
} post_item;

struct vrt_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_async_t async;
    vrt_http_handler handler;
    void *ud;
    int64_t payload_limit;
    int max_connections;
    uint64_t read_timeout_ms, keep_alive_ms;
    char **api_keys;
    int n_api_keys;
    char **cors;
    int n_cors, cors_any;
    http_conn *conns;
    int n_conns, n_rejected;
    size_t in_flight;
    uint64_t next_id;
    int port;
    int accepting, draining, closing, open_handles;
    void (*close_done)(void *);
    void *close_ud;
    pthread_mutex_t mu;
    int post_closed;
    post_item *post_head, *post_tail;
    char rbuf[64 * 1024];
};

/* http_res.c */
int vrt__http_has_crlf(const char *s);
/* A new response appended to c's FIFO, holding the FIFO's reference. */
vrt_http_res *vrt__http_res_new(http_conn *c);
/* Queues bytes on the socket (copied); closes c on failure. */
int vrt__http_conn_write(http_conn *c, const char *data, size_t len);

/* http.c */
void vrt__http_conn_close(http_conn *c);
void vrt__http_conn_advance(http_conn *c);

#endif
