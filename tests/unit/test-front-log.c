/* Tests for src/front/accesslog.c: time format, escaping, buffering, rotation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include "common/fs.h"
#include "front/front-internal.h"

static void test_time_format(void **state)
{
    char out[32];
    front_log_time_format(971186136, out, sizeof(out));
    assert_string_equal(out, "[10/Oct/2000:13:55:36 +0000]");
}

static void test_escape(void **state)
{
    struct buf b = BUF_INIT(1024);
    assert_int_equal(front_log_escape(&b, "a\"b\\c\nd\x7f\xff e", 11), 0);
    assert_string_equal(b.data, "a\\x22b\\x5cc\\x0ad\\x7f\\xff e");
    buf_clear(&b);
    assert_int_equal(front_log_escape(&b, NULL, 0), 0);
    assert_string_equal(b.data, "-");
    buf_done(&b);
}

static char *slurp(const char *path)
{
    char *data = NULL;
    size_t n;
    if (read_file(path, 1 << 20, &data, &n) < 0)
        return NULL;
    return data;
}

static void test_buffer_flush_rotate(void **state)
{
    char dir[] = "/tmp/test-front-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], p1[300], p2[300], p3[300];
    snprintf(path, sizeof(path), "%s/access.log", dir);
    snprintf(p1, sizeof(p1), "%s.1", path);
    snprintf(p2, sizeof(p2), "%s.2", path);
    snprintf(p3, sizeof(p3), "%s.3", path);
    struct front_log *log, *same;
    assert_int_equal(front_log_open(path, 100, 2, &log), 0);
    /* Opening the same path again shares the object (a site updated in place). */
    assert_int_equal(front_log_open(path, 100, 2, &same), 0);
    assert_ptr_equal(log, same);
    front_log_unref(same);

    front_log_append(log, "line one\n", 9);
    char *d = slurp(path);
    assert_string_equal(d, "");   /* buffered, not written yet */
    free(d);
    assert_int_equal(front_log_flush(log), 0);
    d = slurp(path);
    assert_string_equal(d, "line one\n");
    free(d);

    /* Past 100 bytes a flush rotates: access.log -> .1 -> .2, at most 2 kept. */
    for (int round = 0; round < 4; round++) {
        char line[128];
        int n = snprintf(line, sizeof(line), "round %d %0100d\n", round, 0);
        front_log_append(log, line, (size_t)n);
        assert_int_equal(front_log_flush(log), 0);
    }
    assert_int_equal(access(p1, F_OK), 0);
    assert_int_equal(access(p2, F_OK), 0);
    assert_int_not_equal(access(p3, F_OK), 0);
    d = slurp(p1);
    assert_non_null(strstr(d, "round 3"));
    free(d);

    /* Reopen after an outside rename writes to a fresh file. */
    char moved[300];
    snprintf(moved, sizeof(moved), "%s.moved", path);
    assert_int_equal(rename(path, moved), 0);
    front_log_append(log, "after\n", 6);
    assert_int_equal(front_log_reopen(log), 0);
    front_log_append(log, "fresh\n", 6);
    front_log_unref(log);   /* the last reference flushes */
    d = slurp(path);
    assert_string_equal(d, "fresh\n");
    free(d);
    d = slurp(moved);
    assert_non_null(strstr(d, "after\n"));
    free(d);
    assert_int_equal(rm_rf(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_buffer_flush_rotate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
