/* Tests for src/sites/stats.c: the hour of one-minute samples, the rolling last
 * minute, totals, CPU deltas across a cgroup restart, and forgetting a site. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/util.h"
#include "sites/sites.h"

#define T0 1800000000   /* a minute boundary (divisible by 60) */

static void add(struct sites_stats *st, const char *name, int64_t now, uint64_t n, uint64_t n5xx,
                uint64_t bytes)
{
    struct sites_stats_requests d = { .requests = n, .status = { n - n5xx, 0, 0, n5xx }, .bytes = bytes };
    assert_int_equal(sites_stats_add_requests(st, name, now, &d), 0);
}

static void test_minutes_oldest_first(void **state)
{
    struct sites_stats *st;
    assert_int_equal(sites_stats_new(T0, &st), 0);
    add(st, "blog", T0 + 5, 3, 1, 300);
    add(st, "blog", T0 + 65, 2, 0, 20);
    add(st, "blog", T0 + 70, 4, 0, 40);
    struct sites_stats_report r;
    sites_stats_get(st, "blog", T0 + 70, &r);
    assert_int_equal(r.since, T0);
    /* The last entry is the current minute, the one before the previous. */
    assert_int_equal(r.minutes[59].time, T0 + 60);
    assert_int_equal(r.minutes[59].requests, 6);
    assert_int_equal(r.minutes[59].bytes, 60);
    assert_int_equal(r.minutes[58].time, T0);
    assert_int_equal(r.minutes[58].requests, 3);
    assert_int_equal(r.minutes[58].errors, 1);
    assert_int_equal(r.minutes[0].time, T0 - 58 * 60);
    assert_int_equal(r.minutes[0].requests, 0);
    for (int i = 1; i < 60; i++)
        assert_int_equal(r.minutes[i].time - r.minutes[i - 1].time, 60);
    assert_int_equal(r.last_hour, 9);
    assert_int_equal(r.totals.requests, 9);
    assert_int_equal(r.totals.status[3], 1);
    assert_int_equal(r.totals.status[0], 8);
    assert_int_equal(r.totals.bytes, 360);
    sites_stats_free(st);
}

static void test_hour_rolls_over(void **state)
{
    struct sites_stats *st;
    assert_int_equal(sites_stats_new(T0, &st), 0);
    add(st, "blog", T0, 7, 0, 0);
    struct sites_stats_report r;
    /* 59 minutes later the sample is the oldest shown; one more and it is gone, even
     * though its ring slot was never overwritten. */
    sites_stats_get(st, "blog", T0 + 59 * 60, &r);
    assert_int_equal(r.minutes[0].requests, 7);
    assert_int_equal(r.last_hour, 7);
    sites_stats_get(st, "blog", T0 + 60 * 60, &r);
    assert_int_equal(r.last_hour, 0);
    for (int i = 0; i < 60; i++)
        assert_int_equal(r.minutes[i].requests, 0);
    /* Totals are since berthd started, not of the hour. */
    assert_int_equal(r.totals.requests, 7);
    /* A write an hour later into the same slot starts it afresh. */
    add(st, "blog", T0 + 60 * 60 + 1, 2, 0, 0);
    sites_stats_get(st, "blog", T0 + 60 * 60 + 1, &r);
    assert_int_equal(r.minutes[59].requests, 2);
    assert_int_equal(r.last_hour, 2);
    sites_stats_free(st);
}

static void test_last_minute_is_rolling(void **state)
{
    struct sites_stats *st;
    assert_int_equal(sites_stats_new(T0, &st), 0);
    add(st, "a", T0 + 50, 5, 0, 0);
    add(st, "a", T0 + 70, 1, 0, 0);
    struct sites_stats_report r;
    sites_stats_get(st, "a", T0 + 70, &r);
    assert_int_equal(r.last_minute, 6);
    sites_stats_get(st, "a", T0 + 109, &r);
    assert_int_equal(r.last_minute, 6);
    sites_stats_get(st, "a", T0 + 110, &r);
    assert_int_equal(r.last_minute, 1);
    sites_stats_get(st, "a", T0 + 500, &r);
    assert_int_equal(r.last_minute, 0);
    sites_stats_free(st);
}

static void test_usage_cpu_and_memory(void **state)
{
    struct sites_stats *st;
    assert_int_equal(sites_stats_new(T0, &st), 0);
    struct sandbox_usage u = { .memory_current = 10 << 20, .cpu_usec = 1000000 };
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 1, &u), 0);
    u = (struct sandbox_usage){ .memory_current = 30 << 20, .cpu_usec = 1500000 };
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 10, &u), 0);
    u = (struct sandbox_usage){ .memory_current = 20 << 20, .cpu_usec = 1700000 };
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 61, &u), 0);
    /* Stopped, then a new cgroup whose counter starts at zero again. */
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 70, NULL), 0);
    u = (struct sandbox_usage){ .memory_current = 5 << 20, .cpu_usec = 300000 };
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 80, &u), 0);
    /* Unknown figures are ignored. */
    u = (struct sandbox_usage){ .memory_current = SANDBOX_USAGE_UNKNOWN, .cpu_usec = SANDBOX_USAGE_UNKNOWN };
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 90, &u), 0);

    struct sites_stats_report r;
    sites_stats_get(st, "app", T0 + 90, &r);
    assert_true(r.minutes[58].has_memory);
    assert_int_equal(r.minutes[58].memory, 30 << 20);   /* the minute's highest */
    assert_int_equal(r.minutes[58].cpu_usec, 1500000);
    assert_true(r.minutes[59].has_memory);
    assert_int_equal(r.minutes[59].memory, 20 << 20);
    assert_int_equal(r.minutes[59].cpu_usec, 200000 + 300000);
    assert_false(r.minutes[57].has_memory);
    assert_int_equal(r.total_cpu_usec, 2000000);
    /* A backwards counter without a "stopped" sample in between is a new cgroup too. */
    u = (struct sandbox_usage){ .memory_current = 1, .cpu_usec = 100 };
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 95, &u), 0);
    sites_stats_get(st, "app", T0 + 95, &r);
    assert_int_equal(r.total_cpu_usec, 2000100);
    sites_stats_free(st);
}

static void test_sites_apart_and_removed(void **state)
{
    struct sites_stats *st;
    assert_int_equal(sites_stats_new(T0, &st), 0);
    char name[32];
    /* Enough sites to grow the table a few times. */
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "site-%d", i);
        add(st, name, T0 + 1, (uint64_t)i + 1, 0, 0);
    }
    struct sites_stats_report r;
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "site-%d", i);
        sites_stats_get(st, name, T0 + 2, &r);
        assert_int_equal(r.totals.requests, (uint64_t)i + 1);
    }
    sites_stats_remove(st, "site-7");
    sites_stats_remove(st, "never-seen");
    sites_stats_get(st, "site-7", T0 + 2, &r);
    assert_int_equal(r.totals.requests, 0);
    assert_int_equal(r.last_hour, 0);
    sites_stats_get(st, "site-8", T0 + 2, &r);
    assert_int_equal(r.totals.requests, 9);
    /* Not a site name: refused, nothing stored. */
    struct sites_stats_requests d = { .requests = 1 };
    assert_int_equal(sites_stats_add_requests(st, "Bad/Name", T0, &d), -EINVAL);
    assert_int_equal(sites_stats_add_requests(st, "", T0, &d), -EINVAL);
    sites_stats_free(st);
    sites_stats_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minutes_oldest_first),
        cmocka_unit_test(test_hour_rolls_over),
        cmocka_unit_test(test_last_minute_is_rolling),
        cmocka_unit_test(test_usage_cpu_and_memory),
        cmocka_unit_test(test_sites_apart_and_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
