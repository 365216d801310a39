/* HTTP/2 over TLS: the session of a connection that picked h2 by ALPN.
 *
 * nghttp2 does the framing, HPACK, flow-control accounting and the protocol's
 * checks; this file moves bytes between it and the TLS session, bounds what a
 * client can make us hold or do, and hands each request to a stream
 * (h2-stream.c), which relays it to a connection of its own. We read from the
 * client only while less than OUT_HIGH bytes wait to go out, so a client that
 * floods PINGs or SETTINGS without reading their ACKs stops being read. */
#include <nghttp2/nghttp2.h>

#include "common/log.h"
#include "front/front-worker.h"
#include "front/h2.h"

/* Output pulled from nghttp2 before a write, and the mark past which we stop
 * reading the client (it is not reading us). */
#define OUT_CHUNK (64 * 1024)
#define OUT_HIGH (256 * 1024)
/* Input handled per wake-up before we give other connections a turn. */
#define IN_BATCH (256 * 1024)
/* The connection's receive window: request bodies of several streams in flight. */
#define CONN_WINDOW (1 << 20)
/* Resets a client may cause: a bucket of RESET_BURST refilled at RESET_RATE a
 * second (CVE-2023-44487, rapid reset: opening and cancelling streams costs the
 * client nothing and us a request each). Past it: GOAWAY ENHANCE_YOUR_CALM. */
#define RESET_BURST 200
#define RESET_RATE 50
/* CONTINUATION frames after one HEADERS (a header block of 64 KiB needs at most
 * four of 16 KiB): past it, a flood (CVE-2024-27316 and kin) and GOAWAY. */
#define CONTINUATIONS_MAX 16

static nghttp2_session_callbacks *callbacks;
static nghttp2_option *options;

static void session_run(struct conn *c);

/* The session is over: it goes, and the connection lingers so that the client
 * reads our GOAWAY. */
static void session_end(struct conn *c)
{
    front_h2_free(c);
    front_conn_linger(c);
}

static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user_data)
{
    struct h2_session *s = user_data;
    if (hd->type == NGHTTP2_HEADERS) {
        s->continuations = 0;
    } else if (hd->type == NGHTTP2_CONTINUATION && ++s->continuations > CONTINUATIONS_MAX) {
        nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct h2_session *s = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct h2_stream *st = front_h2_stream_new(s, frame->hd.stream_id);
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* RST_STREAM this one */
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, st);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;   /* trailers: nothing of them reaches the site */
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!st)
        return 0;
    if (front_h2_head_field(&st->head, (const char *)name, namelen, (const char *)value, valuelen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

/* Counts one reset; false when the client is past its allowance. */
static bool reset_allowed(struct h2_session *s)
{
    uint64_t now = s->c->w->now_ms;
    uint64_t refill = (now - s->resets_at_ms) * RESET_RATE / 1000;
    if (refill > 0) {
        s->reset_tokens = (uint32_t)MIN((uint64_t)RESET_BURST, s->reset_tokens + refill);
        s->resets_at_ms = now;
    }
    if (s->reset_tokens == 0)
        return false;
    s->reset_tokens--;
    return true;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct h2_session *s = user_data;
    struct h2_stream *st = frame->hd.stream_id ? nghttp2_session_get_stream_user_data(session, frame->hd.stream_id)
                                               : NULL;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (st && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
            front_h2_stream_headers_done(st, !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM));
        else if (st && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            front_h2_stream_body_end(st);   /* after trailers */
        break;
    case NGHTTP2_DATA:
        if (st && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            front_h2_stream_body_end(st);
        break;
    case NGHTTP2_RST_STREAM:
        if (!reset_allowed(s))
            nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
        break;
    case NGHTTP2_SETTINGS:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK)
            s->settings_acked = true;
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data)
{
    (void)flags;
    (void)user_data;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!st || front_h2_stream_body(st, (const char *)data, len) < 0) {
        /* Nobody takes these bytes: they still count against the windows. */
        nghttp2_session_consume(session, stream_id, len);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
    struct h2_session *s = user_data;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    /* A stream we reset ourselves (its answer broke off) counts like one the
     * client reset (those were counted as their RST_STREAM came): a client
     * cannot make us start and fail requests at will. */
    (void)error_code;
    if (st && st->reset_sent && !reset_allowed(s))
        nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
    if (st) {
        /* Body bytes it held count against the connection's window still. */
        if (st->up_unconsumed)
            nghttp2_session_consume_connection(session, st->up_unconsumed);
        st->up_unconsumed = 0;
        nghttp2_session_set_stream_user_data(session, stream_id, NULL);
        front_h2_stream_free(st);
    }
    return 0;
}

static int setup_library(void)
{
    if (callbacks)
        return 0;
    if (nghttp2_session_callbacks_new(&callbacks) != 0)
        return -ENOMEM;
    nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    if (nghttp2_option_new(&options) != 0) {
        nghttp2_session_callbacks_del(callbacks);
        callbacks = NULL;
        return -ENOMEM;
    }
    /* Request bodies are acknowledged (WINDOW_UPDATE) only once the stream's
     * connection took them: a client cannot send faster than the site reads. */
    nghttp2_option_set_no_auto_window_update(options, 1);
    /* ACKs (PING, SETTINGS) queued while the client does not read: a flood of
     * them ends the session instead of filling memory. */
    nghttp2_option_set_max_outbound_ack(options, 256);
    /* Entries in one SETTINGS frame. */
    nghttp2_option_set_max_settings(options, 32);
    /* The HPACK table our answers use: small, as the client's default. */
    nghttp2_option_set_max_deflate_dynamic_table_size(options, 4096);
    return 0;
}

void front_h2_start(struct conn *c)
{
    struct worker *w = c->w;
    struct h2_session *s = setup_library() < 0 ? NULL : calloc(1, sizeof(*s));
    if (!s) {
        front_conn_close(c);
        return;
    }
    s->c = c;
    s->reset_tokens = RESET_BURST;
    s->resets_at_ms = w->now_ms;
    if (nghttp2_session_server_new2(&s->session, callbacks, s, options) != 0) {
        free(s);
        front_conn_close(c);
        return;
    }
    c->h2s = s;
    c->state = CS_H2;
    c->readable = true;   /* the preface may have come with the handshake's end */
    /* A head size of max_head for the fields of a request (the list as RFC 9113
     * counts it); beyond, 431 as on HTTP/1.1. */
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)MIN(w->cfg->max_head, (size_t)UINT32_MAX) },
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
    };
    if (nghttp2_submit_settings(s->session, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0 ||
        nghttp2_session_set_local_window_size(s->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0) {
        front_conn_close(c);
        return;
    }
    /* The client must send its preface and acknowledge ours within the head
     * timeout; then it may stay idle for the idle timeout. */
    s->settings_deadline = w->now_ms + w->cfg->header_timeout_ms;
    c->deadline = w->now_ms + w->cfg->header_timeout_ms;
    session_run(c);
}

void front_h2_free(struct conn *c)
{
    struct h2_session *s = c->h2s;
    if (!s)
        return;
    c->h2s = NULL;
    evloop_timer_cancel(c->w->loop, s->kick);
    /* nghttp2 frees its streams without telling us: ours go first. */
    while (s->streams)
        front_h2_stream_free(s->streams);
    front_h2_idle_close(s);
    nghttp2_session_del(s->session);
    free(s);
}

/* Pulls frames from nghttp2 into out while it is below OUT_CHUNK. 1 when it
 * stopped there (more may be ready), 0 when nghttp2 had no more, negative errno. */
static int produce(struct conn *c)
{
    struct h2_session *s = c->h2s;
    while (c->out.len - c->out_off < OUT_CHUNK) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(s->session, &p);
        if (n < 0)
            return -EPROTO;
        if (n == 0)
            return 0;
        if (c->out_off > 0 && c->out_off == c->out.len) {
            buf_clear(&c->out);
            c->out_off = 0;
        }
        int r = buf_append(&c->out, p, (size_t)n);
        if (r < 0)
            return r;
    }
    return 1;
}

/* Writes and reads until both would wait, then sets what epoll watches; closes
 * the connection when the session is over or broken. */
static void session_run(struct conn *c)
{
    struct worker *w = c->w;
    struct h2_session *s = c->h2s;
    size_t read_total = 0;
    bool blocked = false;
    for (;;) {
        int more = produce(c);
        if (more < 0) {
            front_conn_close(c);
            return;
        }
        blocked = false;
        if (c->out.len > c->out_off || s->tls_pending) {
            int r = front_conn_flush(c);
            if (r < 0) {
                front_conn_close(c);
                return;
            }
            blocked = r == 0;
            s->tls_pending = blocked;
            if (!blocked)
                s->write_deadline = 0;
            else if (!s->write_deadline)
                s->write_deadline = w->now_ms + w->cfg->idle_timeout_ms;
            if (!blocked && more)
                continue;   /* more frames than one chunk */
        }
        if (!nghttp2_session_want_read(s->session) || read_total >= IN_BATCH || !c->readable ||
            c->out.len - c->out_off >= OUT_HIGH)
            break;
        ssize_t n = front_conn_read_into(c, &c->in);
        if (n == -EAGAIN) {
            c->readable = false;
            break;
        }
        if (n <= 0) {
            front_conn_close(c);
            return;
        }
        read_total += (size_t)n;
        ssize_t used = nghttp2_session_mem_recv(s->session, (const uint8_t *)c->in.data, c->in.len);
        buf_clear(&c->in);
        if (used < 0) {
            /* A connection error. nghttp2 queues the GOAWAY for protocol errors,
             * not for its own flood limits (PING/SETTINGS ACKs piling up,
             * CONTINUATIONs): then we say why. terminate_session does nothing
             * when a GOAWAY is queued already. One try at sending it, then close. */
            bool flood = used == NGHTTP2_ERR_FLOODED || used == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS ||
                         used == NGHTTP2_ERR_CALLBACK_FAILURE;
            nghttp2_session_terminate_session(s->session, flood ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
            (void)produce(c);
            if (front_conn_flush(c) == 1)
                session_end(c);
            else
                front_conn_close(c);
            return;
        }
        if (!s->preface_seen) {
            s->preface_seen = true;
            c->deadline = w->now_ms + w->cfg->idle_timeout_ms;
        }
    }
    if (!nghttp2_session_want_read(s->session) && !nghttp2_session_want_write(s->session) && !blocked) {
        session_end(c);   /* GOAWAY sent and every stream done */
        return;
    }
    if (s->n_streams > 0)
        c->deadline = w->now_ms + w->cfg->idle_timeout_ms;
    uint32_t ev = 0;
    if (nghttp2_session_want_read(s->session) && c->out.len - c->out_off < OUT_HIGH)
        ev |= EPOLLIN;
    if (blocked)
        ev |= EPOLLOUT;
    front_conn_want(c, ev);
}

void front_h2_event(struct conn *c, uint32_t events)
{
    if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) {
        front_conn_close(c);
        return;
    }
    session_run(c);
}

static void kick_due(struct evloop *loop, struct ev_timer *timer, void *data)
{
    (void)loop;
    (void)timer;
    struct h2_session *s = data;
    s->kick = NULL;
    session_run(s->c);
}

void front_h2_session_kick(struct h2_session *s)
{
    if (s->kick)
        return;
    /* A timer due now runs right after this pass's events. */
    s->kick = evloop_timer_add(s->c->w->loop, 0, kick_due, s);
    if (!s->kick)
        session_run(s->c);
}

void front_h2_timeout(struct conn *c)
{
    struct worker *w = c->w;
    struct h2_session *s = c->h2s;
    uint64_t now = w->now_ms;
    if (s->write_deadline && s->write_deadline <= now) {
        front_conn_close(c);   /* the client stopped reading */
        return;
    }
    uint32_t code;
    if (!s->settings_acked && s->settings_deadline <= now)
        code = NGHTTP2_SETTINGS_TIMEOUT;
    else if (s->n_streams == 0 && c->deadline <= now)
        code = NGHTTP2_NO_ERROR;   /* idle (or no preface in the head timeout) */
    else
        return;
    if (s->goaway_sent_ms) {
        if (now - s->goaway_sent_ms > 1000)
            front_conn_close(c);
        return;
    }
    s->goaway_sent_ms = now;
    nghttp2_session_terminate_session(s->session, code);
    front_h2_session_kick(s);
}
