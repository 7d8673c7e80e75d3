/* test_http.c — the HTTP/1.1 server layer (runtime/server/http.c).
 *
 * Each test runs the server on 127.0.0.1, port 0, on a uv loop in a second
 * thread and talks to it with plain blocking sockets (3 s receive timeout)
 * from the test thread. Responses are read with http_parser in response
 * mode, so the client understands Content-Length, chunked bodies and
 * pipelined responses. Nothing here asserts a duration.
 */
#include "test.h"

#include "core/util.h"
#include "server/api_req.h"
#include "server/http.h"
#include "server/route.h"
#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---------- the server side ---------- */

typedef struct {
    uv_loop_t loop;
    vrt_http_server *srv;
    pthread_t th;
    pthread_t loop_thread;
    int port;
    atomic_int seq; /* order in which handlers respond */
    atomic_int late_done_at, now_done_at;
    atomic_int on_close_calls, write_after_close_rc, end_after_close_rc, after_close_done;
    atomic_int posted, posted_on_loop_thread;
    atomic_int saw_authorization;
    atomic_int reg_inside, reg_calls, reg_called_inside, reg_closed;
} harness;

static harness *g_h;

static void *loop_main(void *arg)
{
    harness *h = arg;
    h->loop_thread = pthread_self();
    uv_run(&h->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int h_start(harness *h, vrt_http_opts *o, vrt_http_handler fn)
{
    memset(h, 0, sizeof *h);
    g_h = h;
    uv_loop_init(&h->loop);
    vrt_err err = {0};
    o->host = "127.0.0.1";
    o->port = 0;
    /* The HTTP layer has no defaults (the config schema does): tests that
     * leave a setting at zero get a test value here. */
    if (!o->payload_limit)
        o->payload_limit = 2000000;
    if (!o->max_connections)
        o->max_connections = 1024;
    if (!o->read_timeout_s)
        o->read_timeout_s = 30;
    if (!o->keep_alive_timeout_s)
        o->keep_alive_timeout_s = 5;
    if (vrt_http_server_start(&h->srv, &h->loop, o, fn, h, &err) != 0) {
        fprintf(stderr, "server start: %s\n", err.msg);
        return -1;
    }
    h->port = vrt_http_server_port(h->srv);
    return pthread_create(&h->th, NULL, loop_main, h);
}

static void close_on_loop(void *ud)
{
    harness *h = ud;
    vrt_http_server_close(h->srv, NULL, NULL);
}

static void h_stop(harness *h)
{
    vrt_http_server_post(h->srv, close_on_loop, h);
    pthread_join(h->th, NULL);
    /* Anything still open (none expected) is closed here. */
    uv_run(&h->loop, UV_RUN_NOWAIT);
    uv_loop_close(&h->loop);
}

/* Test handler: routes by path. */
typedef struct {
    uv_timer_t t;
    vrt_http_res *res;
    int step;
} timer_ctx;

static void timer_closed(uv_handle_t *hd)
{
    free(hd->data);
}

static void late_fire(uv_timer_t *t)
{
    timer_ctx *x = t->data;
    g_h->late_done_at = ++g_h->seq;
    vrt_http_respond(x->res, 200, "text/plain", "late", 4);
    vrt_http_res_release(x->res);
    uv_close((uv_handle_t *)t, timer_closed);
}

static void sse_fire(uv_timer_t *t)
{
    timer_ctx *x = t->data;
    char ev[64];
    int n = snprintf(ev, sizeof ev, "data: {\"n\":%d}\n\n", x->step + 1);
    vrt_http_stream_write(x->res, ev, (size_t)n);
    if (++x->step == 3) {
        vrt_http_stream_end(x->res);
        vrt_http_res_release(x->res);
        uv_close((uv_handle_t *)t, timer_closed);
    }
}

static void after_close_fire(uv_timer_t *t)
{
    timer_ctx *x = t->data;
    g_h->write_after_close_rc = vrt_http_stream_write(x->res, "data: late\n\n", 12);
    g_h->end_after_close_rc = vrt_http_stream_end(x->res);
    vrt_http_res_release(x->res);
    g_h->after_close_done = 1;
    uv_close((uv_handle_t *)t, timer_closed);
}

static void hang_on_close(void *ud)
{
    vrt_http_res *res = ud;
    g_h->on_close_calls++;
    /* Keep using the response a little later: must be harmless. */
    timer_ctx *x = calloc(1, sizeof *x);
    x->res = res;
    uv_timer_init(&g_h->loop, &x->t);
    x->t.data = x;
    uv_timer_start(&x->t, after_close_fire, 50, 0);
}

static void reg_cb(void *ud)
{
    vrt_http_res *res = ud;
    g_h->reg_calls++;
    g_h->reg_called_inside |= g_h->reg_inside;
    vrt_http_res_release(res);
}

static void reg_fire(uv_timer_t *t)
{
    timer_ctx *x = t->data;
    g_h->reg_closed = vrt_http_res_closed(x->res);
    g_h->reg_inside = 1;
    vrt_http_res_on_close(x->res, reg_cb, x->res); /* the client is gone already */
    g_h->reg_inside = 0;
    uv_close((uv_handle_t *)t, timer_closed);
}

static void start_timer(harness *h, vrt_http_res *res, uv_timer_cb cb, uint64_t ms, uint64_t repeat)
{
    timer_ctx *x = calloc(1, sizeof *x);
    x->res = res;
    uv_timer_init(&h->loop, &x->t);
    x->t.data = x;
    uv_timer_start(&x->t, cb, ms, repeat);
}

static void handler(void *ud, const vrt_http_req *req, vrt_http_res *res)
{
    harness *h = ud;
    if (vrt_http_req_header(req, "authorization"))
        h->saw_authorization = 1;
    if (strncmp(req->path, "/late", 5) == 0) {
        start_timer(h, res, late_fire, 150, 0);
        return; /* the timer releases */
    }
    if (strcmp(req->path, "/reg") == 0) {
        start_timer(h, res, reg_fire, 200, 0);
        return; /* reg_cb releases */
    }
    if (strcmp(req->path, "/now") == 0) {
        h->now_done_at = ++h->seq;
        vrt_http_respond(res, 200, "text/plain", "now", 3);
    } else if (strcmp(req->path, "/sse") == 0) {
        vrt_http_res_set_header(res, "Cache-Control", "no-cache");
        vrt_http_stream_begin(res, 200, "text/event-stream");
        if (vrt_http_res_pending_bytes(res) > 4096) /* headers only: small or 0 */
            vrt_http_stream_write(res, "data: wrong\n\n", 13);
        start_timer(h, res, sse_fire, 10, 10);
        return;
    } else if (strcmp(req->path, "/hang") == 0) {
        vrt_http_stream_begin(res, 200, "text/event-stream");
        vrt_http_stream_write(res, "data: first\n\n", 13);
        vrt_http_res_on_close(res, hang_on_close, res);
        return; /* released in after_close_fire */
    } else {
        char body[1024];
        const char *ua = vrt_http_req_header(req, "x-test");
        int n =
            snprintf(body, sizeof body, "%s %s?%s id=%d x-test=%s len=%zu body=%.*s", req->method,
                     req->path, req->query, req->id > 0, ua ? ua : "-", req->body_len,
                     (int)(req->body_len > 200 ? 200 : req->body_len), req->body);
        vrt_http_respond(res, 200, "text/plain", body, (size_t)n);
    }
    vrt_http_res_release(res);
}

/* ---------- the client side ---------- */

typedef struct {
    int fd;
    http_parser p;
    char buf[256 * 1024];
    size_t len, off; /* unparsed bytes: buf[off..len) */
    /* The response being read. */
    int status, done;
    char headers[4096];
    size_t hlen;
    char *body;
    size_t body_len;
    int eof, head_next;
} client;

static void http_parser_set_head(client *c)
{
    c->head_next = 1;
}

static int c_on_header_field(http_parser *p, const char *at, size_t len)
{
    client *c = p->data;
    if (c->hlen + len + 4 < sizeof c->headers) {
        c->headers[c->hlen++] = '\n';
        memcpy(c->headers + c->hlen, at, len);
        c->hlen += len;
        c->headers[c->hlen++] = ':';
        c->headers[c->hlen] = 0;
    }
    return 0;
}

static int c_on_header_value(http_parser *p, const char *at, size_t len)
{
    client *c = p->data;
    if (c->hlen + len + 2 < sizeof c->headers) {
        memcpy(c->headers + c->hlen, at, len);
        c->hlen += len;
        c->headers[c->hlen] = 0;
    }
    return 0;
}

static int c_on_body(http_parser *p, const char *at, size_t len)
{
    client *c = p->data;
    c->body = realloc(c->body, c->body_len + len + 1);
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    c->body[c->body_len] = 0;
    return 0;
}

static int c_on_headers_complete(http_parser *p)
{
    client *c = p->data;
    c->status = (int)p->status_code;
    if (c->head_next) { /* a response to HEAD has no body */
        c->head_next = 0;
        return 1;
    }
    return 0;
}

static int c_on_message_complete(http_parser *p)
{
    client *c = p->data;
    c->done = 1;
    http_parser_pause(p, 1);
    return 0;
}

static http_parser_settings c_settings = {
    .on_header_field = c_on_header_field,
    .on_header_value = c_on_header_value,
    .on_headers_complete = c_on_headers_complete,
    .on_body = c_on_body,
    .on_message_complete = c_on_message_complete,
};

static int c_connect(client *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    struct timeval tv = {3, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    http_parser_init(&c->p, HTTP_RESPONSE);
    c->p.data = c;
    return 0;
}

static int c_send(client *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int c_sends(client *c, const char *s)
{
    return c_send(c, s, strlen(s));
}

/* Reads one response (status, headers, body). Returns 0, or -1 on timeout,
 * EOF before a complete response, or a parse error. */
static int c_read(client *c)
{
    free(c->body);
    c->body = NULL;
    c->body_len = 0;
    c->hlen = 0;
    c->headers[0] = 0;
    c->status = 0;
    c->done = 0;
    http_parser_pause(&c->p, 0);
    for (;;) {
        if (c->off < c->len) {
            size_t n = http_parser_execute(&c->p, &c_settings, c->buf + c->off, c->len - c->off);
            c->off += n;
            if (c->done)
                return 0;
            if (HTTP_PARSER_ERRNO(&c->p) != HPE_OK)
                return -1;
        }
        if (c->off == c->len)
            c->off = c->len = 0;
        if (c->len == sizeof c->buf)
            return -1;
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            c->eof = n == 0;
            if (n == 0) { /* a response ended by EOF */
                http_parser_execute(&c->p, &c_settings, NULL, 0);
                if (c->done)
                    return 0;
            }
            return -1;
        }
        c->len += (size_t)n;
    }
}

/* 1 if the server closes the connection (EOF or reset) within 3 s. */
static int c_closed_by_server(client *c)
{
    char tmp[4096];
    for (;;) {
        ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
        if (n == 0)
            return 1;
        if (n < 0)
            return errno == ECONNRESET;
    }
}

static void c_close(client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->body);
    c->body = NULL;
}

static int has_header(const client *c, const char *line)
{
    return strstr(c->headers, line) != NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#define START(h, o)                                                                                \
    do {                                                                                           \
        if (h_start(&(h), &(o), handler) != 0)                                                     \
            TFAIL("server did not start");                                                         \
    } while (0)

/* ---------- tests ---------- */

TEST(http_get_and_post)
{
    harness h;
    vrt_http_opts o = {0};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "GET /hello?a=1 HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    ASSERT_EQ_STR(c.body, "GET /hello?a=1 id=1 x-test=yes len=0 body=");
    ASSERT_EQ_INT(c_sends(&c, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    ASSERT_EQ_STR(c.body, "POST /p? id=1 x-test=- len=5 body=hello");
    /* A chunked request body. */
    ASSERT_EQ_INT(c_sends(&c, "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
                  0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_STR(c.body, "POST /c? id=1 x-test=- len=5 body=abcde");
    /* Expect: 100-continue gets the interim response before the body. */
    ASSERT_EQ_INT(c_sends(&c, "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                              "Expect: 100-continue\r\n\r\n"),
                  0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 100);
    ASSERT_EQ_INT(c_sends(&c, "ok"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    ASSERT_EQ_STR(c.body, "POST /e? id=1 x-test=- len=2 body=ok");
    /* An Upgrade request is answered as plain HTTP (no protocol switch). */
    ASSERT_EQ_INT(c_sends(&c,
                          "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                          "GET /next HTTP/1.1\r\n\r\n"),
                  0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_CONTAINS(c.body, "GET /ws?");
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_CONTAINS(c.body, "GET /next?");
    /* HEAD: headers only. */
    ASSERT_EQ_INT(c_sends(&c, "HEAD /h HTTP/1.1\r\n\r\nGET /g HTTP/1.1\r\n\r\n"), 0);
    http_parser_set_head(&c);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    ASSERT_EQ_INT(c.body_len, 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_CONTAINS(c.body, "GET /g?");
    c_close(&c);
    h_stop(&h);
}

TEST(http_keep_alive_three_requests_and_close)
{
    harness h;
    vrt_http_opts o = {0};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    for (int i = 0; i < 3; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET /r%d HTTP/1.1\r\nHost: x\r\n%s\r\n", i,
                 i == 2 ? "Connection: close\r\n" : "");
        ASSERT_EQ_INT(c_sends(&c, req), 0);
        ASSERT_EQ_INT(c_read(&c), 0);
        ASSERT_EQ_INT(c.status, 200);
        char want[64];
        snprintf(want, sizeof want, "GET /r%d?", i);
        ASSERT_CONTAINS(c.body, want);
    }
    ASSERT(has_header(&c, "Connection:close"));
    ASSERT(c_closed_by_server(&c));
    c_close(&c);
    /* HTTP/1.0 without keep-alive: closed after the response. */
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "GET /old HTTP/1.0\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    ASSERT(c_closed_by_server(&c));
    c_close(&c);
    h_stop(&h);
}

TEST(http_pipelining_in_order)
{
    harness h;
    vrt_http_opts o = {0};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "GET /late HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /now HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /third HTTP/1.1\r\nHost: x\r\n\r\n"),
                  0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_STR(c.body, "late");
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_STR(c.body, "now");
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_CONTAINS(c.body, "GET /third");
    /* The second handler answered first; its bytes waited. */
    ASSERT_EQ_INT(h.now_done_at, 1);
    ASSERT_EQ_INT(h.late_done_at, 2);
    c_close(&c);
    h_stop(&h);
}

TEST(http_pipelining_past_the_window)
{
    /* More pipelined requests than VRT_HTTP_MAX_PIPELINE, the first one slow:
     * the server stops parsing at the window and resumes as answers go out. */
    harness h;
    vrt_http_opts o = {0};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    int n = VRT_HTTP_MAX_PIPELINE * 2 + 5;
    char *all = malloc((size_t)n * 64);
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)sprintf(all + len, "GET /%s%d HTTP/1.1\r\n\r\n", i == 0 ? "late" : "r", i);
    ASSERT_EQ_INT(c_send(&c, all, len), 0);
    free(all);
    for (int i = 0; i < n; i++) {
        ASSERT_EQ_INT(c_read(&c), 0);
        ASSERT_EQ_INT(c.status, 200);
        char want[32];
        snprintf(want, sizeof want, "GET /r%d?", i);
        if (i == 0)
            ASSERT_EQ_STR(c.body, "late");
        else
            ASSERT_CONTAINS(c.body, want);
    }
    c_close(&c);
    h_stop(&h);
}

TEST(http_413_payload_too_large)
{
    harness h;
    vrt_http_opts o = {.payload_limit = 1000};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    /* Only the headers and a bit of the body: the answer comes anyway. */
    ASSERT_EQ_INT(c_sends(&c, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\nxxxx"),
                  0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 413);
    ASSERT_CONTAINS(c.body, "\"error_type\":\"payload_too_large\"");
    ASSERT_CONTAINS(c.body, "\"error\":\"request body is 5000 bytes");
    c_close(&c);
    /* Chunked: refused once it passes the limit. */
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(
        c_sends(&c, "POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
    char chunk[600 + 16];
    int n = snprintf(chunk, sizeof chunk, "258\r\n");
    memset(chunk + n, 'a', 600);
    memcpy(chunk + n + 600, "\r\n", 2);
    ASSERT_EQ_INT(c_send(&c, chunk, (size_t)n + 602), 0);
    ASSERT_EQ_INT(c_send(&c, chunk, (size_t)n + 602), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 413);
    c_close(&c);
    h_stop(&h);
}

TEST(http_408_slow_request)
{
    harness h;
    vrt_http_opts o = {.read_timeout_s = 0.2};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "GET /slow HTTP/1.1\r\nHost: x\r\n"), 0); /* never finished */
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 408);
    ASSERT_CONTAINS(c.body, "\"error_type\":\"request_timeout\"");
    ASSERT(c_closed_by_server(&c));
    c_close(&c);
    /* Body too slow: same. */
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 408);
    c_close(&c);
    h_stop(&h);
}

TEST(http_keep_alive_idle_timeout)
{
    harness h;
    vrt_http_opts o = {.keep_alive_timeout_s = 0.2};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    ASSERT(c_closed_by_server(&c));
    c_close(&c);
    h_stop(&h);
}

TEST(http_431_headers_too_large)
{
    harness h;
    vrt_http_opts o = {0};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    size_t big = 70 * 1024;
    char *req = malloc(big + 128);
    int n = snprintf(req, 128, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'b', big);
    memcpy(req + n + big, "\r\n\r\n", 4);
    c_send(&c, req, (size_t)n + big + 4); /* may fail part way: the server answers early */
    free(req);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 431);
    ASSERT_CONTAINS(c.body, "request_header_fields_too_large");
    c_close(&c);
    h_stop(&h);
}

TEST(http_400_garbage)
{
    harness h;
    vrt_http_opts o = {0};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "\x01\x02 garbage \xff\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 400);
    ASSERT_CONTAINS(c.body, "\"error_type\":\"bad_request\"");
    ASSERT(c_closed_by_server(&c));
    c_close(&c);
    /* A good request followed by garbage: the first is still answered. */
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/9\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 400);
    c_close(&c);
    /* Bad Content-Length. */
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 400);
    c_close(&c);
    h_stop(&h);
}

TEST(http_api_keys)
{
    harness h;
    const char *keys[] = {"k-one", "secret"};
    vrt_http_opts o = {.api_keys = keys, .n_api_keys = 2};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 401);
    ASSERT_CONTAINS(c.body, "\"error_type\":\"authentication_error\"");
    /* Wrong key, with a body that is discarded; the connection stays. */
    ASSERT_EQ_INT(c_sends(&c, "POST /x HTTP/1.1\r\nAuthorization: Bearer secreT\r\n"
                              "Content-Length: 3\r\n\r\nabc"),
                  0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 401);
    ASSERT_EQ_INT(c_sends(&c, "GET /x HTTP/1.1\r\nAuthorization: Bearer secrets\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 401);
    ASSERT_EQ_INT(c_sends(&c, "GET /x HTTP/1.1\r\nAuthorization: Bearer secret\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    ASSERT_EQ_INT(h.saw_authorization, 0); /* the handler never sees the key */
    ASSERT_EQ_INT(c_sends(&c, "GET /health HTTP/1.1\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    ASSERT_EQ_INT(c_sends(&c, "GET /healthz HTTP/1.1\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 401);
    ASSERT_EQ_INT(c_sends(&c, "POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 401);
    c_close(&c);
    h_stop(&h);
}

TEST(http_cors)
{
    harness h;
    const char *origins[] = {"https://a.example"};
    const char *keys[] = {"secret"};
    vrt_http_opts o = {
        .cors_origins = origins, .n_cors_origins = 1, .api_keys = keys, .n_api_keys = 1};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    /* Preflight: no key needed. */
    ASSERT_EQ_INT(c_sends(&c,
                          "OPTIONS /v1/completions HTTP/1.1\r\nHost: x\r\n"
                          "Origin: https://a.example\r\n"
                          "Access-Control-Request-Method: POST\r\n"
                          "Access-Control-Request-Headers: content-type, authorization\r\n\r\n"),
                  0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 204);
    ASSERT(has_header(&c, "Access-Control-Allow-Origin:https://a.example"));
    ASSERT(has_header(&c, "Access-Control-Allow-Methods:GET, POST, OPTIONS"));
    ASSERT(has_header(&c, "Access-Control-Allow-Headers:content-type, authorization"));
    /* A normal request from the allowed origin. */
    ASSERT_EQ_INT(c_sends(&c, "GET /x HTTP/1.1\r\nOrigin: https://a.example\r\n"
                              "Authorization: Bearer secret\r\n\r\n"),
                  0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    ASSERT(has_header(&c, "Access-Control-Allow-Origin:https://a.example"));
    /* The 401 carries it too, so a browser can read the error. */
    ASSERT_EQ_INT(c_sends(&c, "GET /x HTTP/1.1\r\nOrigin: https://a.example\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 401);
    ASSERT(has_header(&c, "Access-Control-Allow-Origin:https://a.example"));
    /* Another origin: no CORS header. */
    ASSERT_EQ_INT(c_sends(&c, "GET /x HTTP/1.1\r\nOrigin: https://evil.example\r\n"
                              "Authorization: Bearer secret\r\n\r\n"),
                  0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    ASSERT(!has_header(&c, "Access-Control-Allow-Origin"));
    c_close(&c);
    h_stop(&h);
}

TEST(http_connection_cap)
{
    harness h;
    vrt_http_opts o = {.max_connections = 2};
    START(h, o);
    client a, b, c;
    ASSERT_EQ_INT(c_connect(&a, h.port), 0);
    ASSERT_EQ_INT(c_sends(&a, "GET /a HTTP/1.1\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&a), 0);
    ASSERT_EQ_INT(c_connect(&b, h.port), 0);
    ASSERT_EQ_INT(c_sends(&b, "GET /b HTTP/1.1\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&b), 0);
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 503);
    ASSERT_CONTAINS(c.body, "max_connections");
    ASSERT(c_closed_by_server(&c));
    c_close(&c);
    /* After one closes, a new connection is served (the close is seen by
     * the loop soon; retry for up to 2 s). */
    c_close(&a);
    int status = 0;
    for (int i = 0; i < 40 && status != 200; i++) {
        sleep_ms(50);
        ASSERT_EQ_INT(c_connect(&c, h.port), 0);
        c_sends(&c, "GET /c HTTP/1.1\r\n\r\n");
        status = c_read(&c) == 0 ? c.status : -1;
        c_close(&c);
    }
    ASSERT_EQ_INT(status, 200);
    c_close(&b);
    h_stop(&h);
}

TEST(http_sse_stream)
{
    harness h;
    vrt_http_opts o = {0};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    ASSERT(has_header(&c, "Transfer-Encoding:chunked"));
    ASSERT(has_header(&c, "Content-Type:text/event-stream"));
    ASSERT(has_header(&c, "Cache-Control:no-cache"));
    ASSERT_EQ_STR(c.body, "data: {\"n\":1}\n\ndata: {\"n\":2}\n\ndata: {\"n\":3}\n\n");
    /* The connection is still usable. */
    ASSERT_EQ_INT(c_sends(&c, "GET /after HTTP/1.1\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    c_close(&c);
    h_stop(&h);
}

TEST(http_disconnect_mid_stream)
{
    harness h;
    vrt_http_opts o = {0};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    /* Read until the first event arrived, then hang up. */
    char got[1024];
    size_t n = 0;
    while (!strstr(got, "data: first")) {
        ssize_t k = recv(c.fd, got + n, sizeof got - 1 - n, 0);
        ASSERT(k > 0);
        n += (size_t)k;
        got[n] = 0;
    }
    c_close(&c);
    for (int i = 0; i < 300 && !h.after_close_done; i++)
        sleep_ms(10);
    ASSERT_EQ_INT(h.after_close_done, 1);
    sleep_ms(50);
    ASSERT_EQ_INT(h.on_close_calls, 1);
    ASSERT_EQ_INT(h.write_after_close_rc, VRT_ECANCELED);
    ASSERT_EQ_INT(h.end_after_close_rc, VRT_ECANCELED);
    h_stop(&h);
}

TEST(http_on_close_registered_after_disconnect)
{
    harness h;
    vrt_http_opts o = {0};
    START(h, o);
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "GET /reg HTTP/1.1\r\n\r\n"), 0);
    sleep_ms(20);
    c_close(&c);
    for (int i = 0; i < 300 && !h.reg_calls; i++)
        sleep_ms(10);
    sleep_ms(30);
    ASSERT_EQ_INT(h.reg_closed, 1);
    ASSERT_EQ_INT(h.reg_calls, 1);
    ASSERT_EQ_INT(h.reg_called_inside, 0); /* deferred, not from inside the call */
    h_stop(&h);
}

static void drain_fn(void *ud)
{
    harness *h = ud;
    vrt_http_server_stop_accepting(h->srv);
    h->posted = 1000 + (int)vrt_http_server_in_flight(h->srv);
}

TEST(http_graceful_drain)
{
    harness h;
    vrt_http_opts o = {0};
    START(h, o);
    client idle, busy;
    ASSERT_EQ_INT(c_connect(&idle, h.port), 0);
    ASSERT_EQ_INT(c_sends(&idle, "GET /a HTTP/1.1\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&idle), 0);
    ASSERT_EQ_INT(c_connect(&busy, h.port), 0);
    ASSERT_EQ_INT(c_sends(&busy, "GET /late HTTP/1.1\r\n\r\n"), 0);
    sleep_ms(30); /* the /late handler is running (150 ms) */
    ASSERT_EQ_INT(vrt_http_server_post(h.srv, drain_fn, &h), 0);
    for (int i = 0; i < 300 && h.posted < 1000; i++)
        sleep_ms(5);
    ASSERT_EQ_INT(h.posted, 1001);     /* one request in flight */
    ASSERT(c_closed_by_server(&idle)); /* idle keep-alive: closed now */
    ASSERT_EQ_INT(c_read(&busy), 0);   /* the running one finishes */
    ASSERT_EQ_STR(busy.body, "late");
    ASSERT(has_header(&busy, "Connection:close"));
    ASSERT(c_closed_by_server(&busy));
    client n;
    ASSERT(c_connect(&n, h.port) != 0); /* the listener is closed */
    c_close(&idle);
    c_close(&busy);
    h_stop(&h);
}

static void posted_fn(void *ud)
{
    harness *h = ud;
    h->posted_on_loop_thread = pthread_equal(pthread_self(), h->loop_thread) ? 1 : 0;
    h->posted++;
}

static void in_flight_fn(void *ud)
{
    harness *h = ud;
    h->posted = 100 + (int)vrt_http_server_in_flight(h->srv);
}

TEST(http_post_from_other_thread)
{
    harness h;
    vrt_http_opts o = {0};
    START(h, o);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ_INT(vrt_http_server_post(h.srv, posted_fn, &h), 0);
    for (int i = 0; i < 300 && h.posted < 5; i++)
        sleep_ms(10);
    ASSERT_EQ_INT(h.posted, 5);
    ASSERT_EQ_INT(h.posted_on_loop_thread, 1);
    ASSERT_EQ_INT(vrt_http_server_post(h.srv, in_flight_fn, &h), 0);
    for (int i = 0; i < 300 && h.posted < 100; i++)
        sleep_ms(10);
    ASSERT_EQ_INT(h.posted, 100); /* nothing in flight */
    h_stop(&h);
}

/* ---------- fuzz-ish robustness ---------- */

TEST(http_random_input_never_crashes)
{
    harness h;
    vrt_http_opts o = {.read_timeout_s = 0.3};
    START(h, o);
    static const char *parts[] = {"GET ",
                                  "POST ",
                                  "/x",
                                  "?q",
                                  " HTTP/1.1",
                                  "\r\n",
                                  "Content-Length: 3\r\n",
                                  "Transfer-Encoding: chunked\r\n",
                                  "3\r\nabc\r\n",
                                  "0\r\n\r\n",
                                  "\x00",
                                  "\xff",
                                  ":",
                                  " ",
                                  "Connection: close\r\n",
                                  "Expect: 100-continue\r\n",
                                  "\r\n\r\n"};
    unsigned seed = 12345;
    for (int round = 0; round < 30; round++) {
        client c;
        ASSERT_EQ_INT(c_connect(&c, h.port), 0);
        char buf[2048];
        size_t n = 0;
        for (int k = 0; k < 40; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *p = parts[(seed >> 16) % (sizeof parts / sizeof *parts)];
            size_t l = p[0] ? strlen(p) : 1;
            if (n + l >= sizeof buf)
                break;
            memcpy(buf + n, p, l);
            n += l;
        }
        c_send(&c, buf, n);
        shutdown(c.fd, SHUT_WR);
        c_closed_by_server(&c);
        c_close(&c);
    }
    /* Still serving. */
    client c;
    ASSERT_EQ_INT(c_connect(&c, h.port), 0);
    ASSERT_EQ_INT(c_sends(&c, "GET /alive HTTP/1.1\r\n\r\n"), 0);
    ASSERT_EQ_INT(c_read(&c), 0);
    ASSERT_EQ_INT(c.status, 200);
    c_close(&c);
    h_stop(&h);
}

/* The HTTP layer restates no default of the schema: settings left at zero
 * (or a missing host) are refused with the keys named. */
TEST(http_start_refuses_unset_settings)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    vrt_http_server *srv = NULL;
    vrt_err err = {0};
    vrt_http_opts o = {.host = "127.0.0.1"};
    ASSERT_EQ_INT(vrt_http_server_start(&srv, &loop, &o, handler, NULL, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "server.payload_limit");
    vrt_http_opts o2 = {.payload_limit = 1000, .max_connections = 1, .read_timeout_s = 1};
    err = (vrt_err){0};
    ASSERT_EQ_INT(vrt_http_server_start(&srv, &loop, &o2, handler, NULL, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "server.host");
    uv_loop_close(&loop);
}

/* ---------- the route table (server/route.h) ---------- */

/* The server's table: each row finds itself (GET rows by HEAD too), the
 * operational routes alone answer before the model is ready, and requests
 * that match no row get the 404 / 405 answers `serve` has always sent. */
TEST(http_route_table_of_the_server)
{
    size_t n = 0;
    const vrt_route *t = vrt_server_routes(&n);
    ASSERT(n == 11);
    const char *id = NULL;
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "%s", t[i].path);
        char *brace = strstr(path, "{id}");
        if (brace)
            snprintf(brace, sizeof path - (size_t)(brace - path), "m");
        ASSERT(vrt_route_find(t, n, t[i].method, path, &id, &status) == &t[i]);
        ASSERT_EQ_STR(id, brace ? "m" : "");
        if (strcmp(t[i].method, "GET") == 0)
            ASSERT(vrt_route_find(t, n, "HEAD", path, &id, &status) == &t[i]);
        int ops = strcmp(path, "/health") == 0 || strcmp(path, "/metrics") == 0;
        ASSERT_EQ_INT(t[i].needs_ready, !ops);
        ASSERT_EQ_INT(t[i].api == VRT_ROUTE_OPS, ops);
    }
    const vrt_route *r = vrt_route_find(t, n, "POST", "/v1/chat/completions", &id, &status);
    ASSERT(r && r->kind == VRT_API_OAI_CHAT && r->api == VRT_ROUTE_OPENAI);
    r = vrt_route_find(t, n, "POST", "/generate_stream", &id, &status);
    ASSERT(r && r->kind == VRT_API_TGI_GENERATE_STREAM && r->api == VRT_ROUTE_TGI);
    r = vrt_route_find(t, n, "GET", "/v1/models/a%2Fb", &id, &status);
    ASSERT(r && strcmp(r->path, "/v1/models/{id}") == 0);
    ASSERT_EQ_STR(id, "a%2Fb");

    char msg[512];
    ASSERT(vrt_route_find(t, n, "GET", "/generate", &id, &status) == NULL);
    ASSERT_EQ_INT(status, 405);
    vrt_route_error_msg(t, n, status, "GET", "/generate", msg, sizeof msg);
    ASSERT_EQ_STR(msg, "method GET is not allowed on /generate");
    ASSERT(vrt_route_find(t, n, "DELETE", "/v1/models/x", &id, &status) == NULL);
    ASSERT_EQ_INT(status, 405);
    ASSERT(vrt_route_find(t, n, "POST", "/v1/models", &id, &status) == NULL);
    ASSERT_EQ_INT(status, 405);
    /* The operational routes answer only their method. */
    ASSERT(vrt_route_find(t, n, "POST", "/health", &id, &status) == NULL);
    ASSERT_EQ_INT(status, 404);
    ASSERT(vrt_route_find(t, n, "PUT", "/metrics", &id, &status) == NULL);
    ASSERT_EQ_INT(status, 404);
    ASSERT(vrt_route_find(t, n, "GET", "/nope", &id, &status) == NULL);
    ASSERT_EQ_INT(status, 404);
    ASSERT(vrt_route_find(t, n, "GET", "/v1/model", &id, &status) == NULL);
    ASSERT_EQ_INT(status, 404);
    vrt_route_error_msg(t, n, status, "GET", "/nope", msg, sizeof msg);
    ASSERT_EQ_STR(msg,
                  "no route GET /nope (routes: /generate, /generate_stream, /, /info, /health, "
                  "/metrics, /tokenize, /v1/completions, /v1/chat/completions, /v1/models, "
                  "/v1/models/{id})");
    /* A long path is cut to the buffer, as snprintf does. */
    char small[24];
    vrt_route_error_msg(t, n, 404, "GET", "/nope", small, sizeof small);
    ASSERT_EQ_STR(small, "no route GET /nope (rou");
}

static void nop_route(void *ud, const vrt_route *rt, const vrt_http_req *req, vrt_http_res *res,
                      const char *id)
{
}

/* The matching rules on a table of its own: exact paths, "{id}" prefixes,
 * a path served under two methods, and which misses are 405. */
TEST(http_route_find_rules)
{
    static const vrt_route t[] = {
        {"GET", "/a", VRT_ROUTE_TGI, 0, 1, nop_route},
        {"POST", "/a", VRT_ROUTE_TGI, 0, 1, nop_route},
        {"GET", "/items/{id}", VRT_ROUTE_OPENAI, 0, 1, nop_route},
        {"GET", "/ping", VRT_ROUTE_OPS, 0, 0, nop_route},
    };
    size_t n = sizeof t / sizeof t[0];
    const char *id = NULL;
    int status = 0;
    ASSERT(vrt_route_find(t, n, "GET", "/a", &id, &status) == &t[0]);
    ASSERT(vrt_route_find(t, n, "POST", "/a", &id, &status) == &t[1]);
    ASSERT(vrt_route_find(t, n, "HEAD", "/a", &id, &status) == &t[0]);
    ASSERT(vrt_route_find(t, n, "PUT", "/a", &id, &status) == NULL);
    ASSERT_EQ_INT(status, 405);
    ASSERT(vrt_route_find(t, n, "POST", "/", &id, &status) == NULL);
    ASSERT_EQ_INT(status, 404);
    ASSERT(vrt_route_find(t, n, "GET", "/a/", &id, &status) == NULL);
    ASSERT_EQ_INT(status, 404);
    ASSERT(vrt_route_find(t, n, "GET", "/items/", &id, &status) == &t[2]);
    ASSERT_EQ_STR(id, "");
    ASSERT(vrt_route_find(t, n, "GET", "/items/x/y", &id, &status) == &t[2]);
    ASSERT_EQ_STR(id, "x/y");
    ASSERT(vrt_route_find(t, n, "GET", "/items", &id, &status) == NULL);
    ASSERT_EQ_INT(status, 404);
    ASSERT(vrt_route_find(t, n, "POST", "/items/x", &id, &status) == NULL);
    ASSERT_EQ_INT(status, 405);
    ASSERT(vrt_route_find(t, n, "POST", "/ping", &id, &status) == NULL);
    ASSERT_EQ_INT(status, 404);
    /* Each path once in the list, though /a has two rows. */
    char msg[128];
    vrt_route_error_msg(t, n, 404, "GET", "/z", msg, sizeof msg);
    ASSERT_EQ_STR(msg, "no route GET /z (routes: /a, /items/{id}, /ping)");
}

/* The one growable buffer (core/util.h) as the HTTP layer uses it: short
 * and long printf output (past the 256-byte stack buffer), puts, and free
 * leaving it empty and usable. */
TEST(http_strbuf_printf_puts_free)
{
    vrt_strbuf b = {0};
    vrt_strbuf_printf(&b, "HTTP/1.%d %d %s\r\n", 1, 200, "OK");
    ASSERT_EQ_STR(b.p, "HTTP/1.1 200 OK\r\n");
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    vrt_strbuf_printf(&b, "X-Big: %s\r\n", big);
    ASSERT_EQ_INT(b.len, 17 + 7 + 999 + 2);
    ASSERT_EQ_INT(b.p[b.len], '\0');
    ASSERT(strncmp(b.p + 17, "X-Big: xxx", 10) == 0);
    ASSERT(strcmp(b.p + b.len - 3, "x\r\n") == 0);
    vrt_strbuf_puts(&b, "\r\n");
    ASSERT_EQ_INT(b.len, 17 + 7 + 999 + 4);
    ASSERT(!b.oom);
    vrt_strbuf_free(&b);
    ASSERT(b.p == NULL && b.len == 0 && b.cap == 0 && !b.oom);
    vrt_strbuf_puts(&b, "again");
    ASSERT_EQ_STR(b.p, "again");
    vrt_strbuf_free(&b);
}
