/* One HTTP/2 request: relayed as HTTP/1.1 over a socket pair to a connection of
 * the worker, which routes, serves (files, proxy, FastCGI, ACME, berth's pages)
 * and logs it exactly as a request that came over HTTP/1.1 (Apache's mod_http2
 * serves its streams on secondary HTTP/1 connections the same way). Every rule of
 * the front thus holds on both protocols from one code path.
 *
 * That connection runs at once when its request is written (it is ours, in this
 * process), its pair goes back to the session for the next stream when it kept
 * the request alive, and a file it answers with is handed to the stream, which
 * reads it into DATA frames itself: see docs/internals/front.md.
 *
 * Back-pressure both ways goes through the pair's small socket buffers:
 * - request body: DATA is written to the pair and given back to the client's
 *   window (WINDOW_UPDATE) only once the pair took it, so a backend that reads
 *   slowly slows the client, and a stream holds at most its window;
 * - answer: a file is read only as the client's window allows; other bodies are
 *   read from the pair only while less than RX_HIGH bytes wait for DATA frames:
 *   a client that does not read (its window stays shut) leaves them waiting, the
 *   pair fills and the serving connection waits to write, as it would on a slow
 *   HTTP/1.1 socket (and gives up after the idle timeout). */
#include <ctype.h>
#include <stdio.h>
#include <sys/socket.h>

#include "common/log.h"
#include "front/h2.h"

/* Answer body bytes read ahead of DATA frames. */
#define RX_HIGH (64 * 1024)
/* The pair's send buffers (the kernel doubles them): what a stream keeps in
 * flight in the kernel each way. */
#define PAIR_SNDBUF (32 * 1024)

static void stream_io(struct evloop *loop, int fd, uint32_t events, void *data);
static void pump_down(struct h2_stream *st);

struct h2_stream *front_h2_stream_new(struct h2_session *s, int32_t id)
{
    struct worker *w = s->c->w;
    struct h2_stream *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->s = s;
    st->id = id;
    st->fd = -1;
    st->file_fd = -1;
    front_h2_head_init(&st->head, w->limits.max_head);
    /* The head (bounded by max_head), then a window of body with chunk framing. */
    st->up = BUF_INIT(w->limits.max_head + 4096 + 2 * H2_STREAM_WINDOW);
    st->rx = BUF_INIT(w->limits.max_head + RX_HIGH + 2 * FRONT_READ_CHUNK);
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    s->n_streams++;
    return st;
}

/* Links st and the connection c serving it (c->gen was gen when they met): c
 * hands its file answers to st. Nothing when c serves another by now. */
static void link_inner(struct h2_stream *st, struct conn *c, uint32_t gen)
{
    if (!c || c->gen != gen || c->fd < 0 || !c->h2 || c->h2_peer)
        return;
    st->inner = c;
    st->inner_gen = gen;
    c->h2_peer = st;
}

static void unlink_inner(struct h2_stream *st)
{
    if (st->inner && st->inner->gen == st->inner_gen && st->inner->h2_peer == st)
        st->inner->h2_peer = NULL;
    st->inner = NULL;
}

void front_h2_stream_unlink(struct h2_stream *st)
{
    st->inner = NULL;
}

void front_h2_stream_take_file(struct h2_stream *st, struct conn *c)
{
    if (st->file_fd >= 0)
        return;   /* one answer per stream: never happens */
    st->file_fd = c->file_fd;
    st->file_cf = c->file_cf;   /* the reference goes with it */
    st->file_off = c->file_off;
    st->file_left = c->file_left;
    c->file_fd = -1;
    c->file_cf = NULL;
    c->file_left = 0;
}

static void file_release(struct h2_stream *st)
{
    if (st->file_cf)
        front_cached_file_unref(st->file_cf);
    else if (st->file_fd >= 0)
        close(st->file_fd);
    st->file_cf = NULL;
    st->file_fd = -1;
    st->file_left = 0;
}

/* Closes our end of the pair: the serving connection sees the end of its input. */
static void close_pair(struct h2_stream *st)
{
    unlink_inner(st);
    if (st->fd < 0)
        return;
    if (st->events)
        evloop_del(st->s->c->w->loop, st->fd);
    st->events = 0;
    st->fd = safe_close(st->fd);
}

void front_h2_stream_free(struct h2_stream *st)
{
    struct h2_session *s = st->s;
    close_pair(st);
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    s->n_streams--;
    file_release(st);
    front_h2_head_done(&st->head);
    buf_done(&st->up);
    buf_done(&st->rx);
    free(st);
}

/* What epoll should watch: writes while bytes wait for the pair, reads while the
 * answer's bytes are taken. Not watched at all otherwise: a pair whose other end
 * closed would report EPOLLHUP without end. */
static void watch(struct h2_stream *st)
{
    if (st->fd < 0)
        return;
    uint32_t ev = 0;
    if (st->up.len > st->up_off)
        ev |= EPOLLOUT;
    if (!st->answer_done && (!st->head_done || st->rx.len - st->rx_off < RX_HIGH))
        ev |= EPOLLIN;
    struct evloop *loop = st->s->c->w->loop;
    if (ev == st->events)
        return;
    if (ev == 0)
        evloop_del(loop, st->fd);
    else if (st->events == 0)
        evloop_add(loop, st->fd, ev, stream_io, st);
    else
        evloop_mod(loop, st->fd, ev);
    st->events = ev;
}

static void reset(struct h2_stream *st, uint32_t code)
{
    st->reset_sent = code != NGHTTP2_REFUSED_STREAM;   /* a full worker is not the client's doing */
    close_pair(st);
    nghttp2_submit_rst_stream(st->s->session, NGHTTP2_FLAG_NONE, st->id, code);
}

/* Gives request body bytes back to the client's windows. */
static void give_back(struct h2_stream *st)
{
    if (st->up_unconsumed) {
        nghttp2_session_consume(st->s->session, st->id, st->up_unconsumed);
        st->up_unconsumed = 0;
    }
}

/* The serving connection reads no more (it answered, or went): the rest of the
 * body is dropped, and what it held goes back to the windows. */
static void up_drop(struct h2_stream *st)
{
    st->up_dead = true;
    buf_clear(&st->up);
    st->up_off = 0;
    give_back(st);
}

/* Writes what waits for the pair. */
static void pump_up(struct h2_stream *st)
{
    while (st->fd >= 0 && st->up_off < st->up.len) {
        ssize_t n = send(st->fd, st->up.data + st->up_off, st->up.len - st->up_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n < 0) {
            up_drop(st);   /* EPIPE: it answered and closed before reading all */
            return;
        }
        st->up_off += (size_t)n;
    }
    if (st->up_off == st->up.len) {
        buf_clear(&st->up);
        st->up_off = 0;
        give_back(st);
    }
}

static void idle_io(struct evloop *loop, int fd, uint32_t events, void *data)
{
    (void)events;
    /* An idle pair speaks only to close (its connection timed out) or out of
     * turn: either way it is of no more use. */
    struct h2_session *s = data;
    for (size_t i = 0; i < s->n_idle; i++) {
        if (s->idle[i].fd == fd) {
            s->idle[i] = s->idle[--s->n_idle];
            break;
        }
    }
    evloop_del(loop, fd);
    close(fd);
}

void front_h2_idle_close(struct h2_session *s)
{
    struct evloop *loop = s->c->w->loop;
    while (s->n_idle > 0) {
        int fd = s->idle[--s->n_idle].fd;
        evloop_del(loop, fd);
        close(fd);
    }
}

/* A pair for the stream: an idle one of the session's, else a new one and the
 * connection at its other end. */
static int open_pair(struct h2_stream *st)
{
    struct h2_session *s = st->s;
    struct worker *w = s->c->w;
    if (s->n_idle > 0) {
        struct h2_idle_pair *p = &s->idle[--s->n_idle];
        st->fd = p->fd;
        st->events = EPOLLIN;
        link_inner(st, p->inner, p->gen);
        return evloop_set(w->loop, st->fd, EPOLLIN, stream_io, st);
    }
    /* A stream's connection counts against the worker's cap like any other:
     * 100 streams on each of a client's connections must not take the worker
     * past what it holds for HTTP/1.1. */
    if (w->n_conns >= w->cfg->max_conns_per_worker)
        return -EBUSY;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    int sz = PAIR_SNDBUF;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    struct conn *inner;
    int r = front_conn_adopt_stream(w, sv[1], s->c, &inner);
    if (r < 0) {
        close(sv[0]);
        return r;
    }
    st->fd = sv[0];
    link_inner(st, inner, inner->gen);
    return 0;
}

/* The answer is whole: a pair whose connection kept alive, with the request
 * and nothing more sent or read, waits for the session's next stream; any other
 * closes. */
static void release_pair(struct h2_stream *st)
{
    struct h2_session *s = st->s;
    if (st->fd < 0)
        return;
    struct evloop *loop = s->c->w->loop;
    if (!st->res.keep_alive || st->rx_stray || st->up_dead || st->body_open || st->up_off < st->up.len ||
        s->n_idle == H2_IDLE_PAIRS ||
        (st->events ? evloop_set(loop, st->fd, EPOLLIN, idle_io, s) : evloop_add(loop, st->fd, EPOLLIN, idle_io, s)) <
            0) {
        close_pair(st);
        return;
    }
    s->idle[s->n_idle++] = (struct h2_idle_pair){ st->fd, st->inner, st->inner_gen };
    unlink_inner(st);
    st->fd = -1;
    st->events = 0;
}

void front_h2_stream_headers_done(struct h2_stream *st, bool body)
{
    struct h2_session *s = st->s;
    st->method = st->head.method.len == 4 && memcmp(st->head.method.data, "HEAD", 4) == 0 ? HTTP_HEAD : HTTP_GET;
    int r = front_h2_head_finish(&st->head, body);
    if (r >= 0)
        r = open_pair(st);
    if (r < 0) {
        /* Refused: the client may try it again later, or elsewhere. */
        reset(st, r == -EBUSY ? NGHTTP2_REFUSED_STREAM : NGHTTP2_INTERNAL_ERROR);
        return;
    }
    http1_parser_init(&st->parser, &s->c->w->limits);
    /* The head is small next to the buffers it took: moved out, they go. */
    r = buf_append(&st->up, st->head.head.data, st->head.head.len);
    bool too_big = st->head.too_big, has_length = st->head.has_length;
    front_h2_head_done(&st->head);
    front_h2_head_init(&st->head, 0);
    if (r < 0) {
        reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    st->chunked = body && !has_length;
    st->body_open = body;
    pump_up(st);
    /* A head past the limit gets 431 from the connection, which reads no body. */
    if (too_big)
        st->up_dead = true;
    /* The connection is ours, in this process: it serves the request now, and
     * what it answered at once (a file, a page) is read back now, saving two
     * rounds through epoll. It never calls back into the session. */
    if (st->inner && st->inner->gen == st->inner_gen)
        front_conn_poke(st->inner);
    pump_down(st);
    watch(st);
}

int front_h2_stream_body(struct h2_stream *st, const char *p, size_t n)
{
    if (st->fd < 0 || st->up_dead || !st->body_open)
        return -EPIPE;
    int r = 0;
    if (st->chunked) {
        char size[24];
        int k = snprintf(size, sizeof(size), "%zx\r\n", n);
        r = buf_append(&st->up, size, (size_t)k);
        if (r >= 0)
            r = buf_append(&st->up, p, n);
        if (r >= 0)
            r = buf_append(&st->up, "\r\n", 2);
    } else {
        r = buf_append(&st->up, p, n);
    }
    if (r < 0)
        return r;   /* past the window: nghttp2 would have refused it */
    st->up_unconsumed += n;
    pump_up(st);
    watch(st);
    return 0;
}

void front_h2_stream_body_end(struct h2_stream *st)
{
    if (!st->body_open)
        return;
    st->body_open = false;
    if (st->fd < 0 || st->up_dead)
        return;
    if (st->chunked && buf_append(&st->up, "0\r\n\r\n", 5) < 0) {
        reset(st, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    pump_up(st);
    watch(st);
}

/* ---- the answer ---- */

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *out, size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *user_data)
{
    (void)session;
    (void)stream_id;
    (void)user_data;
    struct h2_stream *st = source->ptr;
    size_t avail = st->rx.len - st->rx_off;
    if (avail > 0) {
        size_t n = MIN(avail, length);
        memcpy(out, st->rx.data + st->rx_off, n);
        st->rx_off += n;
        if (st->rx_off == st->rx.len) {
            buf_clear(&st->rx);
            st->rx_off = 0;
            if (st->answer_done && st->file_left == 0)
                *flags |= NGHTTP2_DATA_FLAG_EOF;
        }
        watch(st);   /* room again: read on */
        return (ssize_t)n;
    }
    if (st->file_left > 0) {
        /* Straight from the file into the frame, as the window allows. */
        ssize_t n;
        do
            n = pread(st->file_fd, out, (size_t)MIN((uint64_t)length, st->file_left), (off_t)st->file_off);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* it shrank: the length said is a lie now */
        st->file_off += (uint64_t)n;
        st->file_left -= (uint64_t)n;
        if (st->file_left == 0) {
            file_release(st);
            if (st->answer_done)
                *flags |= NGHTTP2_DATA_FLAG_EOF;
        }
        return n;
    }
    if (!st->answer_done) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
}

/* Sends the answer's head as HEADERS; the body follows from rx. */
static int submit_head(struct h2_stream *st)
{
    struct http1_response *res = &st->res;
    nghttp2_nv nva[HTTP1_MAX_HEADERS + 1];
    char status[16];
    snprintf(status, sizeof(status), "%03d", res->status % 1000);
    size_t n = 0;
    nva[n++] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE };
    for (size_t i = 0; i < res->n_headers; i++) {
        struct http1_header *h = &res->headers[i];
        if (!front_h2_answer_field_passes(h->name, h->name_len))
            continue;
        /* HTTP/2 field names are lowercase; the head is ours to change now. */
        char *name = (char *)h->name;
        for (size_t k = 0; k < h->name_len; k++)
            name[k] = (char)tolower((unsigned char)name[k]);
        nva[n++] = (nghttp2_nv){ (uint8_t *)name, (uint8_t *)h->value, h->name_len, h->value_len,
                                 NGHTTP2_NV_FLAG_NONE };
    }
    bool body = res->body != HTTP1_BODY_NONE && !(res->body == HTTP1_BODY_LENGTH && res->content_length == 0);
    nghttp2_data_provider prd = { .source.ptr = st, .read_callback = read_body };
    if (nghttp2_submit_response(st->s->session, st->id, nva, n, body ? &prd : NULL) != 0)
        return -EPROTO;
    st->head_done = true;
    if (!body)
        st->answer_done = true;
    return 0;
}

/* Frames the body bytes rx holds from `from` on, as the answer's head said. */
static int take_body(struct h2_stream *st, size_t from)
{
    struct http1_response *res = &st->res;
    size_t n = st->rx.len - from;
    switch (res->body) {
    case HTTP1_BODY_NONE:
        st->rx_stray = n > 0;
        st->rx.len = from;
        st->answer_done = true;
        break;
    case HTTP1_BODY_LENGTH:
        st->rx_stray = n > st->remaining;
        if (n > st->remaining)
            st->rx.len = from + (size_t)st->remaining;
        st->remaining -= MIN((uint64_t)n, st->remaining);
        st->answer_done = st->remaining == 0;
        break;
    case HTTP1_BODY_CHUNKED: {
        size_t extra = 0;
        int r = http1_chunked_decode(&st->chunk, st->rx.data + from, &n, &extra);
        if (r < 0)
            return r;
        st->rx.len = from + n;
        st->answer_done = r == 1;
        st->rx_stray = extra > 0;
        break;
    }
    case HTTP1_BODY_UNTIL_CLOSE:
        break;
    }
    return 0;
}

/* New bytes from the pair start at rx[from]. */
static int take(struct h2_stream *st, size_t from)
{
    while (!st->head_done) {
        int r = http1_parse_response(&st->parser, st->rx.data, st->rx.len, st->method, &st->res);
        if (r == HTTP1_INCOMPLETE)
            return 0;
        if (r < 0)
            return r;
        if (st->res.status < 200) {
            /* 1xx: not relayed (no Expect goes to the connection). */
            buf_consume(&st->rx, (size_t)r);
            http1_parser_init(&st->parser, &st->s->c->w->limits);
            continue;
        }
        st->remaining = st->res.content_length;
        http1_chunked_init(&st->chunk);
        if (submit_head(st) < 0)
            return -EPROTO;
        st->rx_off = (size_t)r;
        from = (size_t)r;
        if (st->file_fd >= 0 && !st->answer_done) {
            /* The body is the file the connection handed over; nothing more comes
             * through the pair. */
            if (st->res.body != HTTP1_BODY_LENGTH || st->res.content_length != st->file_left)
                return -EPROTO;
            st->answer_done = true;
        }
        if (st->answer_done) {
            st->rx_stray = st->rx.len > from;
            st->rx.len = from;
            return 0;
        }
    }
    return take_body(st, from);
}

/* Reads the answer while there is room for it. */
static void pump_down(struct h2_stream *st)
{
    while (st->fd >= 0 && !st->answer_done && (!st->head_done || st->rx.len - st->rx_off < RX_HIGH)) {
        if (st->head_done && st->rx_off > 0) {
            buf_consume(&st->rx, st->rx_off);
            st->rx_off = 0;
        }
        size_t from = st->rx.len;
        ssize_t n = front_read_into(st->fd, &st->rx);
        if (n == -EAGAIN)
            break;
        if (n == -ECONNRESET)
            n = 0;   /* it closed with our body unread: its answer was read first */
        if (n < 0) {
            reset(st, NGHTTP2_INTERNAL_ERROR);
            return;
        }
        if (n == 0) {
            close_pair(st);
            if (st->head_done && st->res.body == HTTP1_BODY_UNTIL_CLOSE) {
                st->answer_done = true;
            } else if (!st->answer_done) {
                /* Cut off (a backend failing mid-answer, or no answer at all): as
                 * HTTP/1.1 closes the connection, the stream is reset. */
                reset(st, NGHTTP2_INTERNAL_ERROR);
                return;
            }
            break;
        }
        if (take(st, from) < 0) {
            reset(st, NGHTTP2_INTERNAL_ERROR);
            return;
        }
    }
    if (st->answer_done) {
        /* Whole: the connection has nothing more to say, and what it did not read
         * of the body it never will. */
        release_pair(st);
        up_drop(st);
    }
    if (st->deferred && (st->answer_done || st->rx.len > st->rx_off)) {
        st->deferred = false;
        nghttp2_session_resume_data(st->s->session, st->id);
    }
}

static void stream_io(struct evloop *loop, int fd, uint32_t events, void *data)
{
    (void)loop;
    (void)fd;
    struct h2_stream *st = data;
    struct h2_session *s = st->s;
    if (events & EPOLLOUT)
        pump_up(st);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        pump_down(st);
    watch(st);
    s->c->w->now_ms = now_ms();
    front_h2_session_kick(s);
}
