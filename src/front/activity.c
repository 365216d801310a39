/* Requests per site, counted by each worker and reported to the supervisor over
 * the control socket (the worker -> berthd direction of the same SOCK_SEQPACKET
 * pair), and the encoding of those reports. The worker keeps entries only for sites
 * with requests not yet reported: an entry is freed once its figures went out, so
 * the table never holds more than the sites active within a second or so. */
#include <sys/socket.h>

#include "front/front-worker.h"

#define REPORT_EVERY_MS 1000
#define NAME_MAX_LEN 63
#define N_FIGURES 8
#define ENTRY_FIXED (4 + N_FIGURES * 8)

struct site_activity {
    struct site_activity *next;
    char name[NAME_MAX_LEN + 1];
    uint64_t requests, status[4], bytes, upstream_ok, upstream_failed;
};

/* ---- encoding ---- */

int front_msg_activity_append(struct buf *out, const struct front_site_activity *a)
{
    size_t n = a->name ? strlen(a->name) : 0;
    if (n == 0 || n > NAME_MAX_LEN)
        return -EINVAL;
    if (out->len == 0) {
        uint32_t head[2] = { FRONT_MSG_ACTIVITY, 0 };
        int r = buf_append(out, head, sizeof(head));
        if (r < 0)
            return r;
    }
    if (out->len + ENTRY_FIXED + n > FRONT_ACTIVITY_MSG_MAX)
        return -ENOBUFS;
    uint32_t len = (uint32_t)n;
    uint64_t v[N_FIGURES] = { a->requests, a->status[0], a->status[1], a->status[2], a->status[3], a->bytes,
                              a->upstream_ok, a->upstream_failed };
    int r = buf_append(out, &len, 4);
    if (r >= 0)
        r = buf_append(out, a->name, n);
    if (r >= 0)
        r = buf_append(out, v, sizeof(v));
    if (r < 0)
        return r;
    uint32_t count;
    memcpy(&count, out->data + 4, 4);
    count++;
    memcpy(out->data + 4, &count, 4);
    return 0;
}

/* Walks the entries of a report; with fn NULL it only checks them. */
static int walk(const char *msg, size_t len, void (*fn)(void *, const struct front_site_activity *),
                void *data)
{
    uint32_t head[2];
    if (len < sizeof(head) || len > FRONT_ACTIVITY_MSG_MAX)
        return -EBADMSG;
    memcpy(head, msg, sizeof(head));
    if (head[0] != FRONT_MSG_ACTIVITY || head[1] > len / ENTRY_FIXED)
        return -EBADMSG;
    size_t off = sizeof(head);
    for (uint32_t i = 0; i < head[1]; i++) {
        uint32_t n;
        if (len - off < 4)
            return -EBADMSG;
        memcpy(&n, msg + off, 4);
        off += 4;
        if (n == 0 || n > NAME_MAX_LEN || len - off < n + N_FIGURES * 8)
            return -EBADMSG;
        char name[NAME_MAX_LEN + 1];
        memcpy(name, msg + off, n);
        name[n] = 0;
        if (memchr(name, 0, n))
            return -EBADMSG;
        off += n;
        uint64_t v[N_FIGURES];
        memcpy(v, msg + off, sizeof(v));
        off += sizeof(v);
        /* Each class is part of the whole; the sum cannot wrap since each term is
         * checked against requests first. */
        uint64_t sum = 0;
        for (int k = 1; k <= 4; k++) {
            if (v[k] > v[0] || sum > v[0] - v[k])
                return -EBADMSG;
            sum += v[k];
        }
        if (v[6] > v[0] || v[7] > v[0] - v[6])
            return -EBADMSG;   /* upstream outcomes are requests too */
        if (fn)
            fn(data, &(struct front_site_activity){ .name = name, .requests = v[0],
                                                    .status = { v[1], v[2], v[3], v[4] },
                                                    .bytes = v[5], .upstream_ok = v[6],
                                                    .upstream_failed = v[7] });
    }
    return off == len ? 0 : -EBADMSG;
}

int front_msg_activity_decode(const char *msg, size_t len,
                              void (*fn)(void *data, const struct front_site_activity *a), void *data)
{
    int r = walk(msg, len, NULL, NULL);
    return r < 0 ? r : walk(msg, len, fn, data);
}

/* ---- the worker's counters ---- */

void front_activity_count(struct worker *w, const struct conn *c)
{
    const struct vsite *s = c->site;
    int status = c->status;
    if (!s || s->removed || status <= 0)
        return;
    size_t n = strlen(s->name);
    struct site_activity *a = front_map_get(&w->activity, s->name, n);
    if (!a) {
        if (n > NAME_MAX_LEN || !(a = calloc(1, sizeof(*a))))
            return;   /* a lost count is better than a failed request */
        memcpy(a->name, s->name, n + 1);
        if (front_map_put(&w->activity, a->name, n, a, NULL) < 0) {
            free(a);
            return;
        }
        a->next = w->activity_list;
        w->activity_list = a;
    }
    a->requests++;
    if (status >= 200 && status < 600)
        a->status[status / 100 - 2]++;
    a->bytes += c->bytes_sent;
    if (c->upstream_failed)
        a->upstream_failed++;
    else if (c->upstream_ms >= 0)
        a->upstream_ok++;
}

void front_activity_forget(struct worker *w, const char *name, size_t len)
{
    struct site_activity *a = front_map_get(&w->activity, name, len);
    if (!a)
        return;
    front_map_del(&w->activity, name, len, a);
    for (struct site_activity **p = &w->activity_list; *p; p = &(*p)->next) {
        if (*p == a) {
            *p = a->next;
            break;
        }
    }
    free(a);
}

/* Sends one report; true if it went out. */
static bool send_report(struct worker *w, struct buf *msg)
{
    for (;;) {
        ssize_t n = send(w->ctl_fd, msg->data, msg->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return true;
        if (errno != EINTR)
            return false;   /* EAGAIN: the socket is full; keep counting, try next time */
    }
}

void front_activity_report(struct worker *w)
{
    if (!w->activity_list || w->now_ms - w->activity_sent_ms < REPORT_EVERY_MS)
        return;
    w->activity_sent_ms = w->now_ms;
    struct buf msg = BUF_INIT(FRONT_ACTIVITY_MSG_MAX);
    /* Entries put in the report being built, not yet known to have gone out. */
    struct site_activity **first = &w->activity_list;
    struct site_activity **p = &w->activity_list;
    bool stop = false;
    while (!stop) {
        struct site_activity *a = *p;
        int r = a ? front_msg_activity_append(&msg, &(struct front_site_activity){
                        .name = a->name, .requests = a->requests,
                        .status = { a->status[0], a->status[1], a->status[2], a->status[3] },
                        .bytes = a->bytes, .upstream_ok = a->upstream_ok,
                        .upstream_failed = a->upstream_failed })
                  : -ENOBUFS;
        if (r >= 0) {
            p = &a->next;
            continue;
        }
        if (r != -ENOBUFS) {
            buf_done(&msg);
            return;
        }
        if (msg.len == 0 || !send_report(w, &msg)) {
            stop = true;
            break;
        }
        /* Sent: free the entries it carried (from *first up to, not including, a). */
        while (*first != a) {
            struct site_activity *done = *first;
            *first = done->next;
            front_map_del(&w->activity, done->name, strlen(done->name), done);
            free(done);
        }
        p = first;
        buf_clear(&msg);
        stop = !a;
    }
    buf_done(&msg);
}
