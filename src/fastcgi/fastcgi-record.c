/* FastCGI records: encoding what the front sends and parsing what php-fpm answers. */
#include <errno.h>

#include "fastcgi/fastcgi.h"

#define ROLE_RESPONDER 1
#define FLAG_KEEP_CONN 1

int fastcgi_header_encode(uint8_t out[static FASTCGI_HEADER_LEN], enum fastcgi_type type,
                          uint16_t request_id, size_t content_len)
{
    if (content_len > FASTCGI_MAX_CONTENT)
        return -EINVAL;
    uint8_t padding = (uint8_t)(-content_len & 7);
    out[0] = FASTCGI_VERSION;
    out[1] = (uint8_t)type;
    out[2] = (uint8_t)(request_id >> 8);
    out[3] = (uint8_t)request_id;
    out[4] = (uint8_t)(content_len >> 8);
    out[5] = (uint8_t)content_len;
    out[6] = padding;
    out[7] = 0;
    return padding;
}

static const uint8_t zeros[8];

/* One whole record; content may be NULL when content_len is 0. Reserves first so a
 * full buffer leaves no half record behind. */
static int record_write(struct buf *out, enum fastcgi_type type, uint16_t request_id,
                        const void *content, size_t content_len)
{
    uint8_t hdr[FASTCGI_HEADER_LEN];
    int padding = fastcgi_header_encode(hdr, type, request_id, content_len);
    if (padding < 0)
        return padding;
    int r = buf_reserve(out, FASTCGI_HEADER_LEN + content_len + (size_t)padding);
    if (r < 0)
        return r;
    (void)buf_append(out, hdr, sizeof(hdr));
    if (content_len)
        (void)buf_append(out, content, content_len);
    (void)buf_append(out, zeros, (size_t)padding);
    return 0;
}

int fastcgi_begin_request_write(struct buf *out, uint16_t request_id, bool keep_conn)
{
    if (request_id == 0)
        return -EINVAL;
    const uint8_t body[8] = { 0, ROLE_RESPONDER, keep_conn ? FLAG_KEEP_CONN : 0 };
    return record_write(out, FASTCGI_BEGIN_REQUEST, request_id, body, sizeof(body));
}

int fastcgi_abort_request_write(struct buf *out, uint16_t request_id)
{
    return record_write(out, FASTCGI_ABORT_REQUEST, request_id, NULL, 0);
}

int fastcgi_stdin_write(struct buf *out, uint16_t request_id, const void *data, size_t len)
{
    const char *p = data;
    /* All or nothing: a body chunk half-written would corrupt the stream. */
    size_t records = (len + FASTCGI_MAX_CONTENT - 1) / FASTCGI_MAX_CONTENT;
    int r = buf_reserve(out, len + records * (FASTCGI_HEADER_LEN + 7));
    if (r < 0)
        return r;
    while (len > 0) {
        size_t n = MIN(len, (size_t)FASTCGI_MAX_CONTENT);
        r = record_write(out, FASTCGI_STDIN, request_id, p, n);
        if (r < 0)
            return r;
        p += n;
        len -= n;
    }
    return 0;
}

int fastcgi_stdin_end(struct buf *out, uint16_t request_id)
{
    return record_write(out, FASTCGI_STDIN, request_id, NULL, 0);
}

/* ---- PARAMS ---- */

void fastcgi_params_init(struct fastcgi_params *p, struct buf *out, uint16_t request_id)
{
    *p = (struct fastcgi_params){ .out = out, .request_id = request_id, .record_start = SIZE_MAX };
}

/* Fixes the open record's header now that its length is known, and pads it. */
static int params_close_record(struct fastcgi_params *p)
{
    if (p->record_start == SIZE_MAX)
        return 0;
    size_t content = p->out->len - p->record_start - FASTCGI_HEADER_LEN;
    uint8_t hdr[FASTCGI_HEADER_LEN];
    int padding = fastcgi_header_encode(hdr, FASTCGI_PARAMS, p->request_id, content);
    if (padding < 0)
        return padding;
    memcpy(p->out->data + p->record_start, hdr, sizeof(hdr));
    p->record_start = SIZE_MAX;
    return buf_append(p->out, zeros, (size_t)padding);
}

static size_t length_size(size_t n)
{
    return n < 128 ? 1 : 4;
}

static void length_encode(uint8_t *out, size_t n)
{
    if (n < 128) {
        out[0] = (uint8_t)n;
        return;
    }
    out[0] = (uint8_t)(0x80 | (n >> 24));
    out[1] = (uint8_t)(n >> 16);
    out[2] = (uint8_t)(n >> 8);
    out[3] = (uint8_t)n;
}

int fastcgi_params_add(struct fastcgi_params *p, const char *name, size_t name_len,
                       const char *value, size_t value_len)
{
    if (p->error < 0)
        return p->error;
    /* Padding never makes a record's content longer, so a record can hold up to
     * FASTCGI_MAX_CONTENT bytes of pairs. */
    if (name_len > FASTCGI_MAX_CONTENT || value_len > FASTCGI_MAX_CONTENT)
        return p->error = -E2BIG;
    size_t pair = length_size(name_len) + length_size(value_len) + name_len + value_len;
    if (pair > FASTCGI_MAX_CONTENT)
        return p->error = -E2BIG;
    int r;
    if (p->record_start != SIZE_MAX &&
        p->out->len - p->record_start - FASTCGI_HEADER_LEN + pair > FASTCGI_MAX_CONTENT) {
        r = params_close_record(p);
        if (r < 0)
            return p->error = r;
    }
    r = buf_reserve(p->out, FASTCGI_HEADER_LEN + pair + 7);
    if (r < 0)
        return p->error = r;
    if (p->record_start == SIZE_MAX) {
        p->record_start = p->out->len;
        (void)buf_append(p->out, zeros, FASTCGI_HEADER_LEN);   /* fixed when closed */
    }
    uint8_t lens[8];
    size_t nl = length_size(name_len);
    length_encode(lens, name_len);
    length_encode(lens + nl, value_len);
    (void)buf_append(p->out, lens, nl + length_size(value_len));
    (void)buf_append(p->out, name, name_len);
    (void)buf_append(p->out, value, value_len);
    return 0;
}

int fastcgi_params_add_str(struct fastcgi_params *p, const char *name, const char *value)
{
    return fastcgi_params_add(p, name, strlen(name), value, strlen(value));
}

int fastcgi_params_end(struct fastcgi_params *p)
{
    if (p->error < 0)
        return p->error;
    int r = params_close_record(p);
    if (r >= 0)
        r = record_write(p->out, FASTCGI_PARAMS, p->request_id, NULL, 0);
    if (r < 0)
        p->error = r;
    return r;
}

/* ---- response parser ---- */

enum {
    S_HEADER,     /* gathering the 8 header bytes */
    S_CONTENT,    /* inside STDOUT/STDERR content */
    S_END_BODY,   /* gathering END_REQUEST's 8 bytes */
    S_PADDING,
    S_DONE,
};

void fastcgi_response_init(struct fastcgi_response *r, uint16_t request_id, size_t max_stderr)
{
    *r = (struct fastcgi_response){ .request_id = request_id, .state = S_HEADER };
    buf_init(&r->stderr_buf, max_stderr);
}

void fastcgi_response_done(struct fastcgi_response *r)
{
    if (r)
        buf_done(&r->stderr_buf);
}

static void after_content(struct fastcgi_response *r)
{
    if (r->padding_left > 0)
        r->state = S_PADDING;
    else
        r->state = r->ended ? S_DONE : S_HEADER;
}

/* Checks a complete header and sets the state for what follows it. */
static int header_done(struct fastcgi_response *r)
{
    const uint8_t *h = r->hdr;
    uint16_t id = (uint16_t)(h[2] << 8 | h[3]);
    r->type = h[1];
    r->content_left = (size_t)(h[4] << 8 | h[5]);
    r->padding_left = h[6];
    r->got = 0;
    if (h[0] != FASTCGI_VERSION || id != r->request_id)
        return -EPROTO;
    switch (r->type) {
    case FASTCGI_STDOUT:
        if (r->stdout_closed)
            return -EPROTO;
        if (r->content_left == 0)
            r->stdout_closed = true;
        break;
    case FASTCGI_STDERR:
        /* php-fpm never closes STDERR with an empty record, but the spec allows
         * it; one is accepted and ignored. */
        break;
    case FASTCGI_END_REQUEST:
        if (r->content_left != 8)
            return -EPROTO;
        r->state = S_END_BODY;
        return 0;
    default:
        return -EPROTO;
    }
    if (r->content_left > 0)
        r->state = S_CONTENT;
    else
        after_content(r);
    return 0;
}

int fastcgi_response_parse(struct fastcgi_response *r, const char *data, size_t len,
                           enum fastcgi_event *ret_event, const char **ret_data, size_t *ret_len)
{
    if (len == 0 || r->state == S_DONE)
        return -EPROTO;
    size_t n;
    int e;
    switch (r->state) {
    case S_HEADER:
        n = MIN(len, FASTCGI_HEADER_LEN - r->got);
        memcpy(r->hdr + r->got, data, n);
        r->got += n;
        if (r->got == FASTCGI_HEADER_LEN) {
            e = header_done(r);
            if (e < 0)
                return e;
        }
        *ret_event = FASTCGI_EVENT_NONE;
        return (int)n;
    case S_CONTENT:
        n = MIN(len, r->content_left);
        r->content_left -= n;
        if (r->type == FASTCGI_STDOUT) {
            r->stdout_total += n;
            *ret_event = FASTCGI_EVENT_STDOUT;
            *ret_data = data;
            *ret_len = n;
        } else {
            size_t room = r->stderr_buf.max - r->stderr_buf.len;
            size_t keep = MIN(n, room);
            if (keep > 0) {
                e = buf_append(&r->stderr_buf, data, keep);
                if (e < 0)
                    return e;
            }
            r->stderr_dropped += n - keep;
            *ret_event = FASTCGI_EVENT_NONE;
        }
        if (r->content_left == 0)
            after_content(r);
        return (int)n;
    case S_END_BODY:
        n = MIN(len, sizeof(r->end_body) - r->got);
        memcpy(r->end_body + r->got, data, n);
        r->got += n;
        *ret_event = FASTCGI_EVENT_NONE;
        if (r->got == sizeof(r->end_body)) {
            const uint8_t *b = r->end_body;
            r->app_status = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
            r->protocol_status = b[4];
            r->ended = true;
            after_content(r);
            /* Reported once the padding is consumed too, so that "ended" means the
             * connection holds no more bytes of this request. */
            if (r->state == S_DONE)
                *ret_event = FASTCGI_EVENT_END;
        }
        return (int)n;
    case S_PADDING:
        n = MIN(len, r->padding_left);
        r->padding_left -= n;
        *ret_event = FASTCGI_EVENT_NONE;
        if (r->padding_left == 0) {
            after_content(r);
            if (r->state == S_DONE)
                *ret_event = FASTCGI_EVENT_END;
        }
        return (int)n;
    }
    return -EPROTO;
}
