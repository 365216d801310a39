/* Client connections: accept, read and parse request heads, route by Host, write
 * the answers in order, keep-alive, pipelining, timeouts, access log lines.
 *
 * Buffers belong to the connection and are reused for each request on it (and
 * for later connections through a free list), so the hot path allocates nothing. */
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include "common/log.h"
#include "front/front-worker.h"

#define IN_EXTRA (16 * 1024)       /* room past max_head for pipelined requests */
#define OUT_MAX (512 * 1024)
#define PIPELINE_BATCH (64 * 1024) /* answers gathered before one write */
#define LINGER_MS 2000
#define FREE_CONNS_MAX 1024
#define ACCEPT_BATCH 64

static const char busy_page[] =
    "HTTP/1.1 503 Service Unavailable\r\nServer: berth\r\nContent-Type: text/html; charset=utf-8\r\n"
    "Content-Length: 111\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>"
    "<body><h1>503 Service Unavailable</h1></body></html>";

static void conn_io(struct evloop *loop, int fd, uint32_t events, void *data);

/* Lets go of the file being sent: ours to close, or the open-file cache's. */
static void file_done(struct conn *c)
{
    if (c->file_cf) {
        front_cached_file_unref(c->file_cf);
        c->file_cf = NULL;
        c->file_fd = -1;
    } else {
        c->file_fd = safe_close(c->file_fd);
    }
    c->file_yielded = false;
    c->file_left = 0;   /* what was not sent of it never will be from this file */
}

void front_conn_want(struct conn *c, uint32_t events)
{
    evloop_mod(c->w->loop, c->fd, events);
}

static uint16_t addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t n)
{
    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)n);
    } else if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        /* A v4 client on a dual-stack socket is counted and logged as v4. */
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], out, (socklen_t)n);
        else
            inet_ntop(AF_INET6, a, out, (socklen_t)n);
    } else {
        snprintf(out, n, "unix");
    }
}

static struct conn *conn_alloc(struct worker *w)
{
    struct conn *c = w->free_conns;
    if (c) {
        w->free_conns = c->next;
        return c;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->in = BUF_INIT(w->cfg->max_head + IN_EXTRA);
    c->out = BUF_INIT(OUT_MAX);
    c->logline = BUF_INIT(64 * 1024);
    return c;
}

static void refuse(int fd, bool tls)
{
    /* An HTTPS client would take the page for a broken handshake: just close. */
    if (!tls)
        (void)!send(fd, busy_page, sizeof(busy_page) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
}

static bool c_tcp(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET || ss->ss_family == AF_INET6;
}

/* Makes the connection for fd of client cl (whose count it takes one of); NULL
 * (fd closed) when it cannot. */
static struct conn *conn_setup(struct worker *w, int fd, struct client *cl, bool tcp, uint16_t remote_port,
                               uint16_t local_port, bool tls, const struct front_handoff *h)
{
    cl->conns++;
    struct conn *c = conn_alloc(w);
    if (!c) {
        if (--cl->conns == 0) {
            front_map_del(&w->clients, cl->addr, strlen(cl->addr), cl);
            free(cl);
        }
        close(fd);
        return NULL;
    }
    /* A connection from the free list starts from nothing but its buffers: a field
     * the last one left behind (a file it was sending when its client went) must
     * never leak into this one's answers. */
    struct buf in = c->in, out = c->out, logline = c->logline;
    uint32_t gen = c->gen + 1;
    *c = (struct conn){
        .gen = gen,
        .w = w,
        .fd = fd,
        .state = CS_HEAD,
        .client = cl,
        .tcp = tcp,
        .remote_port = remote_port,
        .local_port = local_port,
        .in = in,
        .out = out,
        .logline = logline,
        .file_fd = -1,
        .keep_alive = true,
        .readable = true,   /* most clients send the request right after connecting */
        .upstream_ms = -1,
    };
    if (c->tcp) {
        int one = 1;
        /* Answers go out in one write; never hold them back for Nagle. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    buf_clear(&c->in);
    buf_clear(&c->out);
    http1_parser_init(&c->parser, &w->limits);
    /* A fresh connection gets the head timeout at once (one that never sends is
     * dropped as slowloris). One handed over keeps the deadline it had: a move
     * never extends it (nor, from a bad message, past the idle timeout). */
    c->deadline = w->now_ms + w->cfg->header_timeout_ms;
    if (h)
        c->deadline = MIN(MAX(h->deadline_ms, w->now_ms), w->now_ms + w->cfg->idle_timeout_ms);
    c->cpu_checked_s = w->now_s;   /* placed just now: no need to look at once */
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    if ((tls && front_tls_start(c) < 0) || evloop_add(w->loop, fd, EPOLLIN, conn_io, c) < 0) {
        front_conn_close(c);
        return NULL;
    }
    front_spread_set_conns(w->spread, w->index, w->n_conns);
    return c;
}


/* Takes a client socket: limits first (a 503 and close beyond them), then a
 * connection waiting for its request. ss is the client's address; local_port the
 * port it came in on; h what the worker that handed it over said of it (NULL: we
 * accepted it). A connection another worker admitted already is not refused:
 * the client may be between two requests on it. */
static void conn_adopt(struct worker *w, int fd, const struct sockaddr_storage *ss, uint16_t local_port,
                       bool tls, const struct front_handoff *h)
{
    char addr[INET6_ADDRSTRLEN];
    format_addr(ss, addr, sizeof(addr));
    bool admitted = h && h->admitted;
    if (!admitted && w->n_conns >= w->cfg->max_conns_per_worker) {
        refuse(fd, tls);
        return;
    }
    struct client *cl = front_map_get(&w->clients, addr, strlen(addr));
    if (!admitted && cl && cl->conns >= w->cfg->max_conns_per_client) {
        refuse(fd, tls);
        return;
    }
    if (!cl) {
        cl = calloc(1, sizeof(*cl));
        if (!cl) {
            close(fd);
            return;
        }
        memcpy(cl->addr, addr, sizeof(addr));
        if (front_map_put(&w->clients, cl->addr, strlen(cl->addr), cl, NULL) < 0) {
            free(cl);
            close(fd);
            return;
        }
    }
    conn_setup(w, fd, cl, c_tcp(ss), addr_port(ss), local_port, tls, h);
}

/* A connection that serves one HTTP/2 stream's request: the relay socket pair is
 * a unix socket, but the client is parent's. Its own copy of the client's record
 * (outside the map) keeps the streams of one h2 connection out of the client's
 * connection count. */
int front_conn_adopt_stream(struct worker *w, int fd, const struct conn *parent, struct conn **ret)
{
    struct client *cl = calloc(1, sizeof(*cl));
    if (!cl) {
        close(fd);
        return -ENOMEM;
    }
    memcpy(cl->addr, parent->client->addr, sizeof(cl->addr));
    struct conn *c = conn_setup(w, fd, cl, false, parent->remote_port, parent->local_port, false, NULL);
    if (!c)
        return -ENOMEM;
    c->h2 = true;
    *ret = c;
    return 0;
}

static uint16_t local_port_of(int fd)
{
    struct sockaddr_storage ls;
    socklen_t lsl = sizeof(ls);
    return getsockname(fd, (struct sockaddr *)&ls, &lsl) == 0 ? addr_port(&ls) : 0;
}

/* Whether lfd, one of the listening sockets of some worker, speaks TLS. */
static bool listener_tls(const struct worker *w, int lfd)
{
    const struct front_spread *s = w->spread;
    for (size_t l = 0; l < s->n_listen && l < 64; l++)
        for (unsigned j = 0; j < s->n_workers; j++)
            if (front_spread_socket(s, l, j) == lfd)
                return (w->cfg->tls_listeners >> l) & 1;
    return false;
}

void front_conn_accept(struct worker *w, int lfd)
{
    /* The listener's port, for SERVER_PORT, and whether it is HTTPS: asked once
     * per batch, not per request. */
    uint16_t local_port = local_port_of(lfd);
    bool tls = w->cfg->tls_listeners && listener_tls(w, lfd);
    /* A bounded batch per wakeup keeps one busy listener from starving the rest. */
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                log_warning("front worker: accept: %m");
            return;
        }
        /* Found serving clearly more than another worker on the last tick: that
         * one takes new connections until they are even (spread.c). */
        if (w->evening_out) {
            int to = front_spread_pick(w->spread, w->index, NULL);
            struct front_handoff h = { .admitted = false, .tls = tls,
                                       .deadline_ms = w->now_ms + w->cfg->header_timeout_ms };
            if (to >= 0 && front_spread_handoff(w->spread, (unsigned)to, fd, &h) == 0) {
                close(fd);
                continue;
            }
            w->evening_out = to >= 0;
        }
        conn_adopt(w, fd, &ss, local_port, tls, NULL);
    }
}

/* Between requests, with nothing read ahead and nothing left to write: another
 * worker can take the socket as if it had just accepted it. Not a TLS session:
 * its state lives in this process. */
static bool conn_idle(const struct conn *c)
{
    return !c->tls && !c->h2 && c->state == CS_HEAD && c->in.len == 0 && !c->head_started && c->out.len == c->out_off &&
           c->file_fd < 0 && !c->px && !c->fc && !c->site && !c->linger;
}

/* The CPU that last took a packet of the connection; -1 when unknown. */
static int conn_incoming_cpu(const struct conn *c)
{
    int cpu = -1;
    socklen_t l = sizeof(cpu);
    return getsockopt(c->fd, SOL_SOCKET, SO_INCOMING_CPU, &cpu, &l) < 0 ? -1 : cpu;
}

/* Passes an idle connection to worker `to`; false (the connection stays) when its
 * inbox would not take it. */
static bool conn_hand_over(struct conn *c, unsigned to)
{
    struct front_handoff h = { .admitted = true, .deadline_ms = c->deadline };
    if (front_spread_handoff(c->w->spread, to, c->fd, &h) < 0)
        return false;
    front_conn_close(c);   /* our copy only: the socket lives on in the other worker */
    return true;
}

/* Idle connections looked at for their CPU per tick: a bound on the syscalls
 * however many connections a worker holds. */
#define CPU_CHECKS_PER_TICK 32

static void even_out(struct worker *w)
{
    int to = front_spread_pick(w->spread, w->index, NULL);
    w->evening_out = to >= 0;
    /* With connections steered by CPU, first the ones whose packets now arrive on
     * the target's CPU: moving those puts them where they belong. The target is
     * chosen again for each move, from counts that include what every worker has
     * just sent: two workers evening out at once do not overshoot. */
    unsigned checks = 0;
    for (int pass = w->spread->steered ? 0 : 1; pass < 2 && to >= 0; pass++) {
        struct conn *next;
        for (struct conn *c = w->conns; c && to >= 0; c = next) {
            next = c->next;
            if (!conn_idle(c))
                continue;
            if (pass == 0 && (checks++ >= CPU_CHECKS_PER_TICK || conn_incoming_cpu(c) != w->spread->cpus[to]))
                continue;
            if (!conn_hand_over(c, (unsigned)to))
                return;
            to = front_spread_pick(w->spread, w->index, NULL);
        }
    }
}

/* A client whose packets now arrive on another CPU (its thread moved; the NIC
 * queue's interrupt was moved) is served best by that CPU's worker. Each idle
 * connection is looked at every second, or less often when there are more than
 * the checks per tick can cover. */
static void follow_cpus(struct worker *w)
{
    if (!w->spread->steered)
        return;
    int64_t every_s = 1 + (int64_t)(w->n_conns / (CPU_CHECKS_PER_TICK * (1000 / TICK_MS)));
    unsigned checks = 0;
    struct conn *next;
    for (struct conn *c = w->conns; c && checks < CPU_CHECKS_PER_TICK; c = next) {
        next = c->next;
        if (!conn_idle(c) || w->now_s - c->cpu_checked_s < every_s)
            continue;
        c->cpu_checked_s = w->now_s;
        checks++;
        int to = front_spread_worker_on_cpu(w->spread, conn_incoming_cpu(c));
        if (to >= 0 && front_spread_may_move(w->spread, w->index, (unsigned)to))
            (void)conn_hand_over(c, (unsigned)to);
    }
}

void front_conn_rebalance(struct worker *w)
{
    even_out(w);
    follow_cpus(w);
}

void front_conn_adopt(struct worker *w, int fd, const struct front_handoff *h)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
        close(fd);   /* gone already */
        return;
    }
    conn_adopt(w, fd, &ss, local_port_of(fd), h->tls, h);
}

bool front_conn_upstream_failed(struct conn *c, int status, bool answer_started)
{
    /* Only the backend's own failures count towards restarting it (the runtime
     * restarts a site whose requests all fail): a client's bad body (400, 413,
     * 408) or a limit of ours must not let anyone restart a site at will. */
    c->upstream_failed = status == 502 || status == 504;
    if (answer_started) {
        front_conn_close(c);
        return false;
    }
    c->keep_alive = false;
    c->linger = true;
    front_conn_error(c, status, NULL);
    return true;
}

void front_conn_close(struct conn *c)
{
    struct worker *w = c->w;
    if (c->fd < 0)
        return;   /* closed already: a second close would corrupt the lists and counts */
    if (c->px)
        front_proxy_free(c);
    if (c->fc)
        front_fcgi_free(c);
    if (c->h2s)
        front_h2_free(c);
    if (c->h2_peer) {
        front_h2_stream_unlink(c->h2_peer);
        c->h2_peer = NULL;
    }
    if (c->tls) {
        front_tls_close_notify(c);
        front_tls_free(c);
    }
    evloop_del(w->loop, c->fd);
    evloop_defer_cancel(&c->send_turn);
    safe_close(c->fd);
    c->fd = -1;
    file_done(c);
    /* A request still holding its site here ended by closing (a WebSocket tunnel,
     * a backend failing mid-answer): it was answered all the same. */
    front_activity_count(w, c);
    front_vsite_unref(c->site);
    c->site = NULL;
    if (c->client && --c->client->conns == 0) {
        front_map_del(&w->clients, c->client->addr, strlen(c->client->addr), c->client);
        free(c->client);
    }
    c->client = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->n_conns--;
    front_spread_set_conns(w->spread, w->index, w->n_conns);
    c->next = w->free_conns;
    w->free_conns = c;
}

/* ---- answers ---- */

static int out_lit(struct conn *c, const char *s, size_t n)
{
    return buf_append(&c->out, s, n);
}
#define OUT_LIT(c, s) out_lit((c), (s), sizeof(s) - 1)

/* Decimal v at p; returns the length. */
static size_t put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/* Milliseconds as seconds with three decimals ("1.042") at p; returns the length. */
static size_t put_ms(char *p, uint64_t ms)
{
    size_t n = put_u64(p, ms / 1000);
    p[n++] = '.';
    p[n++] = (char)('0' + ms % 1000 / 100);
    p[n++] = (char)('0' + ms % 100 / 10);
    p[n++] = (char)('0' + ms % 10);
    return n;
}

int front_conn_head_begin(struct conn *c, int status)
{
    struct worker *w = c->w;
    /* Built by hand in one piece (no snprintf): every answer starts here. */
    char line[160];
    c->status = status;
    const char *reason = http_status_reason(status);
    size_t rlen = MIN(strlen(reason), (size_t)64), dlen = MIN(strlen(w->date), sizeof(w->date));
    size_t n = 0;
    memcpy(line, "HTTP/1.1 ", 9);
    n = 9;
    n += put_u64(line + n, (uint64_t)(status < 0 ? 0 : status % 1000));
    line[n++] = ' ';
    memcpy(line + n, reason, rlen);
    n += rlen;
    memcpy(line + n, "\r\nServer: berth\r\nDate: ", 23);
    n += 23;
    memcpy(line + n, w->date, dlen);
    n += dlen;
    memcpy(line + n, "\r\n", 2);
    n += 2;
    int r = out_lit(c, line, n);
    if (r >= 0 && !c->keep_alive)
        r = OUT_LIT(c, "Connection: close\r\n");
    else if (r >= 0 && c->req.minor_version == 0)
        r = OUT_LIT(c, "Connection: keep-alive\r\n");
    return r;
}

int front_conn_header(struct conn *c, const char *name, const char *value, size_t vlen)
{
    int r = buf_append_str(&c->out, name);
    if (r >= 0)
        r = OUT_LIT(c, ": ");
    if (r >= 0)
        r = out_lit(c, value, vlen);
    if (r >= 0)
        r = OUT_LIT(c, "\r\n");
    return r;
}

int front_conn_error(struct conn *c, int status, const char *extra_headers)
{
    char body[512];
    const char *reason = http_status_reason(status);
    int blen = snprintf(body, sizeof(body),
                        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%d %s</title></head>"
                        "<body><h1>%d %s</h1><p>berth</p></body></html>\n",
                        status, reason, status, reason);
    int r = front_conn_head_begin(c, status);
    if (r >= 0)
        r = buf_printf(&c->out, "Content-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n%s\r\n",
                       blen, extra_headers ? extra_headers : "");
    if (r >= 0 && c->req.method != HTTP_HEAD) {
        r = out_lit(c, body, (size_t)blen);
        c->bytes_sent = (uint64_t)blen;
    }
    c->state = CS_RESPOND;
    return r;
}

void front_conn_log_error(struct conn *c, const char *fmt, ...)
{
    char msg[1024], line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct front_log *log = c->site ? c->site->error_log : NULL;
    if (!log) {
        log_warning("front: %s: %s", c->site ? c->site->name : "-", msg);
        return;
    }
    int n = snprintf(line, sizeof(line), "%s [error] %d: client %s: ", c->w->log_time, (int)getpid(),
                     c->client ? c->client->addr : "-");
    /* msg carries what clients and scripts chose (a path, PHP's stderr): control
     * bytes as \xNN, so that it cannot forge lines, nor send escape sequences to the
     * terminal of whoever reads the log. */
    size_t k = MIN((size_t)n, sizeof(line) - 1);
    static const char hex[] = "0123456789abcdef";
    for (const char *p = msg; *p && k + 5 < sizeof(line); p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x20 || ch == 0x7f) {
            line[k++] = '\\';
            line[k++] = 'x';
            line[k++] = hex[ch >> 4];
            line[k++] = hex[ch & 15];
        } else {
            line[k++] = (char)ch;
        }
    }
    line[k++] = '\n';
    front_log_append(log, line, k);
}

/* ---- access log ---- */

/* Copies what the log line needs from the request now: the request's bytes may
 * move (a proxied body is read into the same buffer) before the line is written. */
static void log_prepare(struct conn *c, bool parsed)
{
    struct buf *b = &c->logline;
    buf_clear(b);
    if (!c->log)
        return;
    buf_append_str(b, c->client->addr);
    buf_append(b, " - - ", 5);
    buf_append_str(b, c->w->log_time);
    buf_append(b, " \"", 2);
    if (parsed) {
        front_log_escape(b, c->req.method_str, c->req.method_len);
        buf_append_char(b, ' ');
        front_log_escape(b, c->req.target, c->req.target_len);
        buf_append_str(b, c->h2 ? " HTTP/2.0\" " : c->req.minor_version ? " HTTP/1.1\" " : " HTTP/1.0\" ");
    } else {
        buf_append(b, "-\" ", 3);
    }
    c->log_split = b->len;
    const struct http1_header *ref = parsed ? http1_find_header(c->req.headers, c->req.n_headers, "referer") : NULL;
    const struct http1_header *ua = parsed ? http1_find_header(c->req.headers, c->req.n_headers, "user-agent") : NULL;
    buf_append(b, " \"", 2);
    front_log_escape(b, ref ? ref->value : "-", ref ? ref->value_len : 1);
    buf_append(b, "\" \"", 3);
    front_log_escape(b, ua ? ua->value : "-", ua ? ua->value_len : 1);
    buf_append_char(b, '"');
}

static void log_write(struct conn *c)
{
    struct buf *b = &c->logline;
    if (!c->log || b->len == 0)
        return;
    char mid[64], tail[64];
    uint64_t rt = c->w->now_ms - c->req_start_ms;
    /* Numbers by hand (no snprintf): this runs for every request. */
    size_t m = put_u64(mid, (uint64_t)(c->status < 0 ? 0 : c->status));
    mid[m++] = ' ';
    m += put_u64(mid + m, c->bytes_sent);
    size_t t = 0;
    tail[t++] = ' ';
    t += put_ms(tail + t, rt);
    tail[t++] = ' ';
    if (c->upstream_ms >= 0) {
        t += put_ms(tail + t, (uint64_t)c->upstream_ms);
    } else {
        tail[t++] = '-';
    }
    tail[t++] = '\n';
    /* One append of the whole line, so a flush never splits it. */
    char line[4096];
    size_t need = b->len + (size_t)m + (size_t)t;
    if (need <= sizeof(line)) {
        memcpy(line, b->data, c->log_split);
        memcpy(line + c->log_split, mid, (size_t)m);
        memcpy(line + c->log_split + m, b->data + c->log_split, b->len - c->log_split);
        memcpy(line + b->len + m, tail, (size_t)t);
        front_log_append(c->log, line, need);
    } else {
        /* Long lines (long targets) are rare: build them in the log buffer's place. */
        if (buf_append(b, tail, (size_t)t) < 0 || buf_reserve(b, (size_t)m) < 0)
            return;
        memmove(b->data + c->log_split + m, b->data + c->log_split, b->len - c->log_split);
        memcpy(b->data + c->log_split, mid, (size_t)m);
        b->len += (size_t)m;
        front_log_append(c->log, b->data, b->len);
    }
    buf_clear(b);
}

/* ---- the request cycle ---- */

static void start_linger(struct conn *c)
{
    front_tls_close_notify(c);
    shutdown(c->fd, SHUT_WR);
    c->state = CS_LINGER;
    c->deadline = c->w->now_ms + LINGER_MS;
    front_conn_want(c, EPOLLIN);
}

void front_conn_linger(struct conn *c)
{
    if (c->tcp)
        start_linger(c);
    else
        front_conn_close(c);
}

void front_conn_request_done(struct conn *c)
{
    log_write(c);
    front_activity_count(c->w, c);
    c->log = NULL;
    front_vsite_unref(c->site);
    c->site = NULL;
    file_done(c);
    if (!c->keep_alive) {
        c->state = CS_RESPOND;   /* the caller flushes, then closes */
        return;
    }
    buf_consume(&c->in, MIN(c->consumed, c->in.len));
    c->consumed = 0;
    c->head_len = 0;
    c->state = CS_HEAD;
    c->status = 0;
    c->bytes_sent = 0;
    c->req.method = HTTP_METHOD_OTHER;
    c->req.minor_version = 1;
    http1_parser_init(&c->parser, &c->w->limits);
    c->head_started = c->in.len > 0;
    c->deadline = c->w->now_ms + (c->head_started ? c->w->cfg->header_timeout_ms : c->w->cfg->idle_timeout_ms);
}

/* An ACME server checking a challenge berthd published: answered for any host,
 * before the site's own files or backend. false when the request is not for one. */
static bool answer_challenge(struct conn *c)
{
    const struct http1_request *req = &c->req;
    size_t plen = sizeof(FRONT_CHALLENGE_PREFIX) - 1;
    if ((req->method != HTTP_GET && req->method != HTTP_HEAD) || req->path_len <= plen ||
        memcmp(req->path, FRONT_CHALLENGE_PREFIX, plen) != 0)
        return false;
    const char *token = req->path + plen;
    const char *end = memchr(token, '?', req->path_len - plen);
    size_t tlen = end ? (size_t)(end - token) : req->path_len - plen;
    const char *entry = front_map_get(&c->w->challenges, token, tlen);
    if (!entry)
        return false;
    const char *key_auth = entry + tlen + 1;
    size_t klen = strlen(key_auth);
    char len[24];
    int r = front_conn_head_begin(c, 200);
    if (r >= 0)
        r = OUT_LIT(c, "Content-Type: text/plain\r\nCache-Control: no-store\r\n");
    if (r >= 0)
        r = front_conn_header(c, "Content-Length", len, put_u64(len, klen));
    if (r >= 0)
        r = OUT_LIT(c, "\r\n");
    if (r >= 0 && req->method != HTTP_HEAD) {
        r = out_lit(c, key_auth, klen);
        c->bytes_sent = klen;
    }
    c->state = CS_RESPOND;
    if (r < 0)
        front_conn_close(c);
    return true;
}

/* 308 (the method and body are kept) to the same target over HTTPS, on the
 * front's first HTTPS port. false when the answer cannot be built (then the
 * request is served over HTTP as it came). */
static bool redirect_to_https(struct conn *c, const char *host, size_t host_len)
{
    const struct http1_request *req = &c->req;
    if (req->path_len == 0 || req->path[0] != '/')
        return false;   /* OPTIONS *: nothing to redirect to */
    size_t size = sizeof("Location: https://:65535\r\n") + host_len + req->path_len;
    char *loc = malloc(size);
    if (!loc)
        return false;
    int n = c->w->https_port == 443
                ? snprintf(loc, size, "Location: https://%.*s%.*s\r\n", (int)host_len, host, (int)req->path_len,
                           req->path)
                : snprintf(loc, size, "Location: https://%.*s:%u%.*s\r\n", (int)host_len, host,
                           (unsigned)c->w->https_port, (int)req->path_len, req->path);
    bool ok = n > 0 && (size_t)n < size;
    if (ok && front_conn_error(c, 308, loc) < 0)
        front_conn_close(c);
    free(loc);
    return ok;
}

static void dispatch(struct conn *c)
{
    struct worker *w = c->w;
    struct http1_request *req = &c->req;
    c->req_start_ms = w->now_ms;
    c->consumed = c->head_len;
    c->keep_alive = req->keep_alive;
    c->status = 0;
    c->bytes_sent = 0;
    c->upstream_ms = -1;
    c->upstream_failed = false;

    char host[FRONT_HOST_MAX + 3];
    size_t host_len = 0;
    struct vsite *site = NULL;
    bool bad_host = false;
    if (req->host) {
        if (front_host_normalize(req->host, req->host_len, host, &host_len) < 0)
            bad_host = true;
        else
            site = front_map_get(&w->hosts, host, host_len);
    }
    c->site = front_vsite_ref(site);
    c->log = site ? site->access_log : w->global_log;
    log_prepare(c, true);

    /* Only the proxy and the FastCGI client read request bodies, and only once they
     * have taken the request (front_conn_body_taken): any answer before that (an
     * unknown site, a refused path, a limit) closes the connection after a
     * lingering drain rather than guess where the next request starts. */
    if (req->body == HTTP1_BODY_CHUNKED || (req->body == HTTP1_BODY_LENGTH && req->content_length > 0) ||
        req->upgrade) {
        c->keep_alive = false;
        c->linger = true;
    }
    if (bad_host) {
        c->keep_alive = false;
        front_conn_error(c, 400, NULL);
        return;
    }
    if (w->challenges.len > 0 && answer_challenge(c))
        return;
    if (!site) {
        front_conn_error(c, 404, NULL);
        return;
    }
    if (site->state != FRONT_SITE_SERVING) {
        front_conn_error(c, 503, NULL);
        return;
    }
    if (site->https_redirect && !front_conn_https(c) && w->https_port && redirect_to_https(c, host, host_len))
        return;
    if (req->method == HTTP_CONNECT) {
        /* berth is not a forward proxy, and no backend is asked to be one. What
         * follows would be tunnel bytes: the connection closes. */
        c->keep_alive = false;
        c->linger = true;
        front_conn_error(c, 405, NULL);
        return;
    }
    if (site->type == FRONT_SITE_APP) {
        front_proxy_start(c);
        return;
    }
    if (req->path_len == 0 || req->path[0] != '/') {
        /* asterisk-form (OPTIONS *): not for files. */
        front_conn_error(c, req->method == HTTP_OPTIONS ? 200 : 405, "Allow: GET, HEAD\r\n");
        return;
    }
    const char *q = memchr(req->path, '?', req->path_len);
    size_t plen = q ? (size_t)(q - req->path) : req->path_len;
    front_static_handle(c, req->path, plen, q ? q : req->path + plen, q ? req->path_len - plen : 0);
}

void front_conn_body_taken(struct conn *c)
{
    c->keep_alive = c->req.keep_alive;
    c->linger = false;
}

/* Sets up the answer to a request that never parsed (malformed, or its head
 * timed out): logged in the global log, and the connection closes after it. */
static void begin_unparsed_answer(struct conn *c)
{
    c->keep_alive = false;
    c->linger = true;
    c->req.method = HTTP_METHOD_OTHER;
    c->req_start_ms = c->w->now_ms;
    c->log = c->w->global_log;
    c->upstream_ms = -1;
    c->upstream_failed = false;
    log_prepare(c, false);
}

/* Reads what the socket has. >0 bytes, 0 EOF, negative errno (-EAGAIN). */
static ssize_t read_more(struct conn *c)
{
    if (c->in.cap - c->in.len < 2048) {
        int r = buf_reserve(&c->in, MAX(c->in.cap, (size_t)4096));
        if (r < 0 && c->in.cap == c->in.len)
            return r;
    }
    /* A short read drained the socket: skip the read that would only say EAGAIN
     * and wait for epoll (level-triggered) to say there is more. */
    if (!c->readable)
        return -EAGAIN;
    size_t space = c->in.cap - c->in.len;
    ssize_t n;
    if (c->tls) {
        /* A short read says nothing here (one record at a time): read until the
         * session wants more from the socket. */
        n = front_tls_read(c, c->in.data + c->in.len, space);
        if (n == -EAGAIN)
            c->readable = false;
        if (n < 0)
            return n;
    } else {
        n = read(c->fd, c->in.data + c->in.len, space);
        if (n < 0) {
            if (errno == EAGAIN)
                c->readable = false;
            return errno == EINTR || errno == EAGAIN ? -EAGAIN : -errno;
        }
        if ((size_t)n < space && n > 0)
            c->readable = false;
    }
    c->in.len += (size_t)n;
    c->in.data[c->in.len] = 0;
    return n;
}

ssize_t front_conn_read_into(struct conn *c, struct buf *b)
{
    if (!c->tls)
        return front_read_into(c->fd, b);
    if (buf_reserve(b, FRONT_READ_CHUNK) < 0)
        return -ENOBUFS;
    ssize_t n = front_tls_read(c, b->data + b->len, FRONT_READ_CHUNK);
    if (n > 0) {
        b->len += (size_t)n;
        b->data[b->len] = 0;
    }
    return n;
}

/* Writes what out holds from out_off: 1 all of it, 0 the socket is full (EPOLLOUT
 * armed), negative errno. */
static int flush_out(struct conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n;
        if (c->tls) {
            n = front_tls_write(c, c->out.data + c->out_off, c->out.len - c->out_off);
        } else {
            n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                     MSG_NOSIGNAL | (c->file_left > 0 ? MSG_MORE : 0));
            if (n < 0)
                n = errno == EINTR ? 0 : -errno;
        }
        if (n == -EAGAIN) {
            /* A client that never quite drains (a proxied answer streaming to a
             * slow reader) would otherwise grow out to its maximum, out_off
             * creeping behind: what went out is dropped. Only on a full socket,
             * never for the usual answer that leaves in one write. */
            if (c->out_off >= PIPELINE_BATCH) {
                buf_consume(&c->out, c->out_off);
                c->out_off = 0;
            }
            front_conn_want(c, EPOLLOUT);
            c->deadline = c->w->now_ms + c->w->cfg->idle_timeout_ms;
            return 0;
        }
        if (n < 0)
            return (int)n;
        c->out_off += (size_t)n;
    }
    buf_clear(&c->out);
    c->out_off = 0;
    return 1;
}

/* Through TLS a file's bytes go from memory: a piece at a time is read into out
 * behind the head (so they leave in the same records), which the session may have
 * to write again, unchanged, after EAGAIN. */
#define TLS_FILE_CHUNK (64 * 1024)

static int flush_tls(struct conn *c)
{
    /* A file, or a large body from a backend: records gathered into few sends. */
    if (c->file_left > TLS_FILE_CHUNK / 4 || c->out.len - c->out_off > TLS_FILE_CHUNK / 4)
        front_tls_gather(c, true);
    for (;;) {
        size_t pending = c->out.len - c->out_off;
        if (c->file_left > 0 && pending < TLS_FILE_CHUNK) {
            size_t want = (size_t)MIN(c->file_left, (uint64_t)(TLS_FILE_CHUNK - pending));
            int r = buf_reserve(&c->out, want);
            if (r < 0)
                return r;
            ssize_t n = pread(c->file_fd, c->out.data + c->out.len, want, (off_t)c->file_off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return -errno;
            if (n == 0)
                return -EIO;   /* the file shrank under us: the length we sent is a lie now */
            c->out.len += (size_t)n;
            c->file_off += (uint64_t)n;
            c->file_left -= (uint64_t)n;
        }
        int r = flush_out(c);
        if (r <= 0)
            return r;
        if (c->file_left == 0)
            break;
    }
    file_done(c);
    /* The last records may still sit in the session's gathering buffer. */
    int r = front_tls_flush(c);
    if (r == 0) {
        front_conn_want(c, EPOLLOUT);
        c->deadline = c->w->now_ms + c->w->cfg->idle_timeout_ms;
    } else if (r > 0) {
        front_tls_gather(c, false);
    }
    return r;
}

/* A file's first 64 KiB (one full TCP segment on loopback, where GSO allows 64
 * KiB) go alone in its first turn of the worker's loop; then the file yields to the
 * other ready connections, and goes on up to 1 MiB per turn (as nginx's
 * sendfile_max_chunk): one big download does not hold up the rest. Measured under
 * BBR (bench/RESULTS.md): a 100 KiB answer sent in one call makes TCP's pacing arm
 * a timer for its second segment, while by our next turn the pacing delay has
 * passed and it leaves at once: +23% requests/s at half the p99 for 100 KiB, +15%
 * for 1 MiB, against sending each file in one call. */
#define SENDFILE_FIRST_SLICE (64 * 1024)
#define SENDFILE_TURN_MAX (1024 * 1024)

static void send_turn(struct evloop *loop, struct ev_defer *d, void *data)
{
    (void)loop, (void)d;
    struct conn *c = data;
    c->w->now_ms = now_ms();
    front_conn_run(c);
}

int front_conn_flush(struct conn *c)
{
    if (c->tls)
        return flush_tls(c);
    /* An HTTP/2 stream's file: its stream reads it straight into DATA frames. */
    if (c->file_left > 0 && c->h2_peer)
        front_h2_stream_take_file(c->h2_peer, c);
    int r = flush_out(c);
    if (r <= 0)
        return r;
    evloop_defer_cancel(&c->send_turn);   /* an event got here first: this is the turn */
    uint64_t sent = 0;
    while (c->file_left > 0) {
        uint64_t slice = c->file_yielded ? SENDFILE_TURN_MAX : SENDFILE_FIRST_SLICE;
        if (sent >= slice) {
            c->file_yielded = true;
            evloop_defer(c->w->loop, &c->send_turn, send_turn, c);
            c->deadline = c->w->now_ms + c->w->cfg->idle_timeout_ms;
            return 0;
        }
        off_t off = (off_t)c->file_off;
        ssize_t n = sendfile(c->fd, c->file_fd, &off, (size_t)MIN(c->file_left, slice - sent));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                front_conn_want(c, EPOLLOUT);
                c->deadline = c->w->now_ms + c->w->cfg->idle_timeout_ms;
                return 0;
            }
            return -errno;
        }
        if (n == 0)
            return -EIO;   /* the file shrank under us: the length we sent is a lie now */
        c->file_off += (uint64_t)n;
        c->file_left -= (uint64_t)n;
        sent += (uint64_t)n;
    }
    file_done(c);
    return 1;
}

void front_conn_run(struct conn *c)
{
    struct worker *w = c->w;
    for (;;) {
        switch (c->state) {
        case CS_HEAD: {
            if (c->tls && !c->tls_ready) {
                int h = front_tls_handshake(c);
                if (h < 0) {
                    front_conn_close(c);
                    return;
                }
                if (h == 0)
                    return;
                if (front_tls_alpn_h2(c)) {
                    front_h2_start(c);
                    return;
                }
                front_conn_want(c, EPOLLIN);
                c->readable = true;   /* the request may have come with the handshake's end */
                continue;
            }
            int r = http1_parse_request(&c->parser, c->in.data, c->in.len, &c->req);
            if (r > 0) {
                c->head_len = (size_t)r;
                dispatch(c);
                /* A backend that failed at once may have had its answer written,
                 * and a client gone meanwhile closed, under dispatch. */
                if (c->fd < 0)
                    return;
                continue;
            }
            if (r < 0) {
                begin_unparsed_answer(c);
                front_conn_error(c, -r, NULL);
                continue;
            }
            /* Answers gathered from pipelined requests go out before we wait. */
            if (c->out_off < c->out.len) {
                int f = front_conn_flush(c);
                if (f < 0) {
                    front_conn_close(c);
                    return;
                }
                if (f == 0)
                    return;
            }
            ssize_t n = read_more(c);
            if (n == -EAGAIN) {
                front_conn_want(c, EPOLLIN);
                return;
            }
            if (n == -ENOBUFS) {
                /* The parser bounds the head; this is pipelined input we are not
                 * keeping up with. */
                front_conn_close(c);
                return;
            }
            if (n <= 0) {
                front_conn_close(c);
                return;
            }
            if (!c->head_started) {
                c->head_started = true;
                c->deadline = w->now_ms + w->cfg->header_timeout_ms;
            }
            continue;
        }
        case CS_RESPOND: {
            /* Pipelined requests: answer the next one into the same buffer and write
             * them together, always in order. */
            if (c->file_left == 0 && c->keep_alive && c->in.len > c->consumed &&
                c->out.len < PIPELINE_BATCH) {
                front_conn_request_done(c);
                continue;
            }
            int r = front_conn_flush(c);
            if (r == 0)
                return;
            if (r < 0) {
                front_conn_close(c);
                return;
            }
            bool keep = c->keep_alive;
            front_conn_request_done(c);
            if (!keep) {
                if (c->linger && c->tcp)
                    start_linger(c);
                else
                    front_conn_close(c);
                return;
            }
            continue;
        }
        case CS_PROXY:
        case CS_FCGI:
        case CS_H2:
            return;
        case CS_LINGER: {
            char scratch[4096];
            for (;;) {
                ssize_t n = read(c->fd, scratch, sizeof(scratch));
                if (n > 0)
                    continue;
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                    return;
                front_conn_close(c);
                return;
            }
        }
        }
    }
}

void front_conn_poke(struct conn *c)
{
    if (c->fd < 0 || c->state != CS_HEAD)
        return;
    c->readable = true;
    front_conn_run(c);
}

static void conn_io(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct conn *c = data;
    c->w->now_ms = now_ms();
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        c->readable = true;
    if (c->state == CS_PROXY) {
        front_proxy_client_event(c, events);
        return;
    }
    if (c->state == CS_FCGI) {
        front_fcgi_client_event(c, events);
        return;
    }
    if (c->state == CS_H2) {
        front_h2_event(c, events);
        return;
    }
    if ((events & EPOLLERR) && c->state != CS_LINGER) {
        front_conn_close(c);
        return;
    }
    front_conn_run(c);
}

void front_conn_check_timeouts(struct worker *w)
{
    uint64_t now = w->now_ms;
    struct conn *next;
    for (struct conn *c = w->conns; c; c = next) {
        next = c->next;
        if (c->state == CS_PROXY) {
            front_proxy_timeout(c);
            continue;
        }
        if (c->state == CS_FCGI) {
            front_fcgi_timeout(c);
            continue;
        }
        if (c->state == CS_H2) {
            front_h2_timeout(c);
            continue;
        }
        if (c->deadline > now)
            continue;
        if (c->state == CS_HEAD && c->head_started && c->out.len == 0) {
            /* Slowloris: the head did not arrive in time. */
            begin_unparsed_answer(c);
            front_conn_error(c, 408, NULL);
            front_conn_run(c);
            /* front_conn_run may have closed c and put it on the free list; next
             * was read before, and a closed conn never goes back on w->conns. */
            continue;
        }
        front_conn_close(c);
    }
}
