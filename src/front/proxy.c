/* Proxying to a site's HTTP backend on a unix socket.
 *
 * One pump (px_run) moves bytes both ways whenever either socket is ready:
 * client body -> upstream, upstream answer -> client, each side read only when
 * the other side's buffer has drained (backpressure: memory per request stays
 * bounded however fast one peer is and however slow the other).
 *
 * Framing is always re-made, never passed through: the request body is decoded
 * (Content-Length or chunked, as our parser read it) and re-encoded, so berth and
 * the backend cannot disagree on where a request ends (no smuggling); the answer
 * is decoded the same way and re-chunked for the client when its length is not
 * known. Upstream connections are kept alive in a pool per backend. */
#include <stdio.h>
#include <sys/socket.h>

#include "front/front-worker.h"

#define UP_BUF_MAX (256 * 1024)
#define HIGH_WATER (64 * 1024)   /* stop reading a side while the other holds this much */
#define POOL_MAX 64

struct upstream {
    struct upstream *next;
    struct backend *b;
    int fd;
    uint64_t expires;            /* ms; 0: kept until the backend closes it */
};

struct proxy {
    struct conn *c;
    struct backend *b;
    int ufd;
    bool connected;
    bool connect_retry;          /* backlog full (EAGAIN): retried on the tick */
    bool reused;                 /* the connection came from the pool */
    bool retried;
    bool up_broken;              /* a send failed: the connection is never pooled */
    int send_error;              /* that send's errno, for the 502 if no answer comes */
    enum http_method method;
    bool upgrade;
    bool up_readable;            /* epoll said readable and no short read since */
    bool client_in_muted;        /* the client spoke while we were not reading it */
    /* request: client -> upstream */
    struct buf up_out;
    size_t up_off;
    enum http1_body req_body;
    uint64_t req_left;
    uint64_t max_body;
    struct http1_chunked req_chunked;
    bool req_done;               /* the whole request was read from the client */
    bool client_eof;
    /* response: upstream -> client */
    struct buf up_in;
    struct http1_parser rparser;
    struct http1_response res;
    bool head_sent;
    enum http1_body res_body;
    uint64_t res_left;
    struct http1_chunked res_chunked;
    bool rechunk;                /* client gets chunked coding we produce */
    bool res_done;
    bool upstream_eof;
    bool tunnel;
    uint64_t start_ms;
    uint64_t deadline;
    struct proxy *next_free;
};

static struct proxy *free_proxies;
static struct upstream *free_upstreams;

/* Idle upstream connections stay watched in epoll (EPOLLIN|EPOLLRDHUP) the whole
 * time they live: taking one from the pool or giving it back only changes the
 * callback, so a kept-alive request costs no epoll_ctl on the upstream side. */
#define UP_EVENTS (EPOLLIN | EPOLLRDHUP)

static void upstream_free(struct upstream *u)
{
    if (!u)
        return;
    u->next = free_upstreams;
    free_upstreams = u;
}

static void up_io(struct evloop *loop, int fd, uint32_t events, void *data);
static void px_run(struct proxy *px);

/* ---- the pool ---- */

static void idle_io(struct evloop *loop, int fd, uint32_t events, void *data)
{
    /* An idle upstream connection that becomes readable was closed (or spoke out
     * of turn): either way it cannot carry another request. */
    struct upstream *u = data;
    struct backend *b = u->b;
    for (struct upstream **p = &b->idle; *p; p = &(*p)->next)
        if (*p == u) {
            *p = u->next;
            b->n_idle--;
            break;
        }
    evloop_del(loop, fd);
    close(fd);
    upstream_free(u);
}

void front_backend_pool_put(struct backend *b, int fd, size_t max_idle, uint32_t idle_ms)
{
    struct upstream *u = NULL;
    if (b->n_idle < max_idle) {
        u = free_upstreams;
        if (u)
            free_upstreams = u->next;
        else
            u = malloc(sizeof(*u));
    }
    if (!u || evloop_set(b->w->loop, fd, UP_EVENTS, idle_io, u) < 0) {
        upstream_free(u);
        evloop_del(b->w->loop, fd);
        close(fd);
        return;
    }
    u->b = b;
    u->fd = fd;
    u->expires = idle_ms ? b->w->now_ms + idle_ms : 0;
    u->next = b->idle;
    b->idle = u;
    b->n_idle++;
}

static void pool_put(struct proxy *px)
{
    front_backend_pool_put(px->b, px->ufd, POOL_MAX, 0);
    px->ufd = -1;
}

int front_backend_pool_get(struct backend *b)
{
    struct upstream *u = b->idle;
    if (!u)
        return -1;
    b->idle = u->next;
    b->n_idle--;
    int fd = u->fd;
    upstream_free(u);
    return fd;
}

void front_backend_idle_expire(struct worker *w)
{
    for (size_t i = 0; i < w->backends.cap; i++) {
        struct backend *b = w->backends.slots[i].hash ? w->backends.slots[i].value : NULL;
        if (!b)
            continue;
        /* Newest first: once one expired, every older one has too. */
        struct upstream **p = &b->idle;
        while (*p && ((*p)->expires == 0 || (*p)->expires > w->now_ms))
            p = &(*p)->next;
        while (*p) {
            struct upstream *u = *p;
            *p = u->next;
            b->n_idle--;
            evloop_del(w->loop, u->fd);
            close(u->fd);
            upstream_free(u);
        }
    }
}

void front_backend_idle_check(struct backend *b)
{
    while (b->idle) {
        int fd = front_backend_pool_get(b);
        evloop_del(b->w->loop, fd);
        close(fd);
    }
}

void front_backend_unref(struct backend *b)
{
    if (!b || --b->refs > 0)
        return;
    front_backend_idle_check(b);
    front_map_del(&b->w->backends, b->path, strlen(b->path), b);
    free(b->path);
    free(b);
}

/* ---- set-up and tear-down ---- */

static void px_release(struct proxy *px, bool reuse)
{
    struct worker *w = px->c->w;
    if (px->ufd >= 0 && reuse)
        pool_put(px);
    front_upstream_close(w, &px->ufd);
    px->b->active--;
    front_backend_unref(px->b);
    px->b = NULL;
    px->c->px = NULL;
    buf_clear(&px->up_out);
    buf_clear(&px->up_in);
    px->next_free = free_proxies;
    free_proxies = px;
}

void front_proxy_free(struct conn *c)
{
    if (c->px)
        px_release(c->px, false);
}

/* Ends the proxied request with an answer of our own (before any of the
 * backend's answer went out) or by closing (after). */
static void px_fail(struct proxy *px, int status, const char *why)
{
    struct conn *c = px->c;
    bool head_sent = px->head_sent;
    if (why)
        front_conn_log_error(c, "upstream %s: %s", px->b ? px->b->path : "-", why);
    px_release(px, false);
    if (front_conn_upstream_failed(c, status, head_sent))
        front_conn_run(c);
}

static void px_finish(struct proxy *px)
{
    struct conn *c = px->c;
    bool reuse = px->res.keep_alive && px->req_done && px->up_off == px->up_out.len &&
                 px->up_in.len == 0 && !px->upstream_eof && !px->up_broken;
    if (!px->req_done) {
        /* The backend answered before reading the whole body: we cannot know where
         * the client's next request would start. */
        c->keep_alive = false;
        c->linger = true;
    }
    px_release(px, reuse);
    c->state = CS_RESPOND;
    front_conn_run(c);
}

bool front_backend_admit(struct conn *c)
{
    struct worker *w = c->w;
    struct backend *b = c->site->backend;
    if (!w->site_max_requests || b->active < w->site_max_requests)
        return true;
    /* A flood would write a line per refused request: one a second says it. */
    if (w->now_ms - b->refused_logged_ms >= 1000) {
        front_conn_log_error(c, "over the site's limit of requests at its backend at once "
                             "(%u in this worker): answered 503", w->site_max_requests);
        b->refused_logged_ms = w->now_ms;
    }
    front_conn_error(c, 503, "Retry-After: 5\r\n");   /* with a body, dispatch made it close */
    return false;
}

int front_backend_connect(struct backend *b, int *fd)
{
    if (*fd < 0) {
        *fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (*fd < 0)
            return -errno;
    }
    if (connect(*fd, (struct sockaddr *)&b->addr, b->addr_len) < 0) {
        /* A full backlog: a unix socket gives no readiness event for this, so the
         * caller retries on the tick until its connect timeout. */
        if (errno == EAGAIN)
            return 0;
        if (errno != EINPROGRESS && errno != EISCONN)
            return -errno;
    }
    return 1;
}

void front_upstream_close(struct worker *w, int *fd)
{
    if (*fd < 0)
        return;
    evloop_del(w->loop, *fd);
    close(*fd);
    *fd = -1;
}

ssize_t front_read_into(int fd, struct buf *b)
{
    if (buf_reserve(b, FRONT_READ_CHUNK) < 0)
        return -ENOBUFS;
    ssize_t n = read(fd, b->data + b->len, FRONT_READ_CHUNK);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? -EAGAIN : -errno;
    b->len += (size_t)n;
    b->data[b->len] = 0;
    return n;
}

static int up_connect(struct proxy *px)
{
    int r = front_backend_connect(px->b, &px->ufd);
    px->connect_retry = r == 0;
    if (r <= 0)
        return r;
    px->connected = true;
    px->deadline = px->c->w->now_ms + px->c->site->upstream_timeout_ms;
    /* EPOLLOUT only if the first send comes up short (px_run arms it). */
    return evloop_add(px->c->w->loop, px->ufd, UP_EVENTS, up_io, px);
}

/* Fields the backend gets from us, or not at all: the hop-by-hop ones, those we
 * set ourselves (Host, Forwarded, X-Forwarded-For/-Proto/-Host), and any a client
 * could spoof them with: the whole X-Forwarded- family (-Port, -Ssl, -Scheme are
 * read by some frameworks), X-Real-IP, and names holding '_', which CGI-style
 * gateways read as '-' (X_Forwarded_For would become X-Forwarded-For). */
static bool hop_by_hop(const char *name, size_t len, const char *conn_value, size_t conn_len)
{
#define F(s) { s, sizeof(s) - 1 }
    static const struct {
        const char *name;
        size_t len;
    } drop[] = {
        F("connection"), F("keep-alive"), F("proxy-connection"), F("te"), F("transfer-encoding"),
        F("trailer"), F("upgrade"), F("content-length"), F("host"), F("expect"), F("forwarded"),
        F("x-real-ip"),
    };
#undef F
    for (size_t i = 0; i < ARRAY_SIZE(drop); i++)
        if (len == drop[i].len && ascii_case_eq(name, drop[i].name, len))
            return true;
    if ((len >= 12 && ascii_case_eq(name, "x-forwarded-", 12)) || memchr(name, '_', len))
        return true;
    if (conn_value && len < 64) {
        /* Fields named in Connection belong to this hop only (RFC 9110 §7.6.1). */
        char tok[64];
        memcpy(tok, name, len);
        tok[len] = 0;
        return http1_value_has_token(conn_value, conn_len, tok);
    }
    return false;
}

static int append_content_length(struct buf *o, uint64_t v)
{
    char tmp[48] = "Content-Length: ";
    char digits[20];
    size_t n = 0, k = sizeof("Content-Length: ") - 1;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n > 0)
        tmp[k++] = digits[--n];
    tmp[k++] = '\r';
    tmp[k++] = '\n';
    return buf_append(o, tmp, k);
}

static int build_request(struct proxy *px)
{
    struct conn *c = px->c;
    struct http1_request *req = &c->req;
    struct buf *o = &px->up_out;
    const struct http1_header *ch = http1_find_header(req->headers, req->n_headers, "connection");
    const char *cv = ch ? ch->value : NULL;
    size_t cl = ch ? ch->value_len : 0;
    int r = buf_append(o, req->method_str, req->method_len);
    if (r >= 0)
        r = buf_append_char(o, ' ');
    if (r >= 0)
        r = buf_append(o, req->path, req->path_len);
    if (r >= 0)
        r = buf_append_str(o, " HTTP/1.1\r\nHost: ");
    if (r >= 0 && req->host)
        r = buf_append(o, req->host, req->host_len);
    if (r >= 0)
        r = buf_append_str(o, "\r\n");
    for (size_t i = 0; r >= 0 && i < req->n_headers; i++) {
        const struct http1_header *h = &req->headers[i];
        if (hop_by_hop(h->name, h->name_len, cv, cl))
            continue;
        r = buf_append(o, h->name, h->name_len);
        if (r >= 0)
            r = buf_append(o, ": ", 2);
        if (r >= 0)
            r = buf_append(o, h->value, h->value_len);
        if (r >= 0)
            r = buf_append(o, "\r\n", 2);
    }
    const char *ip = c->client->addr;
    bool v6 = strchr(ip, ':') != NULL;
    /* Appends rather than buf_printf: this runs for every proxied request. */
    size_t iplen = strlen(ip);
    if (r >= 0)
        r = buf_append_str(o, v6 ? "Forwarded: for=\"[" : "Forwarded: for=\"");
    if (r >= 0)
        r = buf_append(o, ip, iplen);
    if (r >= 0)
        r = buf_append_str(o, v6 ? "]\";proto=" : "\";proto=");
    if (r >= 0)
        r = buf_append_str(o, front_conn_https(c) ? "https" : "http");
    if (r >= 0 && req->host) {
        r = buf_append_str(o, ";host=\"");
        if (r >= 0)
            r = buf_append(o, req->host, req->host_len);
        if (r >= 0)
            r = buf_append_char(o, '"');
    }
    if (r >= 0)
        r = buf_append_str(o, "\r\nX-Forwarded-For: ");
    if (r >= 0)
        r = buf_append(o, ip, iplen);
    if (r >= 0)
        r = buf_append_str(o, front_conn_https(c) ? "\r\nX-Forwarded-Proto: https\r\n" : "\r\nX-Forwarded-Proto: http\r\n");
    if (r >= 0 && req->host) {
        r = buf_append_str(o, "X-Forwarded-Host: ");
        if (r >= 0)
            r = buf_append(o, req->host, req->host_len);
        if (r >= 0)
            r = buf_append_str(o, "\r\n");
    }
    if (r >= 0 && req->upgrade) {
        const struct http1_header *up = http1_find_header(req->headers, req->n_headers, "upgrade");
        r = buf_append_str(o, "Connection: upgrade\r\nUpgrade: ");
        if (r >= 0)
            r = buf_append(o, up->value, up->value_len);
        if (r >= 0)
            r = buf_append_str(o, "\r\n");
    }
    if (r >= 0 && req->body == HTTP1_BODY_LENGTH)
        r = append_content_length(o, req->content_length);
    else if (r >= 0 && req->body == HTTP1_BODY_CHUNKED)
        r = buf_append_str(o, "Transfer-Encoding: chunked\r\n");
    if (r >= 0)
        r = buf_append_str(o, "\r\n");
    return r;
}

void front_proxy_start(struct conn *c)
{
    struct worker *w = c->w;
    struct vsite *s = c->site;
    struct http1_request *req = &c->req;
    if (!s->backend) {
        front_conn_log_error(c, "site has no backend socket");
        front_conn_error(c, 502, NULL);
        return;
    }
    if (req->body == HTTP1_BODY_LENGTH && req->content_length > s->max_body) {
        front_conn_error(c, 413, NULL);   /* dispatch made the connection close: the body is unread */
        return;
    }
    if (!front_backend_admit(c))
        return;
    struct proxy *px = free_proxies;
    if (px) {
        free_proxies = px->next_free;
    } else {
        px = calloc(1, sizeof(*px));
        if (!px) {
            front_conn_error(c, 503, NULL);
            return;
        }
        px->up_out = BUF_INIT(UP_BUF_MAX);
        px->up_in = BUF_INIT(UP_BUF_MAX);
    }
    struct buf keep_out = px->up_out, keep_in = px->up_in;
    *px = (struct proxy){ .c = c, .ufd = -1, .up_out = keep_out, .up_in = keep_in };
    px->b = s->backend;
    px->b->refs++;
    px->b->active++;
    px->method = req->method;
    px->upgrade = req->upgrade;
    px->req_body = req->body;
    px->req_left = req->body == HTTP1_BODY_LENGTH ? req->content_length : 0;
    px->req_done = req->body == HTTP1_BODY_NONE || (req->body == HTTP1_BODY_LENGTH && px->req_left == 0);
    px->max_body = s->max_body;
    http1_chunked_init(&px->req_chunked);
    http1_parser_init(&px->rparser, NULL);   /* NULL: HTTP1_LIMITS_DEFAULT */
    px->start_ms = w->now_ms;
    c->px = px;
    c->state = CS_PROXY;
    front_conn_body_taken(c);
    if (build_request(px) < 0) {
        px_fail(px, 431, NULL);
        return;
    }
    if (req->expect_continue && !px->req_done)
        buf_append_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
    /* The head is copied: from here on `in` holds only body (and what follows). */
    buf_consume(&c->in, c->head_len);
    c->consumed = 0;
    c->head_len = 0;

    int fd = front_backend_pool_get(px->b);
    if (fd >= 0) {
        px->ufd = fd;
        px->reused = true;
        px->connected = true;
        if (evloop_set(w->loop, fd, UP_EVENTS, up_io, px) < 0) {
            px_fail(px, 502, "cannot watch the upstream socket");
            return;
        }
    } else {
        int r = up_connect(px);
        if (r < 0) {
            px_fail(px, 502, strerror(-r));
            return;
        }
    }
    if (!px->connected)
        px->deadline = w->now_ms + w->cfg->upstream_connect_timeout_ms;
    else
        px->deadline = w->now_ms + c->site->upstream_timeout_ms;
    px_run(px);
}

/* A reused connection the backend had closed meanwhile: send the request again on
 * a fresh one, which is safe only while nothing of the request was consumed that
 * we could not replay (no body), and for a method that may run twice: the backend
 * may have run a POST and died before answering (nginx does the same). */
static bool px_retry(struct proxy *px)
{
    if (!px->reused || px->retried || px->req_body != HTTP1_BODY_NONE || px->up_in.len > 0 ||
        px->head_sent || !http_method_idempotent(px->method))
        return false;
    px->retried = true;
    px->reused = false;
    px->up_broken = false;
    px->send_error = 0;
    front_upstream_close(px->c->w, &px->ufd);
    px->connected = false;
    px->up_readable = false;
    px->up_off = 0;
    px->upstream_eof = false;
    return up_connect(px) >= 0;
}

/* ---- the pump ---- */

static int client_head(struct proxy *px)
{
    struct conn *c = px->c;
    struct http1_response *res = &px->res;
    const struct http1_header *ch = http1_find_header(res->headers, res->n_headers, "connection");
    bool known_length = res->body == HTTP1_BODY_LENGTH || res->body == HTTP1_BODY_NONE;
    if (!known_length && c->req.minor_version == 0)
        c->keep_alive = false;   /* an HTTP/1.0 client learns the end by the close */
    px->rechunk = !known_length && c->req.minor_version == 1;
    int r = front_conn_head_begin(c, res->status);
    for (size_t i = 0; r >= 0 && i < res->n_headers; i++) {
        const struct http1_header *h = &res->headers[i];
        /* Content-Length stays on answers without a body (HEAD, 304): it
         * describes the representation there, not this message. */
        if (mem_case_eq(h->name, h->name_len, "content-length") && res->body == HTTP1_BODY_NONE)
            ;
        else if (hop_by_hop(h->name, h->name_len, ch ? ch->value : NULL, ch ? ch->value_len : 0) ||
                 mem_case_eq(h->name, h->name_len, "date") || mem_case_eq(h->name, h->name_len, "server"))
            continue;
        r = buf_append(&c->out, h->name, h->name_len);
        if (r >= 0)
            r = buf_append(&c->out, ": ", 2);
        if (r >= 0)
            r = buf_append(&c->out, h->value, h->value_len);
        if (r >= 0)
            r = buf_append(&c->out, "\r\n", 2);
    }
    if (r >= 0 && res->body == HTTP1_BODY_LENGTH)
        r = append_content_length(&c->out, res->content_length);
    if (r >= 0 && px->rechunk)
        r = buf_append_str(&c->out, "Transfer-Encoding: chunked\r\n");
    if (r >= 0)
        r = buf_append_str(&c->out, "\r\n");
    return r;
}

static int tunnel_head(struct proxy *px)
{
    struct conn *c = px->c;
    struct http1_response *res = &px->res;
    c->status = 101;
    int r = buf_append_str(&c->out, "HTTP/1.1 101 Switching Protocols\r\n");
    for (size_t i = 0; r >= 0 && i < res->n_headers; i++) {
        const struct http1_header *h = &res->headers[i];
        if (mem_case_eq(h->name, h->name_len, "connection") ||
            mem_case_eq(h->name, h->name_len, "keep-alive") ||
            mem_case_eq(h->name, h->name_len, "transfer-encoding") ||
            mem_case_eq(h->name, h->name_len, "content-length"))
            continue;
        r = buf_append(&c->out, h->name, h->name_len);
        if (r >= 0)
            r = buf_append(&c->out, ": ", 2);
        if (r >= 0)
            r = buf_append(&c->out, h->value, h->value_len);
        if (r >= 0)
            r = buf_append(&c->out, "\r\n", 2);
    }
    if (r >= 0)
        r = buf_append_str(&c->out, "Connection: upgrade\r\n\r\n");
    return r;
}

/* Client body bytes in c->in -> up_out. Returns 0, or a negated status. */
static int pump_request_body(struct proxy *px)
{
    struct conn *c = px->c;
    if (px->tunnel) {
        if (c->in.len > 0) {
            if (buf_append(&px->up_out, c->in.data, c->in.len) < 0)
                return -500;
            buf_clear(&c->in);
        }
        return 0;
    }
    if (px->req_done || c->in.len == 0)
        return 0;
    if (px->req_body == HTTP1_BODY_LENGTH) {
        size_t take = (size_t)MIN(px->req_left, (uint64_t)c->in.len);
        if (buf_append(&px->up_out, c->in.data, take) < 0)
            return -500;
        buf_consume(&c->in, take);
        px->req_left -= take;
        px->req_done = px->req_left == 0;
        return 0;
    }
    size_t len = c->in.len, extra = 0;
    int r = http1_chunked_decode(&px->req_chunked, c->in.data, &len, &extra);
    if (r < 0)
        return -400;
    if (px->req_chunked.total > px->max_body)
        return -413;
    if (len > 0 && http1_write_chunk(&px->up_out, c->in.data, len) < 0)
        return -500;
    if (r == 1) {
        if (http1_write_chunk(&px->up_out, NULL, 0) < 0)
            return -500;
        px->req_done = true;
        /* What followed the body is the next pipelined request. */
        memmove(c->in.data, c->in.data + len, extra);
        c->in.len = extra;
    } else {
        c->in.len = 0;
    }
    c->in.data[c->in.len] = 0;
    return 0;
}

/* Upstream bytes in up_in -> c->out. Returns 0, or a negated status. */
static int pump_response(struct proxy *px)
{
    struct conn *c = px->c;
    struct worker *w = c->w;
    while (!px->head_sent && !px->tunnel) {
        int r = http1_parse_response(&px->rparser, px->up_in.data, px->up_in.len, px->method, &px->res);
        if (r == HTTP1_INCOMPLETE)
            return px->upstream_eof ? -502 : 0;
        if (r < 0)
            return -502;
        if (c->upstream_ms < 0)
            c->upstream_ms = (int64_t)(w->now_ms - px->start_ms);
        if (px->res.status == 101 && px->upgrade) {
            if (tunnel_head(px) < 0)
                return -502;
            buf_consume(&px->up_in, (size_t)r);
            px->tunnel = true;
            px->head_sent = true;
            c->keep_alive = false;
            break;
        }
        if (px->res.status < 200) {
            /* 100 Continue (we sent our own) and 103 hints are dropped. */
            buf_consume(&px->up_in, (size_t)r);
            http1_parser_init(&px->rparser, NULL);   /* NULL: HTTP1_LIMITS_DEFAULT */
            continue;
        }
        if (client_head(px) < 0)
            return -502;
        buf_consume(&px->up_in, (size_t)r);
        px->head_sent = true;
        px->res_body = px->res.body;
        px->res_left = px->res.body == HTTP1_BODY_LENGTH ? px->res.content_length : 0;
        px->res_done = px->res.body == HTTP1_BODY_NONE ||
                       (px->res.body == HTTP1_BODY_LENGTH && px->res_left == 0);
        if (px->res.body == HTTP1_BODY_NONE && px->up_in.len > 0)
            px->upstream_eof = true;   /* stray bytes: never reuse this connection */
        http1_chunked_init(&px->res_chunked);
        if (c->req.method == HTTP_HEAD)
            c->bytes_sent = 0;
    }
    if (px->tunnel) {
        if (px->up_in.len > 0) {
            if (buf_append(&c->out, px->up_in.data, px->up_in.len) < 0)
                return -502;
            c->bytes_sent += px->up_in.len;
            buf_clear(&px->up_in);
        }
        return 0;
    }
    if (px->res_done || px->up_in.len == 0) {
        if (!px->res_done && px->upstream_eof) {
            if (px->res_body != HTTP1_BODY_UNTIL_CLOSE)
                return -502;   /* cut short: the client must see a broken answer, not a short one */
            if (px->rechunk && http1_write_chunk(&c->out, NULL, 0) < 0)
                return -502;
            px->res_done = true;
        }
        return 0;
    }
    if (px->res_body == HTTP1_BODY_LENGTH) {
        size_t take = (size_t)MIN(px->res_left, (uint64_t)px->up_in.len);
        if (buf_append(&c->out, px->up_in.data, take) < 0)
            return -502;
        c->bytes_sent += take;
        buf_consume(&px->up_in, take);
        px->res_left -= take;
        px->res_done = px->res_left == 0;
        if (px->res_done && px->up_in.len > 0)
            px->upstream_eof = true;   /* more than it announced: do not reuse */
        return 0;
    }
    if (px->res_body == HTTP1_BODY_CHUNKED) {
        size_t len = px->up_in.len, extra = 0;
        int r = http1_chunked_decode(&px->res_chunked, px->up_in.data, &len, &extra);
        if (r < 0)
            return -502;
        int k = 0;
        if (len > 0)
            k = px->rechunk ? http1_write_chunk(&c->out, px->up_in.data, len)
                            : buf_append(&c->out, px->up_in.data, len);
        c->bytes_sent += len;
        if (k >= 0 && r == 1 && px->rechunk)
            k = http1_write_chunk(&c->out, NULL, 0);
        if (k < 0)
            return -502;
        if (r == 1) {
            px->res_done = true;
            if (extra > 0)
                px->upstream_eof = true;
        }
        buf_clear(&px->up_in);
        return 0;
    }
    /* Until close. */
    int k = px->rechunk ? http1_write_chunk(&c->out, px->up_in.data, px->up_in.len)
                        : buf_append(&c->out, px->up_in.data, px->up_in.len);
    if (k < 0)
        return -502;
    c->bytes_sent += px->up_in.len;
    buf_clear(&px->up_in);
    return 0;
}

/* Reads up to one chunk into b. >0, 0 on EOF, -EAGAIN, or a negative errno. */
static bool client_in_wanted(const struct proxy *px)
{
    return (!px->req_done || px->tunnel) && !px->client_eof && px->up_out.len - px->up_off < HIGH_WATER;
}

static void px_run(struct proxy *px)
{
    struct conn *c = px->c;
    struct worker *w = c->w;
    bool any_progress = false;
    for (int rounds = 0; rounds < 64; rounds++) {
        bool progress = false;
        int st = pump_request_body(px);
        if (st < 0) {
            px_fail(px, -st, st == -413 ? NULL : "bad request body");
            return;
        }
        /* request -> upstream */
        if (px->connected && px->up_off < px->up_out.len) {
            ssize_t n = send(px->ufd, px->up_out.data + px->up_off, px->up_out.len - px->up_off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                px->up_off += (size_t)n;
                progress = true;
                if (px->up_off == px->up_out.len && px->req_body != HTTP1_BODY_NONE) {
                    buf_clear(&px->up_out);
                    px->up_off = 0;
                }
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                if (px_retry(px))
                    continue;
                /* The backend stopped reading. What it answered first, if anything,
                 * is still to be read (a 413 or 401 refusing a body, then a close);
                 * one that closed without a word gets its 502 from the read side. */
                px->send_error = errno;
                px->up_off = px->up_out.len;
                px->up_broken = true;          /* never for another request */
                px->up_readable = true;
                progress = true;
            }
        }
        /* client -> us, only while upstream keeps up */
        bool want_client_in = client_in_wanted(px);
        if (want_client_in && c->in.len < HIGH_WATER && c->readable) {
            ssize_t n = front_conn_read_into(c, &c->in);
            if (n == -EAGAIN || (n > 0 && n < FRONT_READ_CHUNK))
                c->readable = false;   /* drained: wait for epoll to say there is more */
            if (n > 0) {
                progress = true;
                c->deadline = w->now_ms + w->cfg->idle_timeout_ms;
            } else if (n == 0 || (n < 0 && n != -EAGAIN)) {
                if (!px->tunnel) {
                    px_release(px, false);   /* the client left mid-request */
                    front_conn_close(c);
                    return;
                }
                px->client_eof = true;
                progress = true;
            }
        }
        /* upstream -> us, only while the client keeps up */
        bool want_up_in = px->connected && !px->upstream_eof && !px->res_done &&
                          c->out.len - c->out_off < HIGH_WATER;
        if (want_up_in && px->up_readable) {
            /* Only after epoll said so: reading right after sending the request
             * would nearly always cost a read that says EAGAIN. */
            ssize_t n = front_read_into(px->ufd, &px->up_in);
            if (n == -EAGAIN || (n > 0 && n < FRONT_READ_CHUNK))
                px->up_readable = false;
            if (n > 0) {
                progress = true;
                px->deadline = w->now_ms + c->site->upstream_timeout_ms;
            } else if (n == 0 || (n < 0 && n != -EAGAIN)) {
                if (px->up_in.len == 0 && !px->head_sent && px_retry(px))
                    continue;
                px->upstream_eof = true;
                progress = true;
            }
        }
        st = pump_response(px);
        if (st < 0) {
            px_fail(px, -st, st != -502 ? NULL
                             : px->send_error && px->up_in.len == 0 ? strerror(px->send_error)
                                                                     : "bad or truncated answer");
            return;
        }
        /* us -> client */
        if (c->out_off < c->out.len) {
            size_t before = c->out_off;
            int r = front_conn_flush(c);
            if (r < 0) {
                px_release(px, false);
                front_conn_close(c);
                return;
            }
            if (c->out_off != before || r == 1)
                progress = true;
        }
        if (px->tunnel) {
            if (px->client_eof && px->up_off == px->up_out.len)
                shutdown(px->ufd, SHUT_WR);
            if (px->upstream_eof && c->out_off == c->out.len) {
                px_release(px, false);
                front_conn_close(c);
                return;
            }
        } else if (px->res_done && c->out_off == c->out.len) {
            px_finish(px);
            return;
        }
        if (!progress)
            break;
        any_progress = true;
    }
    /* The deadline counts silence: any movement either way restarts it. */
    if (any_progress && px->connected)
        px->deadline = w->now_ms + (px->tunnel ? w->cfg->idle_timeout_ms : c->site->upstream_timeout_ms);
    /* Arm the events we wait for. The client's EPOLLIN stays on while it is
     * quiet even when we do not want its bytes (a request without body): it is
     * turned off only once the client actually speaks, so the usual request costs
     * no epoll_ctl on the client socket. */
    uint32_t cev = 0;
    if (c->out_off < c->out.len)
        cev |= EPOLLOUT;
    if (client_in_wanted(px) || !px->client_in_muted)
        cev |= EPOLLIN;
    front_conn_want(c, cev);
    if (px->connected) {
        uint32_t uev = 0;
        if (px->up_off < px->up_out.len)
            uev |= EPOLLOUT;
        if (!px->upstream_eof && !px->res_done && c->out.len - c->out_off < HIGH_WATER)
            uev |= UP_EVENTS;
        evloop_mod(w->loop, px->ufd, uev);
    }
}

static void up_io(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct proxy *px = data;
    px->c->w->now_ms = now_ms();
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        px->up_readable = true;
    px_run(px);
}

void front_proxy_client_event(struct conn *c, uint32_t events)
{
    struct proxy *px = c->px;
    if (!px)
        return;
    if ((events & EPOLLIN) && !client_in_wanted(px))
        px->client_in_muted = true;
    px_run(px);
}

void front_proxy_timeout(struct conn *c)
{
    struct proxy *px = c->px;
    struct worker *w = c->w;
    if (!px)
        return;
    if (px->connect_retry) {
        int r = up_connect(px);
        if (r < 0) {
            px_fail(px, 502, strerror(-r));
            return;
        }
        if (px->connected) {
            px_run(px);
            return;
        }
    }
    if (px->deadline > w->now_ms)
        return;
    if (px->tunnel) {
        px_release(px, false);
        front_conn_close(c);
        return;
    }
    px_fail(px, 504, px->connected ? "timed out waiting for the answer" : "timed out connecting");
}
