/* http.c — HTTP/1.1 server on libuv and nodejs/http-parser (see http.h).
 *
 * One http_conn per TCP connection: a parser, the request being received,
 * and a FIFO of responses in request order. Only the head of the FIFO
 * writes to the socket; later responses buffer their bytes until they
 * become the head, which is how pipelined requests are answered in order.
 * The FIFO holds one reference on each response, the handler another.
 *
 * One timer per connection, in one of three modes: READ (a request must be
 * completely received by the deadline, else 408), IDLE (keep-alive idle
 * timeout, then close) and LINGER (after a final response the write side is
 * shut down and input is read and thrown away for a short while, so a
 * client still sending a rejected body gets the error instead of a reset).
 * Errors from this layer are queued like any response, then the connection
 * stops parsing and closes after the FIFO drains.
 */
#include "server/http_int.h"

#include "core/log.h"
#include "core/util.h"

#include <http_parser.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LINGER_MS 1000
#define MAX_REJECTED 64

static http_parser_settings g_settings;

static int ct_equal(const char *a, size_t alen, const char *b)
{
    /* Constant time in the length of the candidate key b. */
    size_t blen = strlen(b);
    unsigned diff = (unsigned)(alen != blen);
    for (size_t i = 0; i < blen; i++)
        diff |= (unsigned char)b[i] ^ (unsigned char)(i < alen ? a[i] : 0);
    return diff == 0;
}

/* ---------- connections ---------- */

static void ps_reset(parse_state *ps)
{
    vrt_strbuf_free(&ps->url);
    vrt_strbuf_free(&ps->hdr);
    vrt_strbuf_free(&ps->body);
    free(ps->offs);
    *ps = (parse_state){0};
}

static void server_maybe_done(vrt_http_server *s);

static void conn_handle_closed(uv_handle_t *h)
{
    http_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    vrt_http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->rejected)
        s->n_rejected--;
    else
        s->n_conns--;
    vrt_strbuf_free(&c->pend);
    free(c);
    server_maybe_done(s);
}

/* Takes every response off c's FIFO: unfinished ones are marked closed and
 * get their on_close callback. All are detached before any callback runs, as
 * a callback may call any response function or release its response. */
static void abandon(http_conn *c)
{
    vrt_http_res *list = c->q_head;
    c->q_head = c->q_tail = NULL;
    c->q_len = 0;
    for (vrt_http_res *r = list; r; r = r->next) {
        r->conn = NULL;
        if (r->state != RES_DONE)
            r->closed = 1;
        if (r->counted) {
            r->counted = 0;
            c->srv->in_flight--;
        }
    }
    while (list) {
        vrt_http_res *r = list;
        list = r->next;
        r->next = NULL;
        if (r->closed && r->on_close) {
            void (*cb)(void *) = r->on_close;
            r->on_close = NULL;
            cb(r->on_close_ud);
        }
        vrt_http_res_release(r);
    }
}

/* Closes the connection now: unfinished responses are abandoned (their
 * on_close callbacks run), buffered output is dropped. */
void vrt__http_conn_close(http_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    abandon(c);
    ps_reset(&c->ps);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void on_timer(uv_timer_t *t);

static void conn_set_timer(http_conn *c, int mode, uint64_t ms)
{
    c->timer_mode = mode;
    if (mode == TM_NONE)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void conn_update_timer(http_conn *c)
{
    if (c->closing || c->timer_mode == TM_LINGER)
        return;
    if (c->ps.active) {
        if (c->timer_mode != TM_READ)
            conn_set_timer(c, TM_READ, c->srv->read_timeout_ms);
    } else if (c->q_len == 0 && !c->no_more) {
        if (c->timer_mode != TM_IDLE)
            conn_set_timer(c, TM_IDLE, c->srv->keep_alive_ms);
    } else if (c->timer_mode != TM_NONE) {
        conn_set_timer(c, TM_NONE, 0);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    http_conn *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        vrt__http_conn_close(c);
        return;
    }
    conn_set_timer(c, TM_LINGER, LINGER_MS);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* All responses sent and nothing more to parse: shut down the write side
 * (after queued writes) and linger. */
static void conn_finish(http_conn *c)
{
    if (c->closing || c->shutting)
        return;
    c->shutting = 1;
    c->no_more = 1;
    /* Bounded even if the client never reads what is left to send. */
    conn_set_timer(c, TM_LINGER, c->srv->read_timeout_ms + LINGER_MS);
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
    c->shut_req.data = c;
    if (uv_shutdown(&c->shut_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        vrt__http_conn_close(c);
}

static void conn_feed(http_conn *c, const char *data, size_t len);

/* http_parser_pause() asserts on a parser in an error state. */
static void parser_pause(http_conn *c, int on)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_OK || e == HPE_PAUSED)
        http_parser_pause(&c->parser, on);
}

static void conn_resume(http_conn *c)
{
    if (!c->paused || c->in_feed || c->closing || c->no_more || c->q_len >= VRT_HTTP_MAX_PIPELINE)
        return;
    c->paused = 0;
    parser_pause(c, 0);
    vrt_strbuf pend = c->pend;
    c->pend = (vrt_strbuf){0};
    if (pend.len)
        conn_feed(c, pend.p, pend.len);
    vrt_strbuf_free(&pend);
    if (!c->closing && !c->paused && !c->reading &&
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
    conn_update_timer(c);
}

/* Pops finished responses off the FIFO head, flushing the next one's
 * buffered output; then closes, resumes parsing or re-arms the timer. */
void vrt__http_conn_advance(http_conn *c)
{
    while (!c->closing && c->q_head && c->q_head->state == RES_DONE) {
        vrt_http_res *r = c->q_head;
        c->q_head = r->next;
        if (!c->q_head)
            c->q_tail = NULL;
        c->q_len--;
        r->next = NULL;
        r->conn = NULL;
        int ka = r->keep_alive;
        vrt_http_res_release(r);
        if (!ka) {
            c->no_more = 1;
            abandon(c); /* nothing after a final response is sent */
            break;
        }
        vrt_http_res *h = c->q_head;
        if (h && h->out.len) {
            vrt_strbuf out = h->out;
            h->out = (vrt_strbuf){0};
            vrt__http_conn_write(c, out.p, out.len);
            vrt_strbuf_free(&out);
        }
    }
    if (c->closing)
        return;
    if (c->q_len == 0 && !c->ps.active && (c->no_more || c->srv->draining)) {
        conn_finish(c);
        return;
    }
    conn_resume(c);
    conn_update_timer(c);
}

/* Queues a response produced by this layer (errors, preflight). keep: keep
 * the connection open afterwards; else stop parsing and close after it. */
static void conn_reply(http_conn *c, int status, const char *type, const char *msg, int keep,
                       const char *cors_origin, const parse_state *ps)
{
    if (c->closing)
        return;
    if (!keep) {
        c->no_more = 1;
        parser_pause(c, 1);
    }
    vrt_http_res *r = vrt__http_res_new(c);
    if (!r) {
        vrt__http_conn_close(c);
        return;
    }
    r->keep_alive = keep ? 1 : 0;
    if (ps && ps->keep_alive == 0)
        r->keep_alive = 0;
    if (ps) {
        r->http10 = c->parser.http_major == 1 && c->parser.http_minor == 0;
        r->head_only = c->parser.method == HTTP_HEAD;
    }
    if (cors_origin)
        snprintf(r->cors_origin, sizeof r->cors_origin, "%s", cors_origin);
    if (status == 204) {
        /* CORS preflight. */
        vrt_http_res_set_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        vrt_http_res_set_header(r, "Access-Control-Allow-Headers", msg);
        vrt_http_res_set_header(r, "Access-Control-Max-Age", "86400");
        vrt_http_respond(r, 204, NULL, NULL, 0);
    } else {
        VRT_DEBUG("http: %d to %s: %s", status, c->remote, msg);
        vrt_http_respond_error(r, status, type, msg);
    }
}

/* ---------- parser callbacks ---------- */

static int ps_reject(http_conn *c, int status, const char *type, const char *msg)
{
    c->ps.reject = status;
    c->ps.err_type = type;
    snprintf(c->ps.err_buf, sizeof c->ps.err_buf, "%s", msg);
    c->ps.err_msg = c->ps.err_buf;
    return -1;
}

static int count_header_bytes(http_conn *c, size_t len)
{
    c->ps.hdr_bytes += len;
    if (c->ps.hdr_bytes > VRT_HTTP_MAX_HEADER_BYTES)
        return ps_reject(c, 431, "request_header_fields_too_large",
                         "request headers are larger than 65536 bytes");
    return 0;
}

static int on_message_begin(http_parser *p)
{
    http_conn *c = p->data;
    if (c->closing)
        return -1;
    ps_reset(&c->ps);
    c->ps.active = 1;
    conn_update_timer(c);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (count_header_bytes(c, len))
        return -1;
    vrt_strbuf_put(&c->ps.url, at, len);
    return c->ps.url.oom ? -1 : 0;
}

/* Header callbacks: ps->in_value is 0 before the first header, 1 inside a
 * field name, 2 inside a value. hdr holds "name\0value\0..." and offs the
 * start of each. */
static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    parse_state *ps = &c->ps;
    if (count_header_bytes(c, len))
        return -1;
    if (ps->headers_done)
        return 0; /* trailers are counted, not kept */
    if (ps->in_value != 1) {
        if (ps->in_value == 2) /* end the previous value */
            vrt_strbuf_put(&ps->hdr, "", 1);
        if (vrt_grow(&ps->offs, &ps->cap, (size_t)ps->n * 2 + 2, sizeof *ps->offs))
            return -1;
        ps->offs[2 * ps->n] = ps->hdr.len;
        ps->offs[2 * ps->n + 1] = ps->hdr.len;
        ps->n++;
        ps->in_value = 1;
    }
    vrt_strbuf_put(&ps->hdr, at, len);
    return ps->hdr.oom ? -1 : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    parse_state *ps = &c->ps;
    if (count_header_bytes(c, len))
        return -1;
    if (ps->headers_done || ps->n == 0)
        return 0;
    if (ps->in_value == 1) { /* first piece of this header's value */
        vrt_strbuf_put(&ps->hdr, "", 1);
        ps->offs[2 * (ps->n - 1) + 1] = ps->hdr.len;
        ps->in_value = 2;
    }
    vrt_strbuf_put(&ps->hdr, at, len);
    return ps->hdr.oom ? -1 : 0;
}

static const char *ps_header(const parse_state *ps, const char *name)
{
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->hdr.p + ps->offs[2 * i], name) == 0)
            return ps->hdr.p + ps->offs[2 * i + 1];
    return NULL;
}

static int api_key_ok(const vrt_http_server *s, const char *auth)
{
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    const char *key = auth + 7;
    while (*key == ' ')
        key++;
    size_t n = strlen(key);
    while (n > 0 && (key[n - 1] == ' ' || key[n - 1] == '\t'))
        n--;
    int ok = 0;
    for (int i = 0; i < s->n_api_keys; i++)
        ok |= ct_equal(key, n, s->api_keys[i]);
    return ok;
}

static int on_headers_complete(http_parser *p)
{
    http_conn *c = p->data;
    parse_state *ps = &c->ps;
    vrt_http_server *s = c->srv;
    if (c->closing)
        return -1;
    if (ps->in_value == 1) { /* a field without a value */
        vrt_strbuf_put(&ps->hdr, "", 1);
        ps->offs[2 * (ps->n - 1) + 1] = ps->hdr.len;
    }
    vrt_strbuf_put(&ps->hdr, "", 1); /* end the last value; hdr is never NULL now */
    if (ps->hdr.oom)
        return -1;
    ps->headers_done = 1;
    for (int i = 0; i < ps->n; i++)
        for (char *q = ps->hdr.p + ps->offs[2 * i]; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q + 32);
    ps->keep_alive = http_should_keep_alive(p);
    if (p->upgrade && p->method != HTTP_CONNECT)
        p->upgrade = 0; /* no protocol switch offered: answer as plain HTTP */
    if (p->method == HTTP_CONNECT)
        return ps_reject(c, 400, "bad_request", "CONNECT is not supported");
    if (!ps->url.len)
        return ps_reject(c, 400, "bad_request", "empty request target");

    /* CORS: which Origin to allow in the answer. */
    const char *origin = ps_header(ps, "origin");
    if (origin && (s->cors_any || s->n_cors > 0)) {
        int ok = s->cors_any;
        for (int i = 0; !ok && i < s->n_cors; i++)
            ok = strcmp(origin, s->cors[i]) == 0;
        if (ok && !vrt__http_has_crlf(origin))
            snprintf(ps->cors_origin, sizeof ps->cors_origin, "%s",
                     s->cors_any && s->n_cors == 0 ? "*" : origin);
    }
    int is_preflight =
        p->method == HTTP_OPTIONS && origin && ps_header(ps, "access-control-request-method");
    if (is_preflight && (s->cors_any || s->n_cors > 0)) {
        ps->deny = 204;
    } else if (s->n_api_keys > 0 && !is_preflight) {
        int health = p->method == HTTP_GET && strncmp(ps->url.p, "/health", 7) == 0 &&
                     (ps->url.p[7] == '\0' || ps->url.p[7] == '?');
        if (!health && !api_key_ok(s, ps_header(ps, "authorization"))) {
            ps->deny = 401;
        }
    }

    /* Body size: known lengths are refused before any byte of the body. */
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
        p->content_length > (uint64_t)s->payload_limit && !ps->deny) {
        snprintf(ps->err_buf, sizeof ps->err_buf,
                 "request body is %llu bytes, more than the payload limit (%lld bytes)",
                 (unsigned long long)p->content_length, (long long)s->payload_limit);
        ps->reject = 413;
        ps->err_type = "payload_too_large";
        ps->err_msg = ps->err_buf;
        return -1;
    }
    if (!ps->deny && !(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
        p->content_length > 0) {
        /* Reserve once; the limit bounds it. */
        vrt_strbuf_put(&ps->body, "", 0);
        char *b = realloc(ps->body.p, (size_t)p->content_length + 1);
        if (!b)
            return -1;
        ps->body.p = b;
        ps->body.cap = (size_t)p->content_length + 1;
    }
    const char *expect = ps_header(ps, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && !ps->deny && c->q_len == 0 &&
        p->http_minor >= 1)
        vrt__http_conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    parse_state *ps = &c->ps;
    if (c->closing)
        return -1;
    if (ps->deny)
        return 0; /* discarded */
    if (ps->body.len + len > (uint64_t)c->srv->payload_limit) {
        snprintf(ps->err_buf, sizeof ps->err_buf,
                 "request body is more than the payload limit (%lld bytes)",
                 (long long)c->srv->payload_limit);
        ps->reject = 413;
        ps->err_type = "payload_too_large";
        ps->err_msg = ps->err_buf;
        return -1;
    }
    vrt_strbuf_put(&ps->body, at, len);
    return ps->body.oom ? -1 : 0;
}

/* Splits the request target into path and query (in place). */
static int split_target(vrt_http_res *r)
{
    char *u = r->url.p;
    if (u[0] != '/' && strcmp(u, "*") != 0) {
        /* absolute-form: keep the path part. */
        struct http_parser_url pu;
        http_parser_url_init(&pu);
        if (http_parser_parse_url(u, r->url.len, 0, &pu) != 0)
            return -1;
        if (pu.field_set & (1 << UF_PATH))
            u += pu.field_data[UF_PATH].off;
        else
            u = "/";
    }
    char *hash = strchr(u, '#');
    if (hash)
        *hash = '\0';
    char *q = strchr(u, '?');
    r->req.query = "";
    if (q) {
        *q = '\0';
        r->req.query = q + 1;
    }
    r->req.path = u;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_conn *c = p->data;
    parse_state *ps = &c->ps;
    vrt_http_server *s = c->srv;
    if (c->closing)
        return -1;
    ps->active = 0;
    int keep = ps->keep_alive;
    if (ps->deny == 204) {
        const char *h = ps_header(ps, "access-control-request-headers");
        char allow[512];
        snprintf(allow, sizeof allow, "%s",
                 h && !vrt__http_has_crlf(h) ? h : "Content-Type, Authorization");
        conn_reply(c, 204, NULL, allow, keep, ps->cors_origin[0] ? ps->cors_origin : NULL, ps);
    } else if (ps->deny == 401) {
        conn_reply(c, 401, "authentication_error",
                   "missing or invalid API key: send \"Authorization: Bearer <key>\" with one "
                   "of the keys in server.api_keys",
                   keep, ps->cors_origin[0] ? ps->cors_origin : NULL, ps);
    } else {
        vrt_http_res *r = vrt__http_res_new(c);
        if (!r) {
            vrt__http_conn_close(c);
            return -1;
        }
        r->keep_alive = keep ? 1 : 0;
        r->http10 = p->http_major == 1 && p->http_minor == 0;
        r->head_only = p->method == HTTP_HEAD;
        r->req.http_minor = p->http_minor;
        snprintf(r->method, sizeof r->method, "%s", http_method_str((enum http_method)p->method));
        snprintf(r->cors_origin, sizeof r->cors_origin, "%s", ps->cors_origin);
        r->url = ps->url;
        r->hdr = ps->hdr;
        r->body = ps->body;
        ps->url = ps->hdr = ps->body = (vrt_strbuf){0};
        if (!r->body.p)
            vrt_strbuf_put(&r->body, "", 0);
        r->req.body = r->body.p ? r->body.p : "";
        r->req.body_len = r->body.len;
        r->names_values = calloc((size_t)ps->n * 2 + 1, sizeof *r->names_values);
        if (!r->names_values) {
            vrt__http_conn_close(c);
            return -1;
        }
        /* Drop the Authorization header: the handler never sees the key. */
        int n = 0;
        for (int i = 0; i < ps->n; i++) {
            const char *name = r->hdr.p + ps->offs[2 * i];
            if (s->n_api_keys > 0 && strcmp(name, "authorization") == 0)
                continue;
            r->names_values[n] = name;
            r->names_values[ps->n + n] = r->hdr.p + ps->offs[2 * i + 1];
            n++;
        }
        r->req.n_headers = n;
        r->req.header_names = r->names_values;
        r->req.header_values = r->names_values + ps->n;
        if (split_target(r) != 0) {
            /* Not dispatched: answer 400 in its place. */
            static const char bad[] =
                "{\"error\":\"malformed request target\",\"error_type\":\"bad_request\"}";
            r->keep_alive = 0;
            c->no_more = 1;
            vrt_http_respond(r, 400, "application/json", bad, sizeof bad - 1);
            ps_reset(ps);
            parser_pause(c, 1);
            c->no_more = 1;
            return c->closing ? -1 : 0;
        }
        r->req.id = ++s->next_id;
        r->counted = 1;
        s->in_flight++;
        if (!keep) {
            c->no_more = 1;
            parser_pause(c, 1);
        }
        vrt_http_res_retain(r); /* the handler's reference */
        s->handler(s->ud, &r->req, r);
        if (c->closing)
            return -1;
    }
    ps_reset(ps);
    if (!keep) {
        c->no_more = 1;
        parser_pause(c, 1);
    } else if (c->q_len >= VRT_HTTP_MAX_PIPELINE) {
        parser_pause(c, 1);
    }
    return 0;
}

/* Parses len bytes; on a pause keeps the rest for later. */
static void conn_feed(http_conn *c, const char *data, size_t len)
{
    c->in_feed = 1;
    size_t n = http_parser_execute(&c->parser, &g_settings, data, len);
    c->in_feed = 0;
    if (c->closing)
        return;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
        if (c->no_more)
            return; /* the rest is ignored */
        c->paused = 1;
        if (n < len)
            vrt_strbuf_put(&c->pend, data + n, len - n);
        if (c->pend.oom) {
            vrt__http_conn_close(c);
            return;
        }
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        conn_resume(c); /* maybe the handlers already answered */
        return;
    }
    if (e != HPE_OK) {
        parse_state *ps = &c->ps;
        int status = ps->reject ? ps->reject : 400;
        const char *type = ps->reject ? ps->err_type : "bad_request";
        char msg[200];
        if (ps->reject)
            snprintf(msg, sizeof msg, "%s", ps->err_msg);
        else if (e == HPE_HEADER_OVERFLOW) {
            status = 431;
            type = "request_header_fields_too_large";
            snprintf(msg, sizeof msg, "request headers are too large");
        } else
            snprintf(msg, sizeof msg, "malformed HTTP request: %s", http_errno_description(e));
        char origin[256];
        snprintf(origin, sizeof origin, "%s", ps->cors_origin);
        ps->active = 0;
        conn_reply(c, status, type, msg, 0, origin[0] ? origin : NULL, NULL);
        ps_reset(ps);
        return;
    }
    if (c->parser.upgrade) { /* CONNECT got through: nothing more to parse */
        c->no_more = 1;
        if (c->q_len == 0)
            conn_finish(c);
    }
}

/* ---------- libuv callbacks ---------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    http_conn *c = h->data;
    *buf = uv_buf_init(c->srv->rbuf, sizeof c->srv->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    http_conn *c = st->data;
    if (c->closing)
        return;
    if (nread < 0) {
        /* EOF or error: the client is gone (unfinished responses are
         * abandoned so generation can be canceled). */
        vrt__http_conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->no_more || c->shutting)
        return; /* discarded */
    conn_feed(c, buf->base, (size_t)nread);
    if (!c->closing)
        conn_update_timer(c);
}

static void on_timer(uv_timer_t *t)
{
    http_conn *c = t->data;
    if (c->closing)
        return;
    int mode = c->timer_mode;
    c->timer_mode = TM_NONE;
    if (mode == TM_READ) {
        if (!c->ps.active && c->q_len == 0) {
            vrt__http_conn_close(c); /* nothing received */
            return;
        }
        char msg[160];
        snprintf(msg, sizeof msg,
                 "request not received completely within %.3g s (server.read_timeout)",
                 (double)c->srv->read_timeout_ms / 1000.0);
        char origin[256];
        snprintf(origin, sizeof origin, "%s", c->ps.cors_origin);
        c->ps.active = 0;
        ps_reset(&c->ps);
        conn_reply(c, 408, "request_timeout", msg, 0, origin[0] ? origin : NULL, NULL);
    } else {
        vrt__http_conn_close(c);
    }
}

static void format_peer(uv_tcp_t *tcp, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(out, cap, "?");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    char ip[INET6_ADDRSTRLEN + 2] = "?";
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        snprintf(out, cap, "%s:%d", ip, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%d", ip, ntohs(a->sin6_port));
    }
}

static void on_connection(uv_stream_t *l, int status)
{
    vrt_http_server *s = l->data;
    if (status < 0) {
        VRT_WARN("http: accept failed: %s", uv_strerror(status));
        return;
    }
    http_conn *c = calloc(1, sizeof *c);
    if (!c) {
        VRT_ERROR("http: out of memory accepting a connection");
        return;
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    int over = s->n_conns >= s->max_connections;
    c->rejected = over;
    if (over)
        s->n_rejected++;
    else
        s->n_conns++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        vrt__http_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    format_peer(&c->tcp, c->remote, sizeof c->remote);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (over && s->n_rejected > MAX_REJECTED) {
        vrt__http_conn_close(c);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        vrt__http_conn_close(c);
        return;
    }
    c->reading = 1;
    if (over) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "too many open connections (server.max_connections = %d); retry later",
                 s->max_connections);
        VRT_WARN("http: refusing %s: %s", c->remote, msg);
        conn_reply(c, 503, "overloaded", msg, 0, NULL, NULL);
        return;
    }
    conn_set_timer(c, TM_READ, s->read_timeout_ms);
}

/* ---------- server ---------- */

static void on_async(uv_async_t *a)
{
    vrt_http_server *s = a->data;
    pthread_mutex_lock(&s->mu);
    post_item *list = s->post_head;
    s->post_head = s->post_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (list) {
        post_item *it = list;
        list = it->next;
        it->fn(it->ud);
        free(it);
    }
}

int vrt_http_server_post(vrt_http_server *s, void (*fn)(void *), void *ud)
{
    if (!s || !fn)
        return VRT_EINVAL;
    post_item *it = malloc(sizeof *it);
    if (!it)
        return VRT_ENOMEM;
    *it = (post_item){fn, ud, NULL};
    pthread_mutex_lock(&s->mu);
    if (s->post_closed) {
        pthread_mutex_unlock(&s->mu);
        free(it);
        return VRT_ECANCELED;
    }
    if (s->post_tail)
        s->post_tail->next = it;
    else
        s->post_head = it;
    s->post_tail = it;
    uv_async_send(&s->async);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void server_free(vrt_http_server *s)
{
    for (int i = 0; i < s->n_api_keys; i++)
        free(s->api_keys[i]);
    free(s->api_keys);
    for (int i = 0; i < s->n_cors; i++)
        free(s->cors[i]);
    free(s->cors);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void server_maybe_done(vrt_http_server *s)
{
    if (!s->closing || s->open_handles > 0 || s->conns)
        return;
    void (*done)(void *) = s->close_done;
    void *ud = s->close_ud;
    server_free(s);
    if (done)
        done(ud);
}

static void server_handle_closed(uv_handle_t *h)
{
    vrt_http_server *s = h->data;
    s->open_handles--;
    server_maybe_done(s);
}

static char **copy_strings(const char *const *v, int n, int *out_n)
{
    *out_n = 0;
    if (n <= 0 || !v)
        return NULL;
    char **c = calloc((size_t)n, sizeof *c);
    if (!c)
        return NULL;
    for (int i = 0; i < n; i++) {
        c[i] = strdup(v[i] ? v[i] : "");
        if (!c[i]) {
            for (int j = 0; j < i; j++)
                free(c[j]);
            free(c);
            return NULL;
        }
    }
    *out_n = n;
    return c;
}

int vrt_http_server_start(vrt_http_server **out, uv_loop_t *loop, const vrt_http_opts *o,
                          vrt_http_handler h, void *ud, vrt_err *err)
{
    *out = NULL;
    if (!loop || !o || !h)
        return vrt_err_set(err, VRT_EINVAL, "http server: loop, options and handler needed");
    if (!g_settings.on_message_complete) {
        g_settings.on_message_begin = on_message_begin;
        g_settings.on_url = on_url;
        g_settings.on_header_field = on_header_field;
        g_settings.on_header_value = on_header_value;
        g_settings.on_headers_complete = on_headers_complete;
        g_settings.on_body = on_body;
        g_settings.on_message_complete = on_message_complete;
    }
    /* Every value comes resolved from the config schema (server.*); the
     * HTTP layer restates no default. */
    if (!o->host || !*o->host)
        return vrt_err_set(err, VRT_EINVAL, "http server: server.host is empty (e.g. 127.0.0.1)");
    if (o->payload_limit <= 0 || o->max_connections <= 0 || !(o->read_timeout_s > 0) ||
        !(o->keep_alive_timeout_s >= 0))
        return vrt_err_set(err, VRT_EINVAL,
                           "http server: server.payload_limit (%lld), server.max_connections (%d) "
                           "and server.read_timeout (%g) must be > 0 and "
                           "server.keep_alive_timeout (%g) >= 0",
                           (long long)o->payload_limit, o->max_connections, o->read_timeout_s,
                           o->keep_alive_timeout_s);
    const char *host = o->host;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (o->port < 0 || o->port > 65535)
        return vrt_err_set(err, VRT_ECONFIG, "server.port %d is out of range 0..65535", o->port);
    struct sockaddr_storage addr;
    if (uv_ip4_addr(host, o->port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, o->port, (struct sockaddr_in6 *)&addr) != 0)
        return vrt_err_set(err, VRT_ECONFIG,
                           "server.host \"%s\" is not an IPv4 or IPv6 address (e.g. 0.0.0.0)",
                           host);
    vrt_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return vrt_err_set(err, VRT_ENOMEM, "http server: out of memory");
    s->loop = loop;
    s->handler = h;
    s->ud = ud;
    s->payload_limit = o->payload_limit;
    s->max_connections = o->max_connections;
    s->read_timeout_ms = (uint64_t)(o->read_timeout_s * 1000.0 + 0.5);
    /* server.keep_alive_timeout = 0: an idle connection is closed at once. */
    s->keep_alive_ms = (uint64_t)(o->keep_alive_timeout_s * 1000.0 + 0.5);
    if (s->read_timeout_ms == 0)
        s->read_timeout_ms = 1;
    if (s->keep_alive_ms == 0)
        s->keep_alive_ms = 1;
    pthread_mutex_init(&s->mu, NULL);
    s->api_keys = copy_strings(o->api_keys, o->n_api_keys, &s->n_api_keys);
    s->cors = copy_strings(o->cors_origins, o->n_cors_origins, &s->n_cors);
    if ((o->n_api_keys > 0 && !s->api_keys) || (o->n_cors_origins > 0 && !s->cors)) {
        server_free(s);
        return vrt_err_set(err, VRT_ENOMEM, "http server: out of memory");
    }
    for (int i = 0; i < s->n_api_keys; i++)
        if (!s->api_keys[i][0]) {
            server_free(s);
            return vrt_err_set(err, VRT_ECONFIG, "server.api_keys[%d] is empty", i + 1);
        }
    for (int i = 0; i < s->n_cors; i++)
        if (strcmp(s->cors[i], "*") == 0)
            s->cors_any = 1;
    if (s->cors_any) { /* "*" covers everything: answer with "*" */
        for (int i = 0; i < s->n_cors; i++)
            free(s->cors[i]);
        free(s->cors);
        s->cors = NULL;
        s->n_cors = 0;
    }
    uv_tcp_init(loop, &s->listener);
    uv_async_init(loop, &s->async, on_async);
    s->listener.data = s->async.data = s;
    s->open_handles = 2;
    s->closing = 0;
    int rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    if (rc != 0) {
        vrt_err_set(err, VRT_EIO, "cannot listen on %s:%d: %s%s", host, o->port, uv_strerror(rc),
                    rc == UV_EADDRINUSE ? " (another process uses it; change server.port)" : "");
        s->closing = 1;
        s->post_closed = 1;
        uv_close((uv_handle_t *)&s->listener, server_handle_closed);
        uv_close((uv_handle_t *)&s->async, server_handle_closed);
        return err ? err->code : VRT_EIO;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen);
    s->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    s->accepting = 1;
    *out = s;
    return 0;
}

int vrt_http_server_port(const vrt_http_server *s)
{
    return s ? s->port : 0;
}

size_t vrt_http_server_in_flight(const vrt_http_server *s)
{
    return s ? s->in_flight : 0;
}

void vrt_http_server_stop_accepting(vrt_http_server *s)
{
    if (!s || s->closing)
        return;
    s->draining = 1;
    if (s->accepting) {
        s->accepting = 0;
        uv_close((uv_handle_t *)&s->listener, server_handle_closed);
    }
    for (http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (!c->closing && c->q_len == 0 && !c->ps.active && !c->shutting)
            vrt__http_conn_close(c);
    }
}

void vrt_http_server_close(vrt_http_server *s, void (*done)(void *), void *ud)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    s->draining = 1;
    s->close_done = done;
    s->close_ud = ud;
    pthread_mutex_lock(&s->mu);
    s->post_closed = 1;
    pthread_mutex_unlock(&s->mu);
    if (s->accepting) {
        s->accepting = 0;
        uv_close((uv_handle_t *)&s->listener, server_handle_closed);
    }
    for (http_conn *c = s->conns; c; c = c->next)
        vrt__http_conn_close(c);
    on_async(&s->async); /* run what was posted before the close */
    uv_close((uv_handle_t *)&s->async, server_handle_closed);
}
