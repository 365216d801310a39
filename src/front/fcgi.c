/* The FastCGI client: runs a PHP site's scripts through its php-fpm pool.
 *
 * static.c routes a PHP site's request with fastcgi_route_resolve(); only a SCRIPT
 * comes here. The shape is proxy.c's: one pump (fc_run) moves bytes both ways
 * whenever either socket is ready, each side read only while the other side's
 * buffer is below HIGH_WATER, so memory per request stays bounded.
 *
 * - Request: BEGIN_REQUEST (FCGI_KEEP_CONN), PARAMS, then the body as STDIN
 *   records. PHP needs CONTENT_LENGTH, so a chunked body is spooled first (in
 *   memory, then in a memfd past SPOOL_MEM) and sent with its counted length.
 * - Response: STDOUT is staged until the CGI head is complete and either body
 *   bytes or END_REQUEST arrived; then the head becomes an HTTP head. When
 *   END_REQUEST came with the head (the usual case: php-fpm buffers small pages)
 *   the exact length is known and sent; otherwise the script's Content-Length,
 *   else chunked (close-delimited for HTTP/1.0). A 5xx with an empty body gets
 *   berth's page. STDERR (PHP's warnings and fatals) goes to the error log.
 * - Upstream connections are pooled per backend (front_backend_pool_*), reused
 *   only after a clean END_REQUEST with nothing left over either way. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "fastcgi/fastcgi.h"
#include "front/front-worker.h"

#define REQ_ID 1
#define UP_OUT_MAX (256 * 1024)
#define UP_IN_MAX (256 * 1024)
#define STAGE_MAX (FASTCGI_MAX_HEAD_DEFAULT + UP_IN_MAX)   /* a whole head + one batch read */
#define HIGH_WATER (64 * 1024)   /* stop reading a side while the other holds this much */
#define SPOOL_MEM (64 * 1024)    /* chunked bodies up to this stay in memory */
/* All the chunked bodies one worker holds at once, in memory and memfds: past it a
 * request gets a 503, so that clients trickling large bodies over many
 * connections cannot make the worker hold gigabytes of RAM. */
#define SPOOL_WORKER_MAX ((uint64_t)256 << 20)
#define STDERR_MAX (8 * 1024)
/* A php-fpm child serves one connection at a time and, with FCGI_KEEP_CONN, stays
 * with it until it closes: every idle pooled connection pins a child that no other
 * connection can reach, and a busy kept connection keeps its child from the
 * connections waiting in the backlog (measured: p99 of 130-490 ms under load with a
 * plain pool, against 15 ms for nginx, which does not keep FastCGI connections).
 * So a connection is pooled only when no other request of this worker is waiting
 * on the backend (then nobody queues behind it), at most one, and only briefly: it
 * carries back-to-back requests of one client, saving a connect and an accept
 * each, and lets go of its child soon after. */
#define POOL_MAX 1
#define POOL_IDLE_MS 250

enum framing {
    FR_NONE,      /* no body goes to the client (HEAD, 204, 304, berth's own page) */
    FR_LENGTH,    /* Content-Length sent: res_left more bytes */
    FR_CHUNKED,
    FR_CLOSE,     /* HTTP/1.0 without a length: the close ends it */
};

struct fcgi {
    struct conn *c;
    struct backend *b;
    int ufd;
    bool connected;
    bool connect_retry;          /* backlog full (EAGAIN): retried on the tick */
    bool reused;                 /* the connection came from the pool */
    bool retried;
    bool has_body;
    bool starting;               /* inside front_fcgi_start: conn.c's loop runs the conn next */
    bool up_readable;            /* epoll said the upstream is readable, no EAGAIN since */
    bool up_broken;              /* a send failed: the connection is never pooled */
    /* request: client -> upstream */
    struct buf up_out;
    size_t up_off;
    bool chunked;                /* the client's body is chunked: spooled first */
    bool spooling;               /* still reading a chunked body; nothing is sent yet */
    uint64_t req_left;           /* Content-Length body bytes still to read */
    struct http1_chunked dec;
    struct buf spool;            /* chunked body in memory ... */
    int spool_fd;                /* ... or in a memfd past SPOOL_MEM; -1 */
    uint64_t spool_len, spool_off;
    bool body_read;              /* the whole body was read from the client */
    bool stdin_ended;            /* the empty STDIN record is in up_out */
    /* response: upstream -> client */
    struct buf up_in;
    struct fastcgi_response resp;
    struct buf stage;            /* STDOUT bytes not yet given to the client */
    struct fastcgi_cgi_parser cgi;
    struct fastcgi_cgi_head head;
    size_t head_len;             /* > 0 once the CGI head parsed */
    const char *head_base;       /* stage.data the head's pointers point into */
    bool head_sent;
    enum framing framing;
    uint64_t res_left;
    bool upstream_eof;
    uint64_t start_ms;
    uint64_t deadline;
    struct fcgi *next_free;
};

static struct fcgi *free_fcgis;
/* Bytes of spooled bodies this worker holds now (SPOOL_WORKER_MAX). */
static uint64_t spooled_total;

/* For reading a spooled body back; one worker is one thread. */
static char scratch[FASTCGI_MAX_CONTENT];

static void up_io(struct evloop *loop, int fd, uint32_t events, void *data);
static void fc_run(struct fcgi *fc);

/* ---- set-up and tear-down ---- */

/* Fresh parser state, keeping the STDERR buffer's memory for the next request. */
static void resp_reset(struct fcgi *fc)
{
    struct buf keep = fc->resp.stderr_buf;
    fastcgi_response_init(&fc->resp, REQ_ID, STDERR_MAX);
    buf_clear(&keep);
    fc->resp.stderr_buf = keep;
}

static void log_stderr(struct fcgi *fc)
{
    struct buf *e = &fc->resp.stderr_buf;
    size_t i = 0;
    while (i < e->len) {
        const char *nl = memchr(e->data + i, '\n', e->len - i);
        size_t n = nl ? (size_t)(nl - (e->data + i)) : e->len - i;
        if (n > 0)
            front_conn_log_error(fc->c, "PHP: %.*s", (int)MIN(n, (size_t)900), e->data + i);
        i += n + 1;
    }
    if (fc->resp.stderr_dropped)
        front_conn_log_error(fc->c, "PHP: (%llu more bytes of stderr dropped)",
                             (unsigned long long)fc->resp.stderr_dropped);
    buf_clear(e);
    fc->resp.stderr_dropped = 0;
}

static void fc_release(struct fcgi *fc, bool reuse)
{
    struct worker *w = fc->c->w;
    if (fc->ufd >= 0 && reuse) {
        front_backend_pool_put(fc->b, fc->ufd, POOL_MAX, POOL_IDLE_MS);
        fc->ufd = -1;
    }
    front_upstream_close(w, &fc->ufd);   /* php-fpm sees the close and ends the script */
    fc->spool_fd = safe_close(fc->spool_fd);
    spooled_total -= fc->spool_len;
    fc->spool_len = 0;
    fc->b->active--;
    front_backend_unref(fc->b);
    fc->b = NULL;
    fc->c->fc = NULL;
    buf_clear(&fc->up_out);
    buf_clear(&fc->up_in);
    buf_clear(&fc->stage);
    buf_clear(&fc->spool);
    buf_clear(&fc->resp.stderr_buf);
    fc->next_free = free_fcgis;
    free_fcgis = fc;
}

void front_fcgi_free(struct conn *c)
{
    if (c->fc)
        fc_release(c->fc, false);
}

/* Ends the request with an answer of our own (before any of the script's answer
 * went out) or by closing (after). */
static void fc_fail(struct fcgi *fc, int status, const char *why)
{
    struct conn *c = fc->c;
    bool head_sent = fc->head_sent, starting = fc->starting;
    if (why)
        front_conn_log_error(c, "upstream %s: %s", fc->b ? fc->b->path : "-", why);
    log_stderr(fc);
    fc_release(fc, false);
    if (front_conn_upstream_failed(c, status, head_sent) && !starting)
        front_conn_run(c);
}

static void fc_finish(struct fcgi *fc)
{
    struct conn *c = fc->c;
    bool reuse = fc->resp.ended && fc->resp.protocol_status == FASTCGI_REQUEST_COMPLETE &&
                 fc->stdin_ended && fc->up_off == fc->up_out.len && fc->up_in.len == 0 &&
                 !fc->upstream_eof && !fc->up_broken && fc->b->active == 1;
    if (!fc->body_read) {
        /* The script ended before the body was read: where the client's next
         * request starts is unknown. */
        c->keep_alive = false;
        c->linger = true;
    }
    log_stderr(fc);
    fc_release(fc, reuse);
    c->state = CS_RESPOND;
    front_conn_run(c);
}

/* A connected upstream socket (fresh or pooled) joins the loop. A request without
 * body is written right away: it nearly always fits the socket buffer, and then
 * the only event to wait for is the answer (no EPOLLOUT round, one epoll_ctl). */
static int up_watch(struct fcgi *fc)
{
    fc->connected = true;
    fc->up_readable = false;
    fc->deadline = fc->c->w->now_ms + fc->c->site->upstream_timeout_ms;
    if (!fc->has_body && fc->up_off < fc->up_out.len) {
        ssize_t n = send(fc->ufd, fc->up_out.data + fc->up_off, fc->up_out.len - fc->up_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            fc->up_off += (size_t)n;   /* errors: the pump meets them again on EPOLLOUT */
    }
    uint32_t ev = EPOLLIN | (fc->up_off < fc->up_out.len ? EPOLLOUT : 0);
    /* A pooled connection is still watched (by the pool): it only changes hands. */
    if (fc->reused)
        return evloop_set(fc->c->w->loop, fc->ufd, ev, up_io, fc);
    return evloop_add(fc->c->w->loop, fc->ufd, ev, up_io, fc);
}

static int up_connect(struct fcgi *fc)
{
    int r = front_backend_connect(fc->b, &fc->ufd);
    fc->connect_retry = r == 0;   /* php-fpm's backlog is full */
    return r <= 0 ? r : up_watch(fc);
}

static int build_params(struct fcgi *fc, const struct fastcgi_route *route)
{
    struct conn *c = fc->c;
    struct http1_request *req = &c->req;
    char host[FRONT_HOST_MAX + 3];
    size_t host_len;
    if (!req->host || front_host_normalize(req->host, req->host_len, host, &host_len) < 0)
        return -EINVAL;
    const char *q = memchr(req->path, '?', req->path_len);
    const struct http1_header *ct = http1_find_header(req->headers, req->n_headers, "content-type");
    /* The request's headers have fastcgi_request_header's layout (both are four
     * pointer/length fields in the same order). */
    _Static_assert(sizeof(struct http1_header) == sizeof(struct fastcgi_request_header), "layout");
    _Static_assert(offsetof(struct http1_header, value_len) ==
                   offsetof(struct fastcgi_request_header, value_len), "layout");
    struct fastcgi_request_info info = {
        .method = req->method_str, .method_len = req->method_len,
        .request_uri = req->path, .request_uri_len = req->path_len,
        .query = q ? q + 1 : "", .query_len = q ? req->path_len - (size_t)(q + 1 - req->path) : 0,
        .document_root = "/site/public",
        .script_name = route->script_name,
        .path_info = route->path_info, .path_info_len = route->path_info_len,
        .server_protocol = c->h2 ? "HTTP/2.0" : req->minor_version ? "HTTP/1.1" : "HTTP/1.0",
        .https = front_conn_https(c),
        .remote_addr = c->client->addr,
        .remote_port = c->remote_port,
        .server_name = host,
        .host = req->host, .host_len = req->host_len,
        .server_port = c->local_port,
        .content_type = ct ? ct->value : NULL, .content_type_len = ct ? ct->value_len : 0,
        .has_content_length = req->body == HTTP1_BODY_LENGTH,
        .content_length = req->content_length,
        .headers = (const struct fastcgi_request_header *)req->headers,
        .n_headers = req->n_headers,
    };
    int r = fastcgi_begin_request_write(&fc->up_out, REQ_ID, true);
    if (r >= 0)
        r = fastcgi_params_build(&fc->up_out, REQ_ID, &info);
    if (r >= 0 && fc->chunked) {
        /* CONTENT_LENGTH is known only once the body is spooled: drop the empty
         * record that ends PARAMS now and add it back after that variable (php-fpm
         * reads any number of PARAMS records until the empty one). */
        fc->up_out.len -= FASTCGI_HEADER_LEN;
    }
    return r;
}

void front_fcgi_start(struct conn *c, const struct fastcgi_route *route)
{
    struct worker *w = c->w;
    struct vsite *s = c->site;
    struct http1_request *req = &c->req;
    if (!s->backend) {
        front_conn_log_error(c, "PHP site has no backend socket");
        front_conn_error(c, 502, NULL);
        return;
    }
    if (req->body == HTTP1_BODY_LENGTH && req->content_length > s->max_body) {
        front_conn_error(c, 413, NULL);   /* dispatch made the connection close: the body is unread */
        return;
    }
    if (!front_backend_admit(c))
        return;
    struct fcgi *fc = free_fcgis;
    if (fc) {
        free_fcgis = fc->next_free;
    } else {
        fc = calloc(1, sizeof(*fc));
        if (!fc) {
            c->keep_alive = false;
            front_conn_error(c, 503, NULL);
            return;
        }
        fc->up_out = BUF_INIT(UP_OUT_MAX);
        fc->up_in = BUF_INIT(UP_IN_MAX);
        fc->stage = BUF_INIT(STAGE_MAX);
        fc->spool = BUF_INIT(SPOOL_MEM);
        buf_init(&fc->resp.stderr_buf, STDERR_MAX);
    }
    /* Everything but the reusable buffers starts from zero. */
    struct buf keep_out = fc->up_out, keep_in = fc->up_in, keep_stage = fc->stage,
               keep_spool = fc->spool, keep_err = fc->resp.stderr_buf;
    memset(fc, 0, offsetof(struct fcgi, head));
    memset(&fc->head_len, 0, sizeof(*fc) - offsetof(struct fcgi, head_len));
    fc->c = c;
    fc->ufd = -1;
    fc->spool_fd = -1;
    fc->up_out = keep_out;
    fc->up_in = keep_in;
    fc->stage = keep_stage;
    fc->spool = keep_spool;
    fc->resp.stderr_buf = keep_err;
    resp_reset(fc);
    fastcgi_cgi_parser_init(&fc->cgi, 0);
    fc->b = s->backend;
    fc->b->refs++;
    fc->b->active++;
    fc->chunked = req->body == HTTP1_BODY_CHUNKED;
    fc->spooling = fc->chunked;
    fc->has_body = fc->chunked || (req->body == HTTP1_BODY_LENGTH && req->content_length > 0);
    fc->req_left = req->body == HTTP1_BODY_LENGTH ? req->content_length : 0;
    fc->body_read = !fc->has_body;
    http1_chunked_init(&fc->dec);
    fc->start_ms = w->now_ms;
    fc->starting = true;
    c->fc = fc;
    c->state = CS_FCGI;
    front_conn_body_taken(c);
    if (build_params(fc, route) < 0) {
        fc_fail(fc, 431, NULL);   /* a header too long for a FastCGI record */
        return;
    }
    if (!fc->has_body) {
        fastcgi_stdin_end(&fc->up_out, REQ_ID);
        fc->stdin_ended = true;
    }
    if (req->expect_continue && !fc->body_read)
        buf_append_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
    /* The head is copied: from here on `in` holds only body (and what follows). */
    buf_consume(&c->in, c->head_len);
    c->consumed = 0;
    c->head_len = 0;

    /* The loop drives the exchange from here (never fc_run now: conn.c's loop is
     * still running this connection and must not see it answered or closed under
     * it). A writable socket is the first event. */
    if (fc->spooling) {
        /* Nothing to send before the body is whole: connect then. */
        fc->deadline = w->now_ms + w->cfg->idle_timeout_ms;
        fc->starting = false;
        front_conn_want(c, EPOLLIN | EPOLLOUT);
        return;
    }
    int fd = front_backend_pool_get(fc->b);
    if (fd >= 0) {
        fc->ufd = fd;
        fc->reused = true;
        if (up_watch(fc) < 0) {
            fc_fail(fc, 502, "cannot watch the upstream socket");
            return;
        }
    } else {
        int r = up_connect(fc);
        if (r < 0) {
            fc_fail(fc, 502, strerror(-r));
            return;
        }
    }
    fc->deadline = w->now_ms + (fc->connected ? s->upstream_timeout_ms : w->cfg->upstream_connect_timeout_ms);
    fc->starting = false;
    /* The 100 Continue waiting in `out`, if any, goes with the first event. The
     * client stays watched for input as between requests: a hang-up stops the
     * script, pipelined bytes are kept for later. */
    if (c->out.len > c->out_off)
        front_conn_want(c, EPOLLIN | EPOLLOUT);
}

/* A reused connection php-fpm had closed meanwhile: send the request again on a
 * fresh one, which is safe only while nothing of it was consumed that we could not
 * replay (no body) and nothing came back. */
static bool fc_retry(struct fcgi *fc)
{
    if (!fc->reused || fc->retried || fc->has_body || fc->up_in.len > 0 || fc->resp.stdout_total > 0 ||
        fc->head_sent || !http_method_idempotent(fc->c->req.method))
        return false;
    fc->retried = true;
    fc->reused = false;
    front_upstream_close(fc->c->w, &fc->ufd);
    fc->connected = false;
    fc->up_off = 0;
    fc->upstream_eof = false;
    resp_reset(fc);
    return up_connect(fc) >= 0;
}

/* ---- the request body ---- */

static int write_full(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int spool_write(struct fcgi *fc, const char *p, size_t n)
{
    if (spooled_total + n > SPOOL_WORKER_MAX)
        return -EBUSY;
    if (fc->spool_fd < 0 && fc->spool.len + n > SPOOL_MEM) {
        fc->spool_fd = memfd_create("berth-php-body", MFD_CLOEXEC);
        if (fc->spool_fd < 0)
            return -errno;
        if (fc->spool.len > 0 && write_full(fc->spool_fd, fc->spool.data, fc->spool.len) < 0)
            return -EIO;
        buf_clear(&fc->spool);
    }
    fc->spool_len += n;
    spooled_total += n;
    if (fc->spool_fd >= 0)
        return write_full(fc->spool_fd, p, n);
    return buf_append(&fc->spool, p, n);
}

/* Client body bytes in c->in -> spool or STDIN records. Returns 0, or a negated
 * status for the client. */
static int pump_request_body(struct fcgi *fc)
{
    struct conn *c = fc->c;
    if (fc->spooling) {
        if (c->in.len == 0)
            return 0;
        size_t len = c->in.len, extra = 0;
        int r = http1_chunked_decode(&fc->dec, c->in.data, &len, &extra);
        if (r < 0)
            return -400;
        if (fc->dec.total > c->site->max_body)
            return -413;
        int w = len > 0 ? spool_write(fc, c->in.data, len) : 0;
        if (w < 0)
            return w == -EBUSY ? -503 : -500;
        if (r == 1) {
            /* What followed the body is the next pipelined request. */
            memmove(c->in.data, c->in.data + len, extra);
            c->in.len = extra;
            c->in.data[c->in.len] = 0;
            fc->spooling = false;
            fc->body_read = true;
            struct fastcgi_params p;
            char num[24];
            snprintf(num, sizeof(num), "%llu", (unsigned long long)fc->spool_len);
            fastcgi_params_init(&p, &fc->up_out, REQ_ID);
            fastcgi_params_add_str(&p, "CONTENT_LENGTH", num);
            if (fastcgi_params_end(&p) < 0)
                return -500;
            return 1;   /* ready to connect */
        }
        buf_clear(&c->in);
        return 0;
    }
    /* What php-fpm has read goes first: only the unsent part is bounded by
     * HIGH_WATER, so without this a php-fpm reading in small bites lets the sent
     * prefix pile up until up_out hits its maximum (seen: a 20 MiB upload on a busy
     * machine failed with 500). No retry needs the sent bytes of a request that
     * has a body (fc_retry refuses those). */
    if (fc->up_off > 0 && fc->has_body) {
        buf_consume(&fc->up_out, fc->up_off);
        fc->up_off = 0;
    }
    /* STDIN records, while php-fpm keeps up. */
    while (!fc->stdin_ended && fc->up_out.len - fc->up_off < HIGH_WATER) {
        if (fc->chunked) {
            uint64_t left = fc->spool_len - fc->spool_off;
            size_t n = (size_t)MIN(left, (uint64_t)sizeof(scratch));
            const char *p = scratch;
            if (fc->spool_fd >= 0) {
                ssize_t k = n ? pread(fc->spool_fd, scratch, n, (off_t)fc->spool_off) : 0;
                if (k < 0 || (size_t)k != n)
                    return -500;
            } else {
                p = fc->spool.data + fc->spool_off;
            }
            if (n > 0 && fastcgi_stdin_write(&fc->up_out, REQ_ID, p, n) < 0)
                return -500;
            fc->spool_off += n;
            if (fc->spool_off < fc->spool_len)
                continue;
        } else if (fc->req_left > 0) {
            if (c->in.len == 0)
                return 0;
            size_t take = (size_t)MIN(fc->req_left, (uint64_t)c->in.len);
            take = MIN(take, (size_t)HIGH_WATER);
            if (fastcgi_stdin_write(&fc->up_out, REQ_ID, c->in.data, take) < 0)
                return -500;
            buf_consume(&c->in, take);
            fc->req_left -= take;
            if (fc->req_left > 0)
                continue;
            fc->body_read = true;
        }
        if (fastcgi_stdin_end(&fc->up_out, REQ_ID) < 0)
            return -500;
        fc->stdin_ended = true;
    }
    return 0;
}

/* ---- the answer ---- */

static int out_header(struct conn *c, const char *name, size_t nlen, const char *value, size_t vlen)
{
    int r = buf_append(&c->out, name, nlen);
    if (r >= 0)
        r = buf_append(&c->out, ": ", 2);
    if (r >= 0)
        r = buf_append(&c->out, value, vlen);
    if (r >= 0)
        r = buf_append(&c->out, "\r\n", 2);
    return r;
}

/* The CGI head -> the client's HTTP head, once body bytes or the end are there. */
static int send_head(struct fcgi *fc)
{
    struct conn *c = fc->c;
    struct fastcgi_cgi_head *h = &fc->head;
    if (fc->stage.data != fc->head_base) {
        /* The stage grew (and moved) since the head was parsed: parse it again
         * where it is now. */
        fastcgi_cgi_parser_init(&fc->cgi, 0);
        if (fastcgi_cgi_head_parse(&fc->cgi, fc->stage.data, fc->stage.len, h) != (int)fc->head_len)
            return -502;
        fc->head_base = fc->stage.data;
    }
    uint64_t body_len = fc->stage.len - fc->head_len;
    bool ended = fc->resp.ended;
    c->upstream_ms = (int64_t)(c->w->now_ms - fc->start_ms);
    if (h->status >= 500 && ended && body_len == 0) {
        /* A fatal error (PHP sends "Status: 500" and nothing else): berth's page,
         * never an empty one or PHP's internals. */
        front_conn_error(c, h->status, NULL);
        c->state = CS_FCGI;
        buf_clear(&fc->stage);
        fc->framing = FR_NONE;
        fc->head_sent = true;
        return 0;
    }
    bool head_req = c->req.method == HTTP_HEAD;
    char cl[48];
    int cl_len = 0;
    if (head_req || h->status == 204 || h->status == 304) {
        fc->framing = FR_NONE;
        if (head_req && h->has_content_length)
            cl_len = snprintf(cl, sizeof(cl), "%llu", (unsigned long long)h->content_length);
    } else if (ended || h->has_content_length) {
        /* With the end in hand the length is exact whatever the script said. */
        fc->framing = FR_LENGTH;
        fc->res_left = ended ? body_len : h->content_length;
        cl_len = snprintf(cl, sizeof(cl), "%llu", (unsigned long long)fc->res_left);
    } else if (c->req.minor_version == 1) {
        fc->framing = FR_CHUNKED;
    } else {
        fc->framing = FR_CLOSE;
        c->keep_alive = false;   /* an HTTP/1.0 client learns the end by the close */
    }
    int r = front_conn_head_begin(c, h->status);
    for (size_t i = 0; r >= 0 && i < h->n_headers; i++) {
        const struct fastcgi_header *f = &h->headers[i];
        if (mem_case_eq(f->name, f->name_len, "server") || mem_case_eq(f->name, f->name_len, "date"))
            continue;
        r = out_header(c, f->name, f->name_len, f->value, f->value_len);
    }
    if (r >= 0 && cl_len > 0)
        r = out_header(c, "Content-Length", 14, cl, (size_t)cl_len);
    if (r >= 0 && fc->framing == FR_CHUNKED)
        r = buf_append_str(&c->out, "Transfer-Encoding: chunked\r\n");
    if (r >= 0)
        r = buf_append(&c->out, "\r\n", 2);
    if (r < 0)
        return -502;
    buf_consume(&fc->stage, fc->head_len);
    fc->head_sent = true;
    return 0;
}

/* Upstream records in up_in -> stage -> c->out. Returns 0, or a negated status. */
static int pump_response(struct fcgi *fc)
{
    struct conn *c = fc->c;
    size_t off = 0;
    while (off < fc->up_in.len) {
        if (fc->resp.ended) {
            fc->upstream_eof = true;   /* bytes after the end: never reuse */
            break;
        }
        enum fastcgi_event ev;
        const char *d;
        size_t dl;
        int r = fastcgi_response_parse(&fc->resp, fc->up_in.data + off, fc->up_in.len - off, &ev, &d, &dl);
        if (r < 0)
            return -502;
        off += (size_t)r;
        if (ev == FASTCGI_EVENT_STDOUT && dl > 0) {
            if (fc->head_sent && fc->framing == FR_NONE)
                continue;
            if (buf_append(&fc->stage, d, dl) < 0)
                return -502;   /* a head beyond its limit */
        }
    }
    buf_clear(&fc->up_in);   /* STDOUT was copied out; partial records live in the parser */
    bool ended = fc->resp.ended;
    if (!fc->head_sent) {
        if (fc->head_len == 0) {
            int r = fastcgi_cgi_head_parse(&fc->cgi, fc->stage.data, fc->stage.len, &fc->head);
            if (r < 0)
                return -502;
            if (r == 0)
                return ended || fc->upstream_eof ? -502 : 0;
            fc->head_len = (size_t)r;
            fc->head_base = fc->stage.data;
        }
        if (!ended && fc->stage.len == fc->head_len)
            return fc->upstream_eof ? -502 : 0;   /* wait for body bytes or the end */
        if (send_head(fc) < 0)
            return -502;
    }
    if (fc->stage.len > 0) {
        const char *p = fc->stage.data;
        size_t n = fc->stage.len;
        int r = 0;
        if (fc->framing == FR_LENGTH) {
            n = (size_t)MIN((uint64_t)n, fc->res_left);   /* more than announced: dropped */
            fc->res_left -= n;
        }
        if (fc->framing == FR_CHUNKED)
            r = http1_write_chunk(&c->out, p, n);
        else if (fc->framing != FR_NONE)
            r = buf_append(&c->out, p, n);
        if (r < 0)
            return -502;
        if (fc->framing != FR_NONE)
            c->bytes_sent += n;
        buf_clear(&fc->stage);
    }
    if (ended) {
        if (fc->framing == FR_CHUNKED && http1_write_chunk(&c->out, NULL, 0) < 0)
            return -502;
        if (fc->framing == FR_LENGTH && fc->res_left > 0)
            c->keep_alive = false;   /* shorter than its Content-Length: only a close can say so */
    } else if (fc->upstream_eof) {
        return -502;   /* cut short: the client must see a broken answer, not a short one */
    }
    return 0;
}

/* Reads up to one chunk into b. >0, 0 on EOF, -EAGAIN, or a negative errno. */
/* Whether the client's buffer takes another read (it has a hard maximum that
 * depends on the configured max_head). */
static bool in_room(const struct conn *c)
{
    return c->in.len < HIGH_WATER && c->in.max - c->in.len >= FRONT_READ_CHUNK;
}

static void fc_run(struct fcgi *fc)
{
    struct conn *c = fc->c;
    struct worker *w = c->w;
    bool any_progress = false;
    for (int rounds = 0; rounds < 64; rounds++) {
        bool progress = false;
        int st = pump_request_body(fc);
        if (st < 0) {
            fc_fail(fc, -st, st == -413 || st == -400 ? NULL
                             : st == -503 ? "the worker holds too many request bodies waiting for their end"
                                          : "cannot pass the request body");
            return;
        }
        if (st == 1) {
            /* A chunked body is whole: now php-fpm can have the request. */
            int fd = front_backend_pool_get(fc->b);
            int r;
            if (fd >= 0) {
                fc->ufd = fd;
                fc->reused = true;
                r = up_watch(fc);
            } else {
                r = up_connect(fc);
            }
            if (r < 0) {
                fc_fail(fc, 502, strerror(-r));
                return;
            }
            fc->deadline = w->now_ms + (fc->connected ? c->site->upstream_timeout_ms
                                                      : w->cfg->upstream_connect_timeout_ms);
            continue;
        }
        /* request -> upstream */
        if (fc->connected && fc->up_off < fc->up_out.len) {
            ssize_t n = send(fc->ufd, fc->up_out.data + fc->up_off, fc->up_out.len - fc->up_off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                fc->up_off += (size_t)n;
                progress = true;
                if (fc->up_off == fc->up_out.len && fc->has_body) {
                    buf_clear(&fc->up_out);
                    fc->up_off = 0;
                }
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                if (fc_retry(fc))
                    continue;
                if (!fc->head_sent && fc->up_in.len == 0 && fc->resp.stdout_total == 0) {
                    fc_fail(fc, 502, strerror(errno));
                    return;
                }
                fc->up_off = fc->up_out.len;   /* php-fpm stopped reading; its answer may still come */
                fc->up_broken = true;
            }
        }
        /* client -> us, only while php-fpm keeps up */
        bool want_client_in = !fc->body_read &&
                              (fc->spooling || fc->up_out.len - fc->up_off < HIGH_WATER) &&
                              in_room(c);
        if (want_client_in) {
            ssize_t n = front_conn_read_into(c, &c->in);
            if (n > 0) {
                progress = true;
                if (fc->spooling)
                    fc->deadline = w->now_ms + w->cfg->idle_timeout_ms;
            } else if (n != -EAGAIN) {
                fc_release(fc, false);   /* the client left mid-request */
                front_conn_close(c);
                return;
            }
        } else if (fc->body_read && c->readable && in_room(c)) {
            /* Only when epoll said so: pipelined requests (kept in `in`), or the
             * client's close while the script runs, which closing the upstream
             * connection passes on to php-fpm (it ends the script). */
            ssize_t n = front_conn_read_into(c, &c->in);
            if (n == -EAGAIN || (n > 0 && n < FRONT_READ_CHUNK))
                c->readable = false;
            else if (n <= 0) {
                fc_release(fc, false);
                front_conn_close(c);
                return;
            }
        }
        /* upstream -> us, only while the client keeps up. Everything php-fpm has
         * sent is read before it is passed on: when the end is among it, the
         * client gets one Content-Length answer instead of chunks. */
        bool retry = false;
        while (fc->connected && fc->up_readable && !fc->upstream_eof &&
               c->out.len - c->out_off < HIGH_WATER && fc->up_in.len < HIGH_WATER) {
            ssize_t n = front_read_into(fc->ufd, &fc->up_in);
            if (n > 0) {
                progress = true;
                if (n < FRONT_READ_CHUNK)
                    fc->up_readable = false;   /* drained: epoll says when there is more */
            } else if (n == -EAGAIN) {
                fc->up_readable = false;
            } else {
                retry = fc_retry(fc);
                if (!retry) {
                    fc->upstream_eof = true;
                    progress = true;
                }
                break;
            }
        }
        if (retry)
            continue;
        if (fc->up_in.len > 0 || fc->upstream_eof) {
            st = pump_response(fc);
            if (st < 0) {
                fc_fail(fc, -st, "closed the connection or broke the protocol");
                return;
            }
        }
        /* us -> client */
        if (c->out_off < c->out.len) {
            size_t before = c->out_off;
            int r = front_conn_flush(c);
            if (r < 0) {
                fc_release(fc, false);
                front_conn_close(c);
                return;
            }
            if (c->out_off != before || r == 1)
                progress = true;
        }
        if (fc->resp.ended && fc->head_sent) {
            fc_finish(fc);
            return;
        }
        if (!progress)
            break;
        any_progress = true;
    }
    /* The deadline counts silence: any movement either way restarts it. */
    if (any_progress && fc->connected)
        fc->deadline = w->now_ms + c->site->upstream_timeout_ms;
    /* Arm exactly the events we wait for. */
    uint32_t cev = 0;
    if (c->out_off < c->out.len)
        cev |= EPOLLOUT;
    if (!fc->body_read && (fc->spooling || fc->up_out.len - fc->up_off < HIGH_WATER) && in_room(c))
        cev |= EPOLLIN;
    else if (fc->body_read && in_room(c))
        cev |= EPOLLIN;
    front_conn_want(c, cev);
    if (fc->connected) {
        uint32_t uev = 0;
        if (fc->up_off < fc->up_out.len)
            uev |= EPOLLOUT;
        if (!fc->upstream_eof && !fc->resp.ended && c->out.len - c->out_off < HIGH_WATER)
            uev |= EPOLLIN;
        evloop_mod(w->loop, fc->ufd, uev);
    }
}

static void up_io(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct fcgi *fc = data;
    fc->c->w->now_ms = now_ms();
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
        fc->up_readable = true;
    fc_run(fc);
}

void front_fcgi_client_event(struct conn *c, uint32_t events)
{
    struct fcgi *fc = c->fc;
    if (!fc)
        return;
    if (fc->body_read && (events & (EPOLLHUP | EPOLLERR))) {
        /* The client hung up while the script runs: closing the upstream
         * connection makes php-fpm end the script. */
        fc_release(fc, false);
        front_conn_close(c);
        return;
    }
    fc_run(fc);
}

void front_fcgi_timeout(struct conn *c)
{
    struct fcgi *fc = c->fc;
    struct worker *w = c->w;
    if (!fc)
        return;
    if (fc->connect_retry) {
        int r = up_connect(fc);
        if (r < 0) {
            fc_fail(fc, 502, strerror(-r));
            return;
        }
        if (fc->connected) {
            fc_run(fc);
            return;
        }
    }
    if (fc->deadline > w->now_ms)
        return;
    if (fc->spooling) {
        fc_fail(fc, 408, NULL);
        return;
    }
    fc_fail(fc, 504, fc->connected ? "timed out waiting for the script" : "timed out connecting");
}
