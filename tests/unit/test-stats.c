/* Tests for src/sites/stats.c: the hour of one-minute samples, the rolling last
 * minute, totals, CPU deltas across a cgroup restart, forgetting a site, and the
 * history's file: round trip, what a load drops, and damaged files refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/fs.h"
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
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 1, &u, 1), 0);
    u = (struct sandbox_usage){ .memory_current = 30 << 20, .cpu_usec = 1500000 };
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 10, &u, 1), 0);
    u = (struct sandbox_usage){ .memory_current = 20 << 20, .cpu_usec = 1700000 };
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 61, &u, 1), 0);
    /* Stopped, then a new cgroup whose counter starts at zero again. */
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 70, NULL, 1), 0);
    u = (struct sandbox_usage){ .memory_current = 5 << 20, .cpu_usec = 300000 };
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 80, &u, 1), 0);
    /* Unknown figures are ignored. */
    u = (struct sandbox_usage){ .memory_current = SANDBOX_USAGE_UNKNOWN, .cpu_usec = SANDBOX_USAGE_UNKNOWN };
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 90, &u, 1), 0);

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
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 95, &u, 1), 0);
    sites_stats_get(st, "app", T0 + 95, &r);
    assert_int_equal(r.total_cpu_usec, 2000100);
    /* Started again between two samples, the new cgroup already past the old
     * counter: all of it is new CPU time, not the difference. */
    u = (struct sandbox_usage){ .memory_current = 1, .cpu_usec = 400100 };
    assert_int_equal(sites_stats_add_usage(st, "app", T0 + 100, &u, 2), 0);
    sites_stats_get(st, "app", T0 + 100, &r);
    assert_int_equal(r.total_cpu_usec, 2000100 + 400100);
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

/* ---- The history's file ---- */

/* The reports of a site must match, except the seconds ring (not saved). */
static void assert_same_history(struct sites_stats *a, struct sites_stats *b, const char *name, int64_t now)
{
    struct sites_stats_report ra, rb;
    sites_stats_get(a, name, now, &ra);
    sites_stats_get(b, name, now, &rb);
    assert_int_equal(ra.since, rb.since);
    assert_int_equal(ra.last_hour, rb.last_hour);
    assert_int_equal(ra.totals.requests, rb.totals.requests);
    for (size_t i = 0; i < ARRAY_SIZE(ra.totals.status); i++)
        assert_int_equal(ra.totals.status[i], rb.totals.status[i]);
    assert_int_equal(ra.totals.bytes, rb.totals.bytes);
    assert_int_equal(ra.total_cpu_usec, rb.total_cpu_usec);
    for (int k = 0; k < SITES_STATS_MINUTES; k++) {
        const struct sites_stats_minute *ma = &ra.minutes[k], *mb = &rb.minutes[k];
        assert_int_equal(ma->time, mb->time);
        assert_int_equal(ma->requests, mb->requests);
        assert_int_equal(ma->errors, mb->errors);
        assert_int_equal(ma->bytes, mb->bytes);
        assert_int_equal(ma->has_memory, mb->has_memory);
        assert_int_equal(ma->memory, mb->memory);
        assert_int_equal(ma->cpu_usec, mb->cpu_usec);
    }
}

/* A history of three sites over twenty minutes, with usage samples. */
static struct sites_stats *sample_history(void)
{
    struct sites_stats *st;
    assert_int_equal(sites_stats_new(T0 - 3600, &st), 0);
    for (int m = 0; m < 20; m++) {
        add(st, "blog", T0 + m * 60 + 3, (uint64_t)m + 1, m % 3 == 0, 100 * (uint64_t)m);
        if (m % 2 == 0)
            add(st, "shop", T0 + m * 60 + 59, 2, 0, 7);
        struct sandbox_usage u = { .memory_current = (uint64_t)m << 20, .cpu_usec = 1000 * (uint64_t)m };
        assert_int_equal(sites_stats_add_usage(st, "app", T0 + m * 60 + 30, &u, 1), 0);
    }
    add(st, "app", T0 + 5, 1, 1, 1);
    return st;
}

static void encode(struct sites_stats *st, struct buf *out)
{
    buf_init(out, SITES_STATS_FILE_MAX);
    assert_int_equal(sites_stats_encode(st, out), 0);
}

static void test_file_round_trip(void **state)
{
    char dir[] = "/tmp/berth-test-stats-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/stats.bin", dir);
    struct sites_stats *st = sample_history(), *back;
    int64_t now = T0 + 19 * 60 + 59;
    assert_true(sites_stats_dirty(st));
    assert_int_equal(sites_stats_save(st, path), 0);
    assert_false(sites_stats_dirty(st));
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);   /* renamed into place */

    assert_int_equal(sites_stats_new(now, &back), 0);
    add(back, "stale", now, 1, 0, 0);          /* a load replaces what was there */
    assert_int_equal(sites_stats_load(back, path, now, NULL, NULL), 3);
    assert_false(sites_stats_dirty(back));
    const char *names[] = { "blog", "shop", "app", "stale" };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        assert_same_history(st, back, names[i], now);
    struct sites_stats_report r;
    sites_stats_get(back, "blog", now, &r);
    assert_int_equal(r.since, T0 - 3600);
    assert_int_equal(r.totals.requests, 20 * 21 / 2);
    assert_int_equal(r.minutes[59].requests, 20);
    assert_int_equal(r.minutes[59].time, T0 + 19 * 60);
    sites_stats_get(back, "app", now, &r);
    assert_int_equal(r.total_cpu_usec, 19000);
    assert_true(r.minutes[59].has_memory);
    assert_int_equal(r.minutes[59].memory, 19 << 20);
    sites_stats_get(back, "stale", now, &r);
    assert_int_equal(r.totals.requests, 0);

    /* The loaded history goes on counting. */
    add(back, "blog", now, 1, 0, 0);
    sites_stats_get(back, "blog", now, &r);
    assert_int_equal(r.minutes[59].requests, 21);
    sites_stats_free(back);

    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    sites_stats_free(st);
}

static bool keep_all_but_shop(void *data, const char *name)
{
    (*(int *)data)++;
    return !streq(name, "shop");
}

static void test_load_drops_old_future_and_unknown(void **state)
{
    struct sites_stats *st = sample_history(), *back;
    struct buf b;
    encode(st, &b);
    struct sites_stats_report r;

    /* An hour after minute 10: minutes 0..10 are gone, 11..19 remain; the totals stay. */
    int64_t later = T0 + 70 * 60;
    assert_int_equal(sites_stats_new(later, &back), 0);
    int asked = 0;
    assert_int_equal(sites_stats_decode(back, b.data, b.len, later, keep_all_but_shop, &asked), 2);
    assert_int_equal(asked, 3);
    sites_stats_get(back, "blog", later, &r);
    assert_int_equal(r.totals.requests, 210);
    uint64_t want = 0;
    for (int m = 11; m < 20; m++)
        want += (uint64_t)m + 1;
    assert_int_equal(r.last_hour, want);
    assert_int_equal(r.minutes[0].time, T0 + 11 * 60);
    assert_int_equal(r.minutes[0].requests, 12);
    /* The slot of minute 10 must not come back when the ring wraps onto it. */
    sites_stats_get(back, "blog", T0 + 70 * 60 + 59, &r);
    assert_int_equal(r.minutes[59].requests, 0);
    /* The site the keeper refused is not there. */
    sites_stats_get(back, "shop", later, &r);
    assert_int_equal(r.totals.requests, 0);
    sites_stats_free(back);

    /* A clock set back ten minutes: minutes after now are dropped, not shown once
     * time catches up; `since` is not in the future either. */
    int64_t earlier = T0 + 9 * 60 + 30;
    assert_int_equal(sites_stats_new(earlier, &back), 0);
    assert_int_equal(sites_stats_decode(back, b.data, b.len, earlier, NULL, NULL), 3);
    sites_stats_get(back, "blog", earlier, &r);
    assert_int_equal(r.minutes[59].requests, 10);
    assert_int_equal(r.last_hour, 55);
    sites_stats_get(back, "blog", T0 + 15 * 60, &r);
    assert_int_equal(r.last_hour, 55);
    sites_stats_free(back);

    assert_int_equal(sites_stats_new(T0 - 7200, &back), 0);
    assert_int_equal(sites_stats_decode(back, b.data, b.len, T0 - 7200, NULL, NULL), 3);
    sites_stats_get(back, "blog", T0 - 7200, &r);
    assert_int_equal(r.since, T0 - 7200);
    assert_int_equal(r.last_hour, 0);
    sites_stats_free(back);

    buf_done(&b);
    sites_stats_free(st);
}

/* Decodes bytes that must be refused, into a history that must stay as it was. */
static void assert_refused(const void *data, size_t len, int want)
{
    struct sites_stats *st;
    assert_int_equal(sites_stats_new(T0, &st), 0);
    add(st, "kept", T0, 4, 0, 0);
    assert_int_equal(sites_stats_decode(st, data, len, T0 + 60, NULL, NULL), want);
    struct sites_stats_report r;
    sites_stats_get(st, "kept", T0 + 60, &r);
    assert_int_equal(r.totals.requests, 4);
    assert_int_equal(r.since, T0);
    assert_true(sites_stats_dirty(st));
    sites_stats_free(st);
}

static void test_damaged_file_refused(void **state)
{
    struct sites_stats *st = sample_history();
    struct buf b;
    encode(st, &b);
    sites_stats_free(st);

    assert_refused(NULL, 0, -EBADMSG);
    assert_refused("", 0, -EBADMSG);
    /* Every truncation, and every single flipped byte (the checksum or a check). */
    for (size_t n = 0; n < b.len; n++)
        assert_refused(b.data, n, -EBADMSG);
    for (size_t i = 0; i < b.len; i++) {
        b.data[i] ^= 0x40;
        struct sites_stats *t;
        assert_int_equal(sites_stats_new(T0, &t), 0);
        assert_true(sites_stats_decode(t, b.data, b.len, T0, NULL, NULL) < 0);
        sites_stats_free(t);
        b.data[i] ^= 0x40;
    }
    buf_done(&b);
}

/* Builds files by hand, with a valid checksum, to reach the checks behind it. */
static void put(struct buf *b, uint64_t v, size_t width)
{
    for (size_t i = 0; i < width; i++)
        assert_int_equal(buf_append_char(b, (char)(uint8_t)(v >> (8 * i))), 0);
}

static void header(struct buf *b, uint32_t version, uint32_t n_sites, int64_t since)
{
    buf_init(b, 1 << 20);
    assert_int_equal(buf_append(b, "BERTHSTS", 8), 0);
    put(b, version, 4);
    put(b, n_sites, 4);
    put(b, (uint64_t)since, 8);
}

static void record(struct buf *b, const char *name, size_t name_len, uint8_t n_slots)
{
    put(b, name_len, 1);
    assert_int_equal(buf_append(b, name, name_len), 0);
    put(b, n_slots, 1);
    for (int i = 0; i < 7; i++)
        put(b, 1, 8);
}

static void slot(struct buf *b, int64_t minute, uint8_t has_memory)
{
    put(b, (uint64_t)minute, 8);
    for (int i = 0; i < 5; i++)
        put(b, 3, 8);
    put(b, has_memory, 1);
}

static void seal_and_check(struct buf *b, int want)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < b->len; i++)
        h = (h ^ (uint8_t)b->data[i]) * 0x100000001b3ULL;
    put(b, h, 8);
    if (want < 0) {
        assert_refused(b->data, b->len, want);
    } else {
        struct sites_stats *st;
        assert_int_equal(sites_stats_new(T0, &st), 0);
        assert_int_equal(sites_stats_decode(st, b->data, b->len, T0 + 60, NULL, NULL), want);
        sites_stats_free(st);
    }
    buf_done(b);
}

static void test_absurd_fields_refused(void **state)
{
    struct buf b;
    /* The hand-built file is good to start with: the checks below are the reason. */
    header(&b, 1, 1, T0);
    record(&b, "blog", 4, 1);
    slot(&b, T0 / 60, 1);
    seal_and_check(&b, 1);

    header(&b, 2, 0, T0);
    seal_and_check(&b, -EPROTONOSUPPORT);
    header(&b, 1, UINT32_MAX, T0);              /* a count the bytes cannot hold */
    record(&b, "blog", 4, 0);
    seal_and_check(&b, -EBADMSG);
    header(&b, 1, 2, T0);                        /* one record fewer than counted */
    record(&b, "blog", 4, 0);
    seal_and_check(&b, -EBADMSG);
    header(&b, 1, 0, T0);                        /* bytes after the last record */
    record(&b, "blog", 4, 0);
    seal_and_check(&b, -EBADMSG);
    header(&b, 1, 1, -5);
    record(&b, "blog", 4, 0);
    seal_and_check(&b, -EBADMSG);
    header(&b, 1, 1, T0);
    record(&b, "blog", 4, 255);                  /* more slots than the ring has */
    seal_and_check(&b, -EBADMSG);
    header(&b, 1, 1, T0);
    record(&b, "blog", 4, 2);                    /* slots missing */
    slot(&b, T0 / 60, 0);
    seal_and_check(&b, -EBADMSG);
    header(&b, 1, 1, T0);
    record(&b, "blog", 4, 2);                    /* two slots for one ring entry */
    slot(&b, T0 / 60, 0);
    slot(&b, T0 / 60 - 60, 0);
    seal_and_check(&b, -EBADMSG);
    header(&b, 1, 1, T0);
    record(&b, "blog", 4, 1);
    slot(&b, -1, 0);
    seal_and_check(&b, -EBADMSG);
    header(&b, 1, 1, T0);
    record(&b, "blog", 4, 1);
    slot(&b, T0 / 60, 2);
    seal_and_check(&b, -EBADMSG);
    header(&b, 1, 2, T0);
    record(&b, "blog", 4, 0);
    record(&b, "blog", 4, 0);
    seal_and_check(&b, -EBADMSG);

    static const char long_name[200] = "a";
    const char *bad_names[] = { "", "Blog", "a/b", "bl\0g", "..", long_name };
    const size_t bad_lens[] = { 0, 4, 3, 4, 2, sizeof(long_name) };
    for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++) {
        header(&b, 1, 1, T0);
        record(&b, bad_names[i], bad_lens[i], 0);
        seal_and_check(&b, -EBADMSG);
    }
}

static void test_load_missing_and_empty_file(void **state)
{
    char dir[] = "/tmp/berth-test-stats-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/stats.bin", dir);
    struct sites_stats *st;
    assert_int_equal(sites_stats_new(T0, &st), 0);
    assert_int_equal(sites_stats_load(st, path, T0, NULL, NULL), 0);
    assert_int_equal(write_file_atomic(path, "", 0, 0600), 0);
    assert_int_equal(sites_stats_load(st, path, T0, NULL, NULL), -EBADMSG);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    sites_stats_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minutes_oldest_first),
        cmocka_unit_test(test_hour_rolls_over),
        cmocka_unit_test(test_last_minute_is_rolling),
        cmocka_unit_test(test_usage_cpu_and_memory),
        cmocka_unit_test(test_sites_apart_and_removed),
        cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_load_drops_old_future_and_unknown),
        cmocka_unit_test(test_damaged_file_refused),
        cmocka_unit_test(test_absurd_fields_refused),
        cmocka_unit_test(test_load_missing_and_empty_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
