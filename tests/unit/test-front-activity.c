/* Tests for src/front/activity.c: the encoding of the workers' activity reports,
 * and the supervisor-side checks that refuse a malformed or hostile report whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include <fcntl.h>
#include <sys/socket.h>

#include "front/front-worker.h"

struct seen {
    size_t n;
    char names[400][64];
    struct front_site_activity a[400];
};

static void collect(void *data, const struct front_site_activity *a)
{
    struct seen *s = data;
    assert_true(s->n < 400);
    snprintf(s->names[s->n], 64, "%s", a->name);
    s->a[s->n] = *a;
    s->n++;
}

static void test_round_trip(void **state)
{
    struct buf b = BUF_INIT(FRONT_ACTIVITY_MSG_MAX);
    struct front_site_activity a = { .name = "blog", .requests = 10, .status = { 5, 1, 3, 1 }, .bytes = 12345,
                                     .upstream_ok = 6, .upstream_failed = 1 };
    assert_int_equal(front_msg_activity_append(&b, &a), 0);
    a = (struct front_site_activity){ .name = "shop", .requests = 2, .status = { 0, 0, 0, 0 }, .bytes = 0 };
    assert_int_equal(front_msg_activity_append(&b, &a), 0);
    struct seen s = { 0 };
    assert_int_equal(front_msg_activity_decode(b.data, b.len, collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.names[0], "blog");
    assert_int_equal(s.a[0].requests, 10);
    assert_int_equal(s.a[0].status[2], 3);
    assert_int_equal(s.a[0].bytes, 12345);
    assert_int_equal(s.a[0].upstream_ok, 6);
    assert_int_equal(s.a[0].upstream_failed, 1);
    assert_string_equal(s.names[1], "shop");
    assert_int_equal(s.a[1].requests, 2);
    buf_done(&b);
}

static void test_many_sites_split(void **state)
{
    /* A report stays under its maximum: the 300th site does not fit in one. */
    struct buf b = BUF_INIT(FRONT_ACTIVITY_MSG_MAX);
    char name[64];
    int r = 0, i;
    for (i = 0; i < 300 && r == 0; i++) {
        snprintf(name, sizeof(name), "site-with-a-rather-long-name-for-the-test-%03d", i);
        r = front_msg_activity_append(&b, &(struct front_site_activity){ .name = name, .requests = 1 });
    }
    assert_int_equal(r, -ENOBUFS);
    assert_true(b.len <= FRONT_ACTIVITY_MSG_MAX);
    struct seen s = { 0 };
    assert_int_equal(front_msg_activity_decode(b.data, b.len, collect, &s), 0);
    assert_int_equal(s.n, (size_t)i - 1);
    assert_int_equal(front_msg_activity_append(&b, &(struct front_site_activity){ .name = "" }), -EINVAL);
    buf_done(&b);
}

static void test_hostile_reports_refused(void **state)
{
    struct buf b = BUF_INIT(FRONT_ACTIVITY_MSG_MAX);
    struct front_site_activity a = { .name = "blog", .requests = 3, .status = { 1, 1, 1, 0 }, .bytes = 1 };
    assert_int_equal(front_msg_activity_append(&b, &a), 0);
    assert_int_equal(front_msg_activity_append(&b, &a), 0);
    struct seen s = { 0 };
    char copy[512];
    assert_true(b.len < sizeof(copy));

    /* Every truncation fails, and fn is never called: all or nothing. */
    for (size_t n = 0; n < b.len; n++) {
        memcpy(copy, b.data, n);
        assert_int_equal(front_msg_activity_decode(copy, n, collect, &s), -EBADMSG);
    }
    /* Trailing bytes. */
    memcpy(copy, b.data, b.len);
    copy[b.len] = 0;
    assert_int_equal(front_msg_activity_decode(copy, b.len + 1, collect, &s), -EBADMSG);
    /* A count larger than the entries present, a huge count, another type. */
    uint32_t v;
    memcpy(copy, b.data, b.len);
    v = 3;
    memcpy(copy + 4, &v, 4);
    assert_int_equal(front_msg_activity_decode(copy, b.len, collect, &s), -EBADMSG);
    v = UINT32_MAX;
    memcpy(copy + 4, &v, 4);
    assert_int_equal(front_msg_activity_decode(copy, b.len, collect, &s), -EBADMSG);
    memcpy(copy, b.data, b.len);
    v = FRONT_MSG_UPSERT;
    memcpy(copy, &v, 4);
    assert_int_equal(front_msg_activity_decode(copy, b.len, collect, &s), -EBADMSG);
    /* A name length past the message, a zero one, a NUL inside the name. */
    memcpy(copy, b.data, b.len);
    v = 1000;
    memcpy(copy + 8, &v, 4);
    assert_int_equal(front_msg_activity_decode(copy, b.len, collect, &s), -EBADMSG);
    v = 0;
    memcpy(copy + 8, &v, 4);
    assert_int_equal(front_msg_activity_decode(copy, b.len, collect, &s), -EBADMSG);
    memcpy(copy, b.data, b.len);
    copy[12 + 1] = 0;
    assert_int_equal(front_msg_activity_decode(copy, b.len, collect, &s), -EBADMSG);
    /* Status classes adding up to more than the requests (the second entry's 5xx),
     * and classes that would wrap a 64-bit sum. */
    memcpy(copy, b.data, b.len);
    size_t second = 8 + (4 + 4 + 8 * 8);
    uint64_t big = 3;
    memcpy(copy + second + 4 + 4 + 4 * 8, &big, 8);
    assert_int_equal(front_msg_activity_decode(copy, b.len, collect, &s), -EBADMSG);
    memcpy(copy, b.data, b.len);
    uint64_t wrap[5] = { UINT64_MAX, UINT64_MAX, UINT64_MAX, 2, 0 };
    memcpy(copy + 8 + 4 + 4, wrap, sizeof(wrap));
    assert_int_equal(front_msg_activity_decode(copy, b.len, collect, &s), -EBADMSG);
    /* Backend outcomes beyond the requests. */
    memcpy(copy, b.data, b.len);
    uint64_t outcomes[2] = { 2, 2 };
    memcpy(copy + second + 4 + 4 + 6 * 8, outcomes, sizeof(outcomes));
    assert_int_equal(front_msg_activity_decode(copy, b.len, collect, &s), -EBADMSG);
    /* Oversized. */
    assert_int_equal(front_msg_activity_decode(b.data, FRONT_ACTIVITY_MSG_MAX + 1, collect, &s), -EBADMSG);
    assert_int_equal(s.n, 0);
    /* The untouched report still passes. */
    assert_int_equal(front_msg_activity_decode(b.data, b.len, collect, &s), 0);
    assert_int_equal(s.n, 2);
    buf_done(&b);
}

struct sums {
    size_t messages, entries;
    uint64_t requests, s5xx, bytes, upstream_ok, upstream_failed;
};

/* A request of site s answered with status and bytes, with no backend involved. */
static void count(struct worker *w, struct vsite *s, int status, uint64_t bytes)
{
    front_activity_count(w, &(struct conn){ .site = s, .status = status, .bytes_sent = bytes, .upstream_ms = -1 });
}

static void sum(void *data, const struct front_site_activity *a)
{
    struct sums *t = data;
    t->entries++;
    t->requests += a->requests;
    t->s5xx += a->status[3];
    t->bytes += a->bytes;
    t->upstream_ok += a->upstream_ok;
    t->upstream_failed += a->upstream_failed;
}

/* Reads every report waiting on fd. */
static void drain(int fd, struct sums *t)
{
    static char msg[FRONT_ACTIVITY_MSG_MAX + 1];
    for (;;) {
        ssize_t n = recv(fd, msg, sizeof(msg), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0)
            return;
        assert_true((size_t)n <= FRONT_ACTIVITY_MSG_MAX);
        t->messages++;
        assert_int_equal(front_msg_activity_decode(msg, (size_t)n, sum, t), 0);
    }
}

static void test_worker_reports_without_blocking(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    int small = 64 * 1024;   /* room for a few reports, so it can be filled */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    static struct worker w;
    w = (struct worker){ .ctl_fd = sv[0], .now_ms = 10000 };
    front_map_init(&w.activity);

    /* 500 sites with requests: more than one report holds. */
    static struct vsite sites[500];
    static char names[500][32];
    for (int i = 0; i < 500; i++) {
        snprintf(names[i], sizeof(names[i]), "site-number-%d", i);
        sites[i] = (struct vsite){ .name = names[i] };
        count(&w, &sites[i], 200, 10);
        count(&w, &sites[i], 503, 1);
    }
    count(&w, NULL, 404, 1);          /* unknown host: no site */
    count(&w, &sites[0], 0, 0);       /* no answer was begun */
    /* Backend outcomes: one answered by the backend, one it failed (504). */
    front_activity_count(&w, &(struct conn){ .site = &sites[1], .status = 200, .upstream_ms = 3 });
    front_activity_count(&w, &(struct conn){ .site = &sites[1], .status = 504, .upstream_ms = -1,
                                             .upstream_failed = true });

    /* Fill the socket: the report must not block, and must keep what it could not send. */
    char junk[1024] = { 0 };
    while (send(sv[0], junk, sizeof(junk), MSG_DONTWAIT) > 0)
        ;
    front_activity_report(&w);
    assert_int_equal(w.activity.len, 500);
    char buf[2048];
    while (recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
    /* More requests meanwhile are added to what waits. */
    count(&w, &sites[7], 200, 5);
    struct sums t = { 0 };
    for (int round = 0; round < 100 && w.activity.len > 0; round++) {
        w.now_ms += 1000;
        front_activity_report(&w);
        drain(sv[1], &t);
    }
    assert_int_equal(w.activity.len, 0);
    assert_null(w.activity_list);
    assert_true(t.messages >= 2);
    assert_int_equal(t.entries, 500);
    assert_int_equal(t.requests, 1003);
    assert_int_equal(t.s5xx, 501);
    assert_int_equal(t.upstream_ok, 1);
    assert_int_equal(t.upstream_failed, 1);
    assert_int_equal(t.bytes, 500 * 11 + 5);
    /* Nothing new: nothing sent. */
    w.now_ms += 1000;
    front_activity_report(&w);
    t = (struct sums){ 0 };
    drain(sv[1], &t);
    assert_int_equal(t.messages, 0);
    front_map_done(&w.activity);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_many_sites_split),
        cmocka_unit_test(test_hostile_reports_refused),
        cmocka_unit_test(test_worker_reports_without_blocking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
