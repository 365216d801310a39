/* Tests for src/common: util (size/cpu parsing), buf (limits), fs, evloop timers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/evloop.h"
#include "common/fs.h"
#include "common/util.h"

static void test_parse_size(void **state)
{
    uint64_t v;
    assert_int_equal(parse_size("256M", &v), 0);
    assert_int_equal(v, 256ULL << 20);
    assert_int_equal(parse_size("1g", &v), 0);
    assert_int_equal(v, 1ULL << 30);
    assert_int_equal(parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(parse_size("", &v), -EINVAL);
    assert_int_equal(parse_size("M", &v), -EINVAL);
    assert_int_equal(parse_size("12X", &v), -EINVAL);
    assert_int_equal(parse_size("-5M", &v), -EINVAL);
    assert_int_equal(parse_size("99999999999999999999", &v), -ERANGE);
    assert_int_equal(parse_size("99999999999T", &v), -ERANGE);
}

static void test_format_size(void **state)
{
    char out[16];
    format_size(256ULL << 20, out, sizeof(out));
    assert_string_equal(out, "256M");
    format_size(1536ULL << 20, out, sizeof(out));
    assert_string_equal(out, "1.5G");
    format_size(100, out, sizeof(out));
    assert_string_equal(out, "100");
}

static void test_parse_cpu(void **state)
{
    uint32_t m;
    assert_int_equal(parse_cpu("0.5", &m), 0);
    assert_int_equal(m, 500);
    assert_int_equal(parse_cpu("2", &m), 0);
    assert_int_equal(m, 2000);
    assert_int_equal(parse_cpu("0.125", &m), 0);
    assert_int_equal(m, 125);
    assert_int_equal(parse_cpu("0.1234", &m), -EINVAL);
    assert_int_equal(parse_cpu("0", &m), -ERANGE);
    assert_int_equal(parse_cpu(".5", &m), -EINVAL);
    assert_int_equal(parse_cpu("1.", &m), -EINVAL);
    assert_int_equal(parse_cpu("abc", &m), -EINVAL);
}

static void test_buf_limit(void **state)
{
    struct buf b = BUF_INIT(10);
    assert_int_equal(buf_append_str(&b, "12345"), 0);
    assert_int_equal(buf_printf(&b, "%d", 67890), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "1234567890");
    assert_int_equal(buf_append_char(&b, 'x'), -ENOBUFS);
    assert_int_equal(b.len, 10);
    buf_consume(&b, 4);
    assert_string_equal(b.data, "567890");
    char *s = buf_steal(&b);
    assert_string_equal(s, "567890");
    free(s);
    assert_null(b.data);
    buf_done(&b);
}

static void test_fs_atomic_and_rm(void **state)
{
    char dir[] = "/tmp/berth-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], sub[256];
    snprintf(path, sizeof(path), "%s/file", dir);
    assert_int_equal(write_file_atomic(path, "hello", 5, 0640), 0);
    char *data;
    size_t len;
    assert_int_equal(read_file(path, 100, &data, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    free(data);
    assert_int_equal(read_file(path, 3, &data, &len), -EFBIG);

    snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
    assert_int_equal(mkdir_p(sub, 0755), 0);
    /* A symlink in the tree must be removed, never followed. */
    snprintf(sub, sizeof(sub), "%s/a/b/link", dir);
    assert_int_equal(symlink("/etc", sub), 0);
    snprintf(sub, sizeof(sub), "%s/a", dir);
    assert_int_equal(rm_rf(sub), 0);
    struct stat st;
    assert_int_equal(stat("/etc/passwd", &st), 0);
    assert_int_equal(rm_rf(dir), 0);
    assert_int_equal(stat(dir, &st), -1);
}

static void test_open_beneath(void **state)
{
    char dir[] = "/tmp/berth-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int root = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(root >= 0);
    assert_int_equal(symlinkat("/etc/passwd", root, "escape"), 0);
    assert_int_equal(symlinkat("../../etc/passwd", root, "climb"), 0);
    int fd = open_beneath(root, "escape", O_RDONLY, 0, 0);
    assert_int_equal(fd, -EXDEV);
    fd = open_beneath(root, "climb", O_RDONLY, 0, 0);
    assert_int_equal(fd, -EXDEV);
    fd = open_beneath(root, "new", O_WRONLY | O_CREAT, 0600, 0);
    assert_true(fd >= 0);
    close(fd);
    close(root);
    rm_rf(dir);
}

static int fired[4], n_fired;
static void on_timer(struct evloop *l, struct ev_timer *t, void *data)
{
    fired[n_fired++] = (int)(intptr_t)data;
    if (n_fired == 3)
        evloop_quit(l);
}

static void test_evloop_timers(void **state)
{
    struct evloop *l;
    assert_int_equal(evloop_new(&l), 0);
    evloop_timer_add(l, 30, on_timer, (void *)3);
    evloop_timer_add(l, 10, on_timer, (void *)1);
    struct ev_timer *cancelled = evloop_timer_add(l, 15, on_timer, (void *)9);
    evloop_timer_add(l, 20, on_timer, (void *)2);
    evloop_timer_cancel(l, cancelled);
    assert_int_equal(evloop_run(l), 0);
    assert_int_equal(n_fired, 3);
    assert_int_equal(fired[0], 1);
    assert_int_equal(fired[1], 2);
    assert_int_equal(fired[2], 3);
    evloop_free(l);
}

/* Deferred calls: each runs once after the next poll, a call queued from its own
 * call waits for the pass after, and a cancelled one never runs. */
struct defer_log {
    int io_passes;            /* times the always-readable pipe was reported */
    int turns;                /* calls of the self-requeuing deferral */
    int io_seen[8];           /* io_passes at each of those calls */
    int cancelled_ran;
    struct ev_defer again, victim, killer;
};

static void on_readable(struct evloop *l, int fd, uint32_t events, void *data)
{
    (void)l, (void)fd, (void)events;
    ((struct defer_log *)data)->io_passes++;
}

static void on_cancelled(struct evloop *l, struct ev_defer *d, void *data)
{
    (void)l, (void)d;
    ((struct defer_log *)data)->cancelled_ran++;
}

static void on_killer(struct evloop *l, struct ev_defer *d, void *data)
{
    (void)l, (void)d;
    evloop_defer_cancel(&((struct defer_log *)data)->victim);   /* due later in this same pass */
}

static void on_again(struct evloop *l, struct ev_defer *d, void *data)
{
    struct defer_log *log = data;
    log->io_seen[log->turns++] = log->io_passes;
    if (log->turns == 4)
        evloop_quit(l);
    else
        evloop_defer(l, d, on_again, log);
}

static void test_evloop_defer(void **state)
{
    (void)state;
    struct evloop *l;
    assert_int_equal(evloop_new(&l), 0);
    struct defer_log log = { 0 };
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(evloop_add(l, p[0], EPOLLIN, on_readable, &log), 0);
    evloop_defer(l, &log.again, on_again, &log);
    evloop_defer(l, &log.again, on_cancelled, &log);   /* pending already: no change */
    evloop_defer(l, &log.killer, on_killer, &log);
    evloop_defer(l, &log.victim, on_cancelled, &log);
    assert_int_equal(evloop_run(l), 0);
    assert_int_equal(log.cancelled_ran, 0);
    assert_int_equal(log.turns, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(log.io_seen[i], i + 1);   /* one poll between turns */
    assert_null(log.victim.next);
    evloop_del(l, p[0]);
    close(p[0]);
    close(p[1]);

    /* With nothing ready and only a far timer, a pending call keeps the poll
     * from waiting (else this test would sit for a minute). */
    struct defer_log quiet = { 0 };
    struct ev_timer *far = evloop_timer_add(l, 60000, on_timer, (void *)7);
    evloop_defer(l, &quiet.again, on_again, &quiet);
    assert_int_equal(evloop_run(l), 0);
    assert_int_equal(quiet.turns, 4);
    evloop_timer_cancel(l, far);
    evloop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_format_size),
        cmocka_unit_test(test_parse_cpu),
        cmocka_unit_test(test_buf_limit),
        cmocka_unit_test(test_fs_atomic_and_rm),
        cmocka_unit_test(test_open_beneath),
        cmocka_unit_test(test_evloop_timers),
        cmocka_unit_test(test_evloop_defer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
