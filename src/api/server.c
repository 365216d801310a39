/* The API's connection handling: accept on the unix socket, read and parse requests
 * with the shared HTTP/1.1 parser, dispatch, answer, keep alive. Requests are small
 * and handlers are quick store operations, so each is handled to completion in the
 * loop's callback; the one exception, an upload's unpacking, runs in a child process
 * (upload.c) and the connection waits out of the loop for its answer. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "api/api-internal.h"
#include "common/log.h"

#define API_MAX_HEAD (64 * 1024)
#define API_MAX_BODY (1024 * 1024)
/* A batch (POST /api/v1/apply) is a whole fleet file: thousands of sites with their
 * domains are megabytes. Root on api.sock may send that much; the panel's users,
 * whose bodies berthd reads before it knows who sends them, may not. */
#define API_MAX_BATCH_BODY (64 * 1024 * 1024)
#define API_MAX_CONNECTIONS 256

struct api_conn {
    struct api_server *server;
    int fd;
    uid_t peer_uid;
    struct buf in;
    struct buf out;
    struct http1_parser parser;
    struct http1_request req;     /* the parser keeps its progress here between reads */
    bool closing;                 /* close once out is flushed */
    struct api_upload *upload;    /* a request whose body streams to a file (declared in api-internal.h) */
    bool unpacking;               /* its body is complete and being unpacked: the socket is
                                   * out of the loop (not read, not closed) until the answer */
    uint64_t discard;             /* body bytes of a refused upload still to read and drop before closing */
    struct api_pending *pending;  /* an answer being prepared (api_reply_later) */
    int send_fd;                  /* a file answer's body still to send (api_reply_file), or -1 */
    uint64_t send_left;
    uint64_t last_active_ms;      /* when the peer last sent or was sent anything */
    struct api_conn *next, **pprev;
};

struct api_server {
    struct evloop *loop;
    struct api_config cfg;
    char *socket_path;
    int listen_fd;
    struct api_conn *conns;
    size_t n_conns;
    struct api_auth *auth;        /* who may ask, and the login throttle (auth.c) */
};

static void conn_close(struct api_conn *c)
{
    struct api_server *s = c->server;
    evloop_del(s->loop, c->fd);
    close(c->fd);
    buf_done(&c->in);
    buf_done(&c->out);
    api_upload_free(c->upload);
    if (c->pending) {
        evloop_del(s->loop, c->pending->fd);
        c->pending->free(c->pending);
    }
    safe_close(c->send_fd);
    *c->pprev = c->next;
    if (c->next)
        c->next->pprev = c->pprev;
    s->n_conns--;
    free(c);
}

int api_status_for(int code)
{
    switch (code) {
    case -EINVAL: return 400;
    case -EPERM: case -EACCES: return 403;
    case -ENOENT: return 404;
    case -EEXIST: case -EADDRINUSE: case -EBUSY: return 409;
    case -E2BIG: case -EFBIG: return 413;
    case -ENOSPC: return 507;
    default: return 500;
    }
}

void api_reply(struct api_response *res, int status)
{
    res->status = status;
    buf_clear(&res->body);
    json_writer_init(&res->json, &res->body, false);
}

void api_reply_file(struct api_response *res, int status, int fd, uint64_t len, const char *content_type)
{
    api_reply(res, status);
    if (res->has_file)
        safe_close(res->file_fd);
    res->has_file = true;
    res->file_fd = fd;
    res->file_len = len;
    res->content_type = content_type;
}

void api_reply_later(struct api_response *res, struct api_pending *p)
{
    res->status = 202;   /* never sent: the answer finish prepares replaces it */
    res->pending = p;
}

void api_reply_error(struct api_response *res, int status, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    api_reply(res, status);
    json_object_begin(&res->json);
    json_key(&res->json, "error");
    json_object_begin(&res->json);
    json_kv_int(&res->json, "status", status);
    json_kv_string(&res->json, "message", msg);
    json_object_end(&res->json);
    json_object_end(&res->json);
}

void api_reply_failure(struct api_response *res, const struct error *err)
{
    api_reply_error(res, api_status_for(err->code), "%s", err->message);
}

bool api_query_get(const char *query, const char *key, char *out, size_t n)
{
    size_t klen = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = MIN(len - klen - 1, n - 1);
            memcpy(out, p + klen + 1, vlen);
            out[vlen] = 0;
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

static void dispatch(struct api_server *s, struct api_request *req, struct api_response *res)
{
    if (req->n_segments == 0) {
        api_reply_error(res, 404, "no such API endpoint");
        return;
    }
    const char *first = req->segments[0];
    if (streq(first, "status"))
        api_handle_status(&s->cfg, req, res);
    else if (streq(first, "sites"))
        api_handle_sites(&s->cfg, req, res);
    else if (streq(first, "users"))
        api_handle_users(&s->cfg, req, res);
    else if (streq(first, "events"))
        api_handle_events(&s->cfg, req, res);
    else if (streq(first, "login") || streq(first, "logout") || streq(first, "me"))
        api_handle_account(&s->cfg, req, res);
    else if (streq(first, "tokens"))
        api_handle_tokens(&s->cfg, req, res);
    else if (streq(first, "php"))
        api_handle_php(&s->cfg, req, res);
    else if (streq(first, "apply"))
        api_handle_apply(&s->cfg, req, res);
    else
        api_reply_error(res, 404, "no such API endpoint");
}

/* Splits "/api/v1/a/b?q" into segments (in path_copy) and the query. */
static int split_path(char *path_copy, struct api_request *req)
{
    char *q = strchr(path_copy, '?');
    req->query = "";
    if (q) {
        *q = 0;
        req->query = q + 1;
    }
    if (!str_startswith(path_copy, "/api/v1/") && !streq(path_copy, "/api/v1"))
        return -ENOENT;
    char *p = path_copy + strlen("/api/v1");
    req->n_segments = 0;
    if (*p == 0)
        return 0;
    p++;
    while (*p) {
        if (req->n_segments == ARRAY_SIZE(req->segments))
            return -ENOENT;
        req->segments[req->n_segments++] = p;
        char *slash = strchr(p, '/');
        if (slash)
            *slash = 0;
        /* Each segment on its own: ".." is a name the handlers refuse, never a
         * step up (DELETE .../archives/.. must not reach the site). */
        if (http_segment_decode(p) < 0)
            return -ENOENT;
        if (!slash)
            break;
        p = slash + 1;
    }
    return 0;
}

/* head_only: the answer to HEAD, whose head says what GET would send but whose body
 * is never sent (RFC 9112, 6.3): a peer that reuses the connection would read those
 * bytes as the start of its next answer. */
static void write_response(struct api_conn *c, const struct api_response *res, bool keep_alive, bool head_only)
{
    char date[30];
    http_date_format(time(NULL), date);
    /* A JSON answer ends with a newline for people reading it in a terminal; other
     * bodies (the panel's files) are sent as they are, with their own caching. */
    bool json = !res->content_type;
    buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", res->status, http_status_reason(res->status),
               json ? "application/json" : res->content_type);
    if (res->has_file)
        buf_printf(&c->out, "Content-Length: %llu\r\n", (unsigned long long)res->file_len);
    else if (res->status != 304)
        buf_printf(&c->out, "Content-Length: %zu\r\n", res->body.len + json);
    buf_printf(&c->out, "Date: %s\r\n%sX-Content-Type-Options: nosniff\r\n%s%s\r\n", date,
               json ? "Cache-Control: no-store\r\n" : "", res->headers, keep_alive ? "" : "Connection: close\r\n");
    if (res->status != 304 && !head_only) {
        buf_append(&c->out, res->body.data ? res->body.data : "", res->body.len);
        if (json)
            buf_append_char(&c->out, '\n');
    }
}

static void flush(struct api_conn *c);

static void reset_parser(struct api_conn *c)
{
    http1_parser_init(&c->parser, NULL);
    memset(&c->req, 0, sizeof(c->req));
}

/* ---- uploads: the one request whose body streams to a file (declared in api-internal.h) ---- */

/* Hands a request head over to the upload endpoint. An answer before the body
 * (unknown site, too large, no session) closes the connection once the body that
 * the head declared has been read and dropped: closed on a peer that is still
 * sending, the socket is reset under it and the answer lost (the front would
 * tell the browser 502 instead of the reason). */
static void on_unpacked(void *data);

static void upload_start(struct api_conn *c, const struct http1_request *req, size_t head)
{
    struct api_response res = { .body = BUF_INIT(64 * 1024) };
    struct api_request areq = { .method = req->method, .http = req, .loop = c->server->loop };
    char path[2048];
    snprintf(path, sizeof(path), "%.*s", (int)req->path_len, req->path);
    if (req->path_len >= sizeof(path) || split_path(path, &areq) < 0)
        api_reply_error(&res, 404, "no such API endpoint");
    else if (api_auth_request(c->server->auth, c->peer_uid, &areq, &res))
        api_upload_begin(&c->server->cfg, c->server->loop, &areq, req, &res, on_unpacked, c, &c->upload);
    buf_consume(&c->in, head);
    reset_parser(c);
    if (!c->upload) {
        write_response(c, &res, false, false);
        c->closing = true;
        if (req->body == HTTP1_BODY_LENGTH)
            c->discard = req->content_length - MIN(req->content_length, (uint64_t)c->in.len);
        buf_clear(&c->in);
    }
    buf_done(&res.body);
}

/* Reads and drops what is left of a refused upload's body. */
static void discard_body(struct api_conn *c)
{
    char scratch[16 * 1024];
    while (c->discard > 0) {
        ssize_t n = recv(c->fd, scratch, MIN(sizeof(scratch), c->discard), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            c->discard = 0;   /* the peer stopped sending: nothing more to wait for */
            return;
        }
        c->discard -= (uint64_t)n;
    }
}

/* Sends the upload's answer (r: what api_upload_feed or api_upload_answer said). */
static void upload_answer(struct api_conn *c, struct api_response *res, int r)
{
    bool keep = r > 0 && api_upload_keep_alive(c->upload);
    api_upload_free(c->upload);
    c->upload = NULL;
    if (json_writer_finish(&res->json) < 0)
        api_reply_error(res, 500, "answer too large");
    write_response(c, res, keep, false);
    c->closing = !keep;
}

/* Passes buffered body bytes on; answers once the body is complete and unpacked.
 * Returns false while more bytes are needed or the unpacking runs. */
static bool upload_step(struct api_conn *c)
{
    struct api_response res = { .body = BUF_INIT(64 * 1024) };
    size_t used = 0;
    int r = api_upload_feed(c->upload, c->in.data ? c->in.data : (char[1]){ 0 }, c->in.len, &res, &used);
    buf_consume(&c->in, used);
    if (r == API_UPLOAD_UNPACKING) {
        /* Nothing more is read until the answer is out: a pipelined request waits
         * in the socket, and a peer that hangs up is seen after the answer. */
        c->unpacking = true;
        evloop_del(c->server->loop, c->fd);
    }
    if (r == 0 || r == API_UPLOAD_UNPACKING) {
        buf_done(&res.body);
        return false;
    }
    upload_answer(c, &res, r);
    buf_done(&res.body);
    return true;
}

static bool process(struct api_conn *c);
static void on_conn(struct evloop *loop, int fd, uint32_t events, void *data);

/* The unpacking of c's upload ended: answer, then go on with c as before. */
static void on_unpacked(void *data)
{
    struct api_conn *c = data;
    c->unpacking = false;
    c->last_active_ms = now_ms();
    if (evloop_add(c->server->loop, c->fd, EPOLLIN, on_conn, c) < 0) {
        conn_close(c);
        return;
    }
    struct api_response res = { .body = BUF_INIT(64 * 1024) };
    upload_answer(c, &res, api_upload_answer(c->upload, &res));
    buf_done(&res.body);
    /* Requests that came with the body, behind it. */
    if (!c->closing && c->in.len > 0 && !process(c))
        return;
    flush(c);
}

/* The most body req may carry on c. */
static size_t max_body(const struct api_conn *c, const struct http1_request *req)
{
    static const char apply[] = "/api/v1/apply";
    size_t n = strlen(apply);
    bool batch = c->server->cfg.auth == API_AUTH_PEER_ROOT && c->peer_uid == 0 && req->method == HTTP_POST &&
                 req->path_len >= n && memcmp(req->path, apply, n) == 0 &&
                 (req->path_len == n || req->path[n] == '?');
    return batch ? API_MAX_BATCH_BODY : API_MAX_BODY;
}

/* Handles every complete request in c->in. Returns false if c was closed. */
static void on_pending(struct evloop *loop, int fd, uint32_t events, void *data);

static bool process(struct api_conn *c)
{
    for (;;) {
        if (c->pending)
            return true;
        if (c->upload) {
            if (!upload_step(c) || c->closing)
                return true;
            continue;
        }
        int head = http1_parse_request(&c->parser, c->in.data, c->in.len, &c->req);
        const struct http1_request req = c->req;
        if (head == HTTP1_INCOMPLETE)
            return true;
        if (head > 0 && api_upload_wanted(&req)) {
            upload_start(c, &req, (size_t)head);
            if (c->closing)
                return true;
            continue;
        }

        struct api_response res = { .body = BUF_INIT(16 * 1024 * 1024) };
        if (head < 0) {
            api_reply_error(&res, -head, "malformed HTTP request");
            write_response(c, &res, false, false);
            buf_done(&res.body);
            c->closing = true;
            return true;
        }
        size_t body_len = 0, consumed = (size_t)head, limit = max_body(c, &req);
        char *body = c->in.data + head;
        c->in.max = MAX(c->in.max, API_MAX_HEAD + limit + 64 * 1024);
        if (req.body == HTTP1_BODY_LENGTH) {
            if (req.content_length > limit) {
                api_reply_error(&res, 413, "request body larger than %zu bytes", limit);
                write_response(c, &res, false, false);
                buf_done(&res.body);
                c->closing = true;
                /* Read and drop the rest: closed on a peer still sending, the socket
                 * would be reset under it and the answer lost. */
                c->discard = req.content_length - MIN(req.content_length, (uint64_t)(c->in.len - (size_t)head));
                buf_clear(&c->in);
                return true;
            }
            if (c->in.len - (size_t)head < req.content_length) {
                /* Wait for the rest of the body; the head is parsed again then. */
                reset_parser(c);
                return true;
            }
            body_len = (size_t)req.content_length;
            consumed += body_len;
        } else if (req.body == HTTP1_BODY_CHUNKED) {
            /* Decode a copy so that an incomplete body can be retried whole later. */
            struct http1_chunked ch;
            http1_chunked_init(&ch);
            size_t raw = c->in.len - (size_t)head, extra = 0, len = raw;
            char *copy = malloc(raw + 1);
            if (!copy)
                return true;
            memcpy(copy, body, raw);
            int r = http1_chunked_decode(&ch, copy, &len, &extra);
            if (r == HTTP1_INCOMPLETE && raw < limit + 64 * 1024) {
                free(copy);
                reset_parser(c);
                return true;
            }
            if (r != 1 || len > limit) {
                free(copy);
                api_reply_error(&res, r < 0 ? 400 : 413, "bad chunked request body");
                write_response(c, &res, false, false);
                buf_done(&res.body);
                c->closing = true;
                return true;
            }
            memcpy(body, copy, len);
            free(copy);
            body_len = len;
            /* The pipelined bytes after the body are the last extra bytes of c->in,
             * where the raw body left them: consuming up to them keeps them. */
            consumed = c->in.len - extra;
        }

        /* Copy what the handlers keep: the path is split in place. */
        char path[2048];
        snprintf(path, sizeof(path), "%.*s", (int)req.path_len, req.path);
        struct api_request areq = { .method = req.method, .http = &req, .loop = c->server->loop };
        struct json_value *json = NULL;
        bool page = c->server->cfg.auth == API_AUTH_PANEL && !str_startswith(path, "/api/");
        if (page) {
            api_panel_serve(&req, &res);   /* the panel's files: public, like a login page */
        } else if (req.path_len >= sizeof(path) || split_path(path, &areq) < 0) {
            api_reply_error(&res, 404, "no such API endpoint");
        } else if (body_len > 0) {
            const char *msg;
            size_t off;
            if (json_parse(body, body_len, &json, &msg, &off) < 0)
                api_reply_error(&res, 400, "request body is not valid JSON: %s at byte %zu", msg, off);
            else if (json->type != JSON_OBJECT)
                api_reply_error(&res, 400, "request body must be a JSON object");
            else
                areq.body = json;
        }
        if (res.status == 0 && api_auth_request(c->server->auth, c->peer_uid, &areq, &res))
            dispatch(c->server, &areq, &res);
        if (res.pending) {
            json_value_free(json);
            buf_done(&res.body);
            buf_consume(&c->in, consumed);
            reset_parser(c);
            c->pending = res.pending;
            if (evloop_add(c->server->loop, c->pending->fd, EPOLLIN, on_pending, c) < 0) {
                c->pending->free(c->pending);
                c->pending = NULL;
                struct api_response err = { .body = BUF_INIT(4096) };
                api_reply_error(&err, 500, "cannot wait for the work to end");
                json_writer_finish(&err.json);
                write_response(c, &err, false, false);
                buf_done(&err.body);
                c->closing = true;
            }
            return true;
        }
        if (res.status == 0)
            api_reply_error(&res, 500, "internal error: no answer");
        if (!res.content_type && json_writer_finish(&res.json) < 0)
            api_reply_error(&res, 500, "answer too large");
        json_value_free(json);
        /* A file answer goes last on its connection: what follows it in out would
         * be sent before its body. */
        bool keep_alive = req.keep_alive && !res.has_file;
        write_response(c, &res, keep_alive, req.method == HTTP_HEAD);
        buf_done(&res.body);
        if (res.has_file) {
            if (req.method == HTTP_HEAD) {
                safe_close(res.file_fd);
            } else {
                c->send_fd = res.file_fd;
                c->send_left = res.file_len;
            }
        }
        if (!keep_alive) {
            c->closing = true;
            return true;
        }
        buf_consume(&c->in, consumed);
        reset_parser(c);
    }
}

/* Moves the next block of a file answer into out. False when the file ends early
 * (it shrank): the peer, told its length, must see the connection end. */
static bool refill_from_file(struct api_conn *c)
{
    if (buf_reserve(&c->out, 256 * 1024) < 0)
        return false;
    size_t room = (size_t)MIN((uint64_t)(c->out.cap - c->out.len), c->send_left);
    ssize_t n;
    do
        n = read(c->send_fd, c->out.data + c->out.len, room);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return false;
    c->out.len += (size_t)n;
    c->send_left -= (uint64_t)n;
    if (c->send_left == 0)
        c->send_fd = safe_close(c->send_fd);
    return true;
}

/* The work behind a pending answer ended: the answer goes out, and the connection
 * closes after it. */
static void on_pending(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct api_conn *c = data;
    (void)events;
    evloop_del(loop, fd);
    struct api_pending *p = TAKE_PTR(c->pending);
    struct api_response res = { .body = BUF_INIT(16 * 1024 * 1024) };
    p->finish(p, &res);
    p->free(p);
    if (res.status == 0)
        api_reply_error(&res, 500, "internal error: no answer");
    if (!res.content_type && json_writer_finish(&res.json) < 0)
        api_reply_error(&res, 500, "answer too large");
    write_response(c, &res, false, false);
    buf_done(&res.body);
    if (res.has_file) {
        c->send_fd = res.file_fd;
        c->send_left = res.file_len;
    }
    c->closing = true;
    c->last_active_ms = now_ms();
    flush(c);
}

static void flush(struct api_conn *c)
{
    while (c->out.len > 0 || c->send_left > 0) {
        if (c->out.len == 0 && !refill_from_file(c)) {
            conn_close(c);
            return;
        }
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                evloop_mod(c->server->loop, c->fd, EPOLLIN | EPOLLOUT);
                return;
            }
            conn_close(c);
            return;
        }
        buf_consume(&c->out, (size_t)n);
    }
    if (c->closing && c->discard == 0 && !c->pending) {
        conn_close(c);
        return;
    }
    /* While an answer is prepared nothing more is read: the next request waits. */
    evloop_mod(c->server->loop, c->fd, c->pending ? 0 : EPOLLIN);
}

static void on_conn(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct api_conn *c = data;
    c->last_active_ms = now_ms();
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR) && c->discard > 0) {
        discard_body(c);
    } else if (events & EPOLLIN && !c->closing) {
        for (;;) {
            int r = buf_reserve(&c->in, 16 * 1024);
            if (r < 0) {
                /* The peer sent more than a head and a body may hold. */
                struct api_response res = { .body = BUF_INIT(4096) };
                api_reply_error(&res, 413, "request too large");
                write_response(c, &res, false, false);
                buf_done(&res.body);
                c->closing = true;
                break;
            }
            ssize_t n = recv(fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN)
                    break;
                conn_close(c);
                return;
            }
            if (n == 0) {
                if (c->out.len == 0 && c->send_left == 0) {
                    conn_close(c);
                    return;
                }
                c->closing = true;
                break;
            }
            c->in.len += (size_t)n;
            c->in.data[c->in.len] = 0;
            if (!process(c))
                return;
            if (c->closing || c->unpacking)
                break;
        }
    } else if (events & (EPOLLHUP | EPOLLERR) && !(events & EPOLLOUT)) {
        conn_close(c);
        return;
    }
    flush(c);
}

/* Makes room for one more connection when the table is full, so that whoever opens
 * API_MAX_CONNECTIONS and sends nothing does not shut everyone else out: closes the
 * connection that has been quiet longest, one between requests if there is any (a
 * request in flight, a half-read upload, an answer still being sent, goes last). */
static void evict_idlest(struct api_server *s)
{
    struct api_conn *victim = NULL;
    bool victim_busy = true;
    for (struct api_conn *c = s->conns; c; c = c->next) {
        if (c->unpacking || c->pending)
            continue;   /* its answer is on the way; closing it would kill the work */
        bool busy = c->in.len > 0 || c->out.len > 0 || c->send_left > 0 || c->pending || c->upload || c->discard > 0;
        if (!victim || (victim_busy && !busy) ||
            (busy == victim_busy && c->last_active_ms < victim->last_active_ms)) {
            victim = c;
            victim_busy = busy;
        }
    }
    if (victim) {
        log_warning("api: %zu connections open: closing the one quiet longest", s->n_conns);
        conn_close(victim);
    }
}

static void on_accept(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct api_server *s = data;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EINTR)
                log_warning_errno(errno, "api: accept");
            return;
        }
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
            close(cfd);
            continue;
        }
        if (s->n_conns >= API_MAX_CONNECTIONS)
            evict_idlest(s);
        struct api_conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(cfd);
            continue;
        }
        c->server = s;
        c->fd = cfd;
        c->send_fd = -1;
        c->peer_uid = cred.uid;
        c->last_active_ms = now_ms();
        buf_init(&c->in, API_MAX_HEAD + API_MAX_BODY + 64 * 1024);
        buf_init(&c->out, 32 * 1024 * 1024);
        reset_parser(c);
        if (evloop_add(loop, cfd, EPOLLIN, on_conn, c) < 0) {
            close(cfd);
            free(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns)
            s->conns->pprev = &c->next;
        c->pprev = &s->conns;
        s->conns = c;
        s->n_conns++;
    }
}

int api_server_new(struct evloop *loop, const struct api_config *cfg, struct api_server **ret)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(cfg->socket_path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, cfg->socket_path);

    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* A socket file left by a daemon that died is replaced; one that answers belongs
     * to a live daemon and is not ours to take. */
    _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return -EADDRINUSE;
    unlink(cfg->socket_path);
    /* Bind under a umask that leaves no window in which others could connect. */
    mode_t old = umask(0077);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0)
        return -errno;
    /* panel.sock is for the front's workers, which run as the front's group: they
     * connect through the group bit. Only root can give the file away. */
    bool panel = cfg->auth == API_AUTH_PANEL;
    if (panel && geteuid() == 0 && chown(cfg->socket_path, 0, cfg->socket_gid) < 0)
        return -errno;
    if (chmod(cfg->socket_path, panel ? 0660 : 0600) < 0 || listen(fd, 128) < 0)
        return -errno;

    struct api_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    s->cfg = *cfg;
    s->socket_path = strdup(cfg->socket_path);
    s->listen_fd = TAKE_FD(fd);
    r = api_auth_new(&s->cfg, &s->auth);
    if (r >= 0)
        r = evloop_add(loop, s->listen_fd, EPOLLIN, on_accept, s);
    if (r < 0 || !s->socket_path) {
        api_server_free(s);
        return r < 0 ? r : -ENOMEM;
    }
    *ret = s;
    return 0;
}

void api_server_free(struct api_server *s)
{
    if (!s)
        return;
    while (s->conns)
        conn_close(s->conns);
    /* Restores whose clients went away are nobody's connection's. */
    api_restore_stop_all();
    if (s->listen_fd >= 0) {
        evloop_del(s->loop, s->listen_fd);
        close(s->listen_fd);
    }
    if (s->socket_path)
        unlink(s->socket_path);
    free(s->socket_path);
    api_auth_free(s->auth);
    free(s);
}
