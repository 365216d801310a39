/* The HTTP/2 session of a connection and its streams: shared by h2.c (the
 * session: nghttp2, TLS I/O, limits) and h2-stream.c (one request relayed to a
 * connection of its own). Internal to src/front; see docs/internals/front.md. */
#pragma once

#include <nghttp2/nghttp2.h>

#include "front/front-worker.h"
#include "http/http1.h"

/* SETTINGS_MAX_CONCURRENT_STREAMS. */
#define H2_MAX_STREAMS 100
/* SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a stream may have in flight. */
#define H2_STREAM_WINDOW 65535
/* Relay pairs a session keeps for its next streams once their connection is
 * idle between requests (kept alive): a stream then costs no socketpair, no new
 * connection, no epoll registration. */
#define H2_IDLE_PAIRS 16

struct h2_session {
    struct conn *c;                /* the TLS connection (CS_H2) */
    nghttp2_session *session;
    struct h2_stream *streams;     /* open streams, for freeing them with the session */
    size_t n_streams;
    struct h2_idle_pair {          /* a pair whose connection waits for a request */
        int fd;                    /* our end */
        struct conn *inner;        /* its connection, valid while inner->gen == gen */
        uint32_t gen;
    } idle[H2_IDLE_PAIRS];
    size_t n_idle;
    struct ev_timer *kick;         /* a pass of the session due at the end of this loop pass */
    uint64_t settings_deadline;    /* our SETTINGS must be acknowledged by then */
    uint64_t write_deadline;       /* 0, or when a stalled write gives up */
    uint64_t goaway_sent_ms;       /* a timeout's GOAWAY went at this time (0: none) */
    uint64_t resets_at_ms;         /* when reset_tokens was last refilled */
    uint32_t reset_tokens;         /* resets the client may still cause now */
    unsigned continuations;        /* CONTINUATION frames since the last HEADERS */
    bool settings_acked;
    bool preface_seen;
    bool tls_pending;              /* the last flush left bytes in the TLS session */
};

/* One request: an HTTP/1.1 head and body written to a socket pair whose other end
 * is a connection of the worker (front_conn_adopt_stream), which routes, serves
 * and logs it as any request; its HTTP/1.1 answer read back, parsed and sent as
 * HEADERS and DATA. */
struct h2_stream {
    struct h2_session *s;
    struct h2_stream *prev, *next;
    int32_t id;
    int fd;                        /* our end of the pair; -1 when closed */
    struct conn *inner;            /* the connection at the pair's other end, while linked
                                      (it points back through h2_peer) */
    uint32_t inner_gen;
    uint32_t events;               /* what epoll watches on fd */
    struct front_h2_head head;     /* the request's fields, into an HTTP/1.1 head */
    enum http_method method;       /* for the answer's framing (HEAD: no body) */
    /* Towards the connection: */
    struct buf up;                 /* bytes not yet written to fd, from up_off */
    size_t up_off;
    size_t up_unconsumed;          /* DATA payload in up, not yet given back to the window */
    bool chunked;                  /* the body goes chunked (no content-length) */
    bool body_open;                /* more request DATA may come */
    bool up_dead;                  /* the connection will read no more: drop the body */
    /* From the connection: */
    struct buf rx;                 /* the answer's head while parsed, then body bytes */
    size_t rx_off;                 /* body bytes before it went out in DATA */
    struct http1_parser parser;
    struct http1_response res;
    struct http1_chunked chunk;
    uint64_t remaining;            /* Content-Length bytes still to come */
    bool head_done;                /* HEADERS submitted */
    bool rx_stray;                 /* bytes came past the answer: the pair is not reused */
    bool answer_done;              /* the whole body is in rx */
    bool deferred;                 /* nghttp2 waits for body bytes (resume when some come) */
    bool reset_sent;               /* we reset it: its answer broke off */
    /* A file answer's body, handed over by the connection (front_h2_stream_take_file): */
    int file_fd;                   /* -1: none */
    struct cached_file *file_cf;   /* referenced when file_fd is the cache's */
    uint64_t file_off, file_left;
};

/* h2-stream.c */
/* A stream for a request whose HEADERS began; NULL when out of memory. */
struct h2_stream *front_h2_stream_new(struct h2_session *s, int32_t id);
/* The request's fields are all in: opens the pair, starts its connection and
 * writes the head. body: DATA follows. */
void front_h2_stream_headers_done(struct h2_stream *st, bool body);
/* Request body bytes; negative when nobody takes them (the caller gives them
 * back to the window at once). */
int front_h2_stream_body(struct h2_stream *st, const char *p, size_t n);
/* END_STREAM came: the body is whole. */
void front_h2_stream_body_end(struct h2_stream *st);
/* Closes the pair and frees the stream (nghttp2 closed it, or the session ends). */
void front_h2_stream_free(struct h2_stream *st);
/* Closes the session's idle pairs (their connections see the end of input). */
void front_h2_idle_close(struct h2_session *s);

/* h2.c */
/* Has the session send what its streams made ready, and read on, once the events
 * of this loop pass are handled (so that the answers of streams ready together
 * leave in one write). Never runs from inside an nghttp2 callback. */
void front_h2_session_kick(struct h2_session *s);
