/* Unit tests for src/snapshot/schedule.c: when automatic backups fall due. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "snapshot/snapshot.h"

#define H 3600
#define DAY (24 * H)
/* Tuesday 2026-12-01 00:00:00 UTC. */
#define TUE 1796083200
/* Sunday 2026-12-06 00:00:00 UTC. */
#define SUN (TUE + 5 * DAY)

static void test_off(void **state)
{
    (void)state;
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_OFF, 3, TUE), 0);
    assert_int_equal(snapshot_schedule_due(STORE_BACKUP_OFF, 3, TUE, TUE), 0);
}

static void test_daily_hour(void **state)
{
    (void)state;
    /* Before the hour: today; at it or after: tomorrow (strictly after). */
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_DAILY, 3, TUE), TUE + 3 * H);
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_DAILY, 3, TUE + 3 * H - 1), TUE + 3 * H);
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_DAILY, 3, TUE + 3 * H), TUE + DAY + 3 * H);
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_DAILY, 3, TUE + 19 * H), TUE + DAY + 3 * H);
    /* Hour 0 and 23, across the day's end. */
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_DAILY, 0, TUE + 23 * H), TUE + DAY);
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_DAILY, 0, TUE - 1), TUE);
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_DAILY, 23, TUE + 23 * H + 1), TUE + DAY + 23 * H);
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_DAILY, 23, TUE + 22 * H), TUE + 23 * H);
    /* Across a month's and a year's end: 2026-12-31 23:30 -> 2027-01-01 03:00. */
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_DAILY, 3, 1798759800), 1798772400);
}

static void test_weekly(void **state)
{
    (void)state;
    /* Sundays at the hour, whatever day it is now. */
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_WEEKLY, 3, TUE), SUN + 3 * H);
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_WEEKLY, 3, SUN - 1), SUN + 3 * H);
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_WEEKLY, 3, SUN + 2 * H), SUN + 3 * H);
    /* The Sunday's hour passed: the next Sunday. */
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_WEEKLY, 3, SUN + 3 * H), SUN + 7 * DAY + 3 * H);
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_WEEKLY, 0, SUN), SUN + 7 * DAY);
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_WEEKLY, 23, SUN + 23 * H + 59), SUN + 7 * DAY + 23 * H);
    /* Across the year: Thursday 2026-12-31 -> Sunday 2027-01-03 03:00. */
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_WEEKLY, 3, 1798759800), 1798945200);
    /* Before the epoch's first Sunday (1970-01-04) too. */
    assert_int_equal(snapshot_schedule_next(STORE_BACKUP_WEEKLY, 0, 0), 3 * DAY);
}

static void test_due(void **state)
{
    (void)state;
    /* Set at 10:00 for 03:00: first due the next night, not at once. */
    assert_int_equal(snapshot_schedule_due(STORE_BACKUP_DAILY, 3, TUE + 10 * H, 0), TUE + DAY + 3 * H);
    /* Ran at 03:00:05: next due tomorrow. */
    assert_int_equal(snapshot_schedule_due(STORE_BACKUP_DAILY, 3, TUE - 5 * DAY, TUE + 3 * H + 5),
                     TUE + DAY + 3 * H);
    /* The hour moved later the same day after today's run: due again today. */
    assert_int_equal(snapshot_schedule_due(STORE_BACKUP_DAILY, 11, TUE + 10 * H, TUE + 3 * H), TUE + 11 * H);
}

static void test_missed(void **state)
{
    (void)state;
    /* Last ran Tuesday 03:00; berthd was down until Friday noon: the due time is
     * Wednesday 03:00, in the past, so it runs once now... */
    int64_t friday_noon = TUE + 3 * DAY + 12 * H, last = TUE + 3 * H;
    int64_t due = snapshot_schedule_due(STORE_BACKUP_DAILY, 3, 0, last);
    assert_int_equal(due, TUE + DAY + 3 * H);
    assert_true(due <= friday_noon);
    /* ...and that run moves it to Saturday 03:00, not to Thursday's missed one. */
    assert_int_equal(snapshot_schedule_due(STORE_BACKUP_DAILY, 3, 0, friday_noon), TUE + 4 * DAY + 3 * H);
    /* Weekly, down over two Sundays: once, then the next Sunday. */
    due = snapshot_schedule_due(STORE_BACKUP_WEEKLY, 3, 0, SUN + 3 * H);
    assert_int_equal(due, SUN + 7 * DAY + 3 * H);
    int64_t back = SUN + 16 * DAY;
    assert_true(due <= back);
    assert_int_equal(snapshot_schedule_due(STORE_BACKUP_WEEKLY, 3, 0, back), SUN + 21 * DAY + 3 * H);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_daily_hour),
        cmocka_unit_test(test_weekly),
        cmocka_unit_test(test_due),
        cmocka_unit_test(test_missed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
