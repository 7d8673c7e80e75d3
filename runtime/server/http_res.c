/* http_res.c — responses of the HTTP server (see http.h): status line and
 * headers, full responses, chunked streams, in-order output through the
 * connection's FIFO, reference counting and the on_close callback.
 */
#include "server/http_int.h"

#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------- small helpers ---------- */

static void json_escape(vrt_strbuf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            vrt_strbuf_put(b, e, 2);
        } else if (c < 0x20) {
            vrt_strbuf_printf(b, "\\u%04x", c);
        } else {
            vrt_strbuf_put(b, s, 1);
        }
    }
}

int vrt__http_has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

const char *vrt_http_req_header(const vrt_http_req *req, const char *name)
{
    for (int i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->header_names[i], name) == 0)
            return req->header_values[i];
    return NULL;
}

/* ---------- responses ---------- */

vrt_http_res *vrt__http_res_new(http_conn *c)
{
    vrt_http_res *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->refs = 1; /* the FIFO's */
    r->loop = c->srv->loop;
    r->conn = c;
    r->keep_alive = 1;
    r->req.method = r->method;
    r->req.path = "";
    r->req.query = "";
    r->req.body = "";
    r->req.remote = r->remote;
    snprintf(r->remote, sizeof r->remote, "%s", c->remote);
    if (c->q_tail)
        c->q_tail->next = r;
    else
        c->q_head = r;
    c->q_tail = r;
    c->q_len++;
    return r;
}

static void res_free(vrt_http_res *r)
{
    vrt_strbuf_free(&r->url);
    vrt_strbuf_free(&r->hdr);
    vrt_strbuf_free(&r->body);
    vrt_strbuf_free(&r->extra);
    vrt_strbuf_free(&r->out);
    free(r->names_values);
    free(r);
}

void vrt_http_res_retain(vrt_http_res *r)
{
    r->refs++;
}

void vrt_http_res_release(vrt_http_res *r)
{
    if (r && --r->refs == 0)
        res_free(r);
}

const vrt_http_req *vrt_http_res_req(const vrt_http_res *r)
{
    return &r->req;
}

size_t vrt_http_res_pending_bytes(const vrt_http_res *r)
{
    if (!r || !r->conn || r->closed)
        return 0;
    size_t n = r->out.len;
    if (r->conn->q_head == r)
        n += r->conn->tcp.write_queue_size;
    return n;
}

int vrt_http_res_closed(const vrt_http_res *r)
{
    return r->closed;
}

typedef struct {
    uv_write_t req;
    size_t len;
    char data[];
} write_req;

static void on_write(uv_write_t *req, int status)
{
    http_conn *c = req->handle->data;
    free(req);
    if (status < 0 && !c->closing) {
        VRT_DEBUG("http: write to %s failed: %s", c->remote, uv_strerror(status));
        vrt__http_conn_close(c);
    }
}

int vrt__http_conn_write(http_conn *c, const char *data, size_t len)
{
    if (c->closing)
        return VRT_ECANCELED;
    if (len == 0)
        return 0;
    write_req *w = malloc(sizeof *w + len);
    if (!w) {
        vrt__http_conn_close(c);
        return VRT_ENOMEM;
    }
    memcpy(w->data, data, len);
    w->len = len;
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc < 0) {
        free(w);
        vrt__http_conn_close(c);
        return VRT_ECANCELED;
    }
    return 0;
}

/* Sends bytes of r now if it is the FIFO head, else buffers them. */
static int res_emit(vrt_http_res *r, const char *data, size_t len)
{
    http_conn *c = r->conn;
    if (!c || r->closed || c->closing)
        return VRT_ECANCELED;
    if (c->q_head == r)
        return vrt__http_conn_write(c, data, len);
    vrt_strbuf_put(&r->out, data, len);
    return r->out.oom ? VRT_ENOMEM : 0;
}

static int res_check(vrt_http_res *r, int want_state)
{
    if (!r)
        return VRT_EINVAL;
    if (r->closed)
        return VRT_ECANCELED;
    if (r->state != want_state || !r->conn)
        return VRT_EINVAL;
    return 0;
}

static void res_finish(vrt_http_res *r)
{
    r->state = RES_DONE;
    http_conn *c = r->conn;
    if (r->counted && c) {
        r->counted = 0;
        c->srv->in_flight--;
    }
    if (c && c->q_head == r)
        vrt__http_conn_advance(c);
}

/* Status line and headers into b. content_length < 0: streamed. */
static void res_head(vrt_http_res *r, vrt_strbuf *b, int status, const char *ctype,
                     long long content_length)
{
    http_conn *c = r->conn;
    if (c && (c->srv->draining || c->no_more) && c->q_tail == r)
        r->keep_alive = 0;
    const char *reason = http_status_str((enum http_status)status);
    if (!reason || strcmp(reason, "<unknown>") == 0)
        reason = "Unknown";
    vrt_strbuf_printf(b, "HTTP/1.%d %d %s\r\n", r->http10 ? 0 : 1, status, reason);
    if (ctype && *ctype && !vrt__http_has_crlf(ctype))
        vrt_strbuf_printf(b, "Content-Type: %s\r\n", ctype);
    int bodiless = status == 204 || status < 200; /* no Content-Length (RFC 9110 8.6) */
    if (content_length >= 0 && !bodiless)
        vrt_strbuf_printf(b, "Content-Length: %lld\r\n", content_length);
    else if (content_length < 0 && !r->http10)
        vrt_strbuf_puts(b, "Transfer-Encoding: chunked\r\n");
    if (content_length < 0 && r->http10)
        r->keep_alive = 0; /* the end of the body is the end of the connection */
    if (!r->keep_alive)
        vrt_strbuf_puts(b, "Connection: close\r\n");
    else if (r->http10)
        vrt_strbuf_puts(b, "Connection: keep-alive\r\n");
    if (r->cors_origin[0]) {
        vrt_strbuf_printf(b, "Access-Control-Allow-Origin: %s\r\n", r->cors_origin);
        if (strcmp(r->cors_origin, "*") != 0)
            vrt_strbuf_puts(b, "Vary: Origin\r\n");
    }
    if (r->extra.len)
        vrt_strbuf_put(b, r->extra.p, r->extra.len);
    vrt_strbuf_puts(b, "\r\n");
}

int vrt_http_respond(vrt_http_res *r, int status, const char *content_type, const char *body,
                     size_t len)
{
    int rc = res_check(r, RES_NEW);
    if (rc)
        return rc;
    if (status < 100 || status > 999)
        return VRT_EINVAL;
    vrt_strbuf b = {0};
    res_head(r, &b, status, content_type, (long long)len);
    if (body && !r->head_only && status != 204 && status != 304)
        vrt_strbuf_put(&b, body, len);
    if (b.oom) {
        vrt_strbuf_free(&b);
        return VRT_ENOMEM;
    }
    rc = res_emit(r, b.p, b.len);
    vrt_strbuf_free(&b);
    res_finish(r);
    return rc;
}

int vrt_http_respond_error(vrt_http_res *r, int status, const char *error_type, const char *msg)
{
    vrt_strbuf b = {0};
    vrt_strbuf_puts(&b, "{\"error\":\"");
    json_escape(&b, msg ? msg : "");
    vrt_strbuf_puts(&b, "\",\"error_type\":\"");
    json_escape(&b, error_type ? error_type : "");
    vrt_strbuf_puts(&b, "\"}");
    int rc = b.oom ? VRT_ENOMEM : vrt_http_respond(r, status, "application/json", b.p, b.len);
    vrt_strbuf_free(&b);
    return rc;
}

int vrt_http_stream_begin(vrt_http_res *r, int status, const char *content_type)
{
    int rc = res_check(r, RES_NEW);
    if (rc)
        return rc;
    if (status < 100 || status > 999)
        return VRT_EINVAL;
    vrt_strbuf b = {0};
    res_head(r, &b, status, content_type, -1);
    rc = b.oom ? VRT_ENOMEM : res_emit(r, b.p, b.len);
    vrt_strbuf_free(&b);
    if (!rc)
        r->state = RES_STREAMING;
    return rc;
}

int vrt_http_stream_write(vrt_http_res *r, const char *data, size_t len)
{
    int rc = res_check(r, RES_STREAMING);
    if (rc || len == 0 || r->head_only)
        return rc;
    if (r->http10)
        return res_emit(r, data, len);
    vrt_strbuf b = {0};
    vrt_strbuf_printf(&b, "%zx\r\n", len);
    vrt_strbuf_put(&b, data, len);
    vrt_strbuf_puts(&b, "\r\n");
    rc = b.oom ? VRT_ENOMEM : res_emit(r, b.p, b.len);
    vrt_strbuf_free(&b);
    return rc;
}

int vrt_http_stream_end(vrt_http_res *r)
{
    int rc = res_check(r, RES_STREAMING);
    if (rc) {
        if (rc == VRT_ECANCELED)
            r->state = RES_DONE;
        return rc;
    }
    if (!r->http10 && !r->head_only)
        rc = res_emit(r, "0\r\n\r\n", 5);
    res_finish(r);
    return rc;
}

void vrt_http_res_set_header(vrt_http_res *r, const char *name, const char *value)
{
    if (!r || r->state != RES_NEW || !name || !value)
        return;
    if (!*name || vrt__http_has_crlf(name) || vrt__http_has_crlf(value) || strchr(name, ':')) {
        VRT_WARN("http: refusing response header \"%.64s\" with CR/LF or a bad name", name);
        return;
    }
    vrt_strbuf_printf(&r->extra, "%s: %s\r\n", name, value);
}

typedef struct {
    uv_timer_t timer;
    vrt_http_res *res;
} deferred_close;

static void deferred_closed(uv_handle_t *h)
{
    free(h->data);
}

static void deferred_fire(uv_timer_t *t)
{
    deferred_close *d = t->data;
    vrt_http_res *r = d->res;
    if (r->on_close && r->state != RES_DONE) {
        void (*cb)(void *) = r->on_close;
        r->on_close = NULL;
        cb(r->on_close_ud);
    }
    vrt_http_res_release(r);
    uv_close((uv_handle_t *)&d->timer, deferred_closed);
}

void vrt_http_res_on_close(vrt_http_res *r, void (*cb)(void *ud), void *ud)
{
    if (!r)
        return;
    r->on_close = cb;
    r->on_close_ud = ud;
    if (cb && r->closed && r->state != RES_DONE) {
        deferred_close *d = calloc(1, sizeof *d);
        if (!d || uv_timer_init(r->loop, &d->timer) != 0) {
            free(d);
            VRT_ERROR("http: out of memory scheduling an on_close callback");
            return;
        }
        d->timer.data = d;
        d->res = r;
        vrt_http_res_retain(r);
        uv_timer_start(&d->timer, deferred_fire, 0, 0);
    }
}
