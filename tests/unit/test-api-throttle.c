/* Tests for src/api/throttle.c: the table behind login throttling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include "api/api-internal.h"

#define SLOTS 8
#define SECOND 1000ULL
#define MINUTE (60 * SECOND)

static void fail_times(struct api_throttle *t, const char *key, unsigned n, uint64_t now)
{
    for (unsigned i = 0; i < n; i++)
        api_throttle_fail(t, key, now);
}

static void test_locks_from_the_fifth_failure(void **state)
{
    (void)state;
    struct api_throttle *t;
    assert_int_equal(api_throttle_new(SLOTS, &t), 0);
    fail_times(t, "u:alice", 4, 1000);
    assert_int_equal(api_throttle_wait(t, "u:alice", 1000), 0);
    api_throttle_fail(t, "u:alice", 1000);
    assert_int_equal(api_throttle_wait(t, "u:alice", 1000), 30 * SECOND);
    assert_int_equal(api_throttle_wait(t, "u:bob", 1000), 0);
    /* The next failure (after the lock) doubles it. */
    api_throttle_fail(t, "u:alice", 1000 + 31 * SECOND);
    assert_int_equal(api_throttle_wait(t, "u:alice", 1000 + 31 * SECOND), 60 * SECOND);
    api_throttle_clear(t, "u:alice", 1000 + 32 * SECOND);
    assert_int_equal(api_throttle_wait(t, "u:alice", 1000 + 32 * SECOND), 0);
    api_throttle_free(t);
}

/* An attacker with many addresses (an IPv6 prefix has plenty) fills the table with
 * keys of their own. That may push out old counters, never a lock still running:
 * else each round of fresh addresses would buy a locked account new guesses. */
static void test_a_full_table_keeps_running_locks(void **state)
{
    (void)state;
    struct api_throttle *t;
    char key[80];
    uint64_t now = 1000;
    assert_int_equal(api_throttle_new(SLOTS, &t), 0);
    fail_times(t, "u:alice", 5, now);
    assert_true(api_throttle_wait(t, "u:alice", now) > 0);
    for (unsigned i = 0; i < 4 * SLOTS; i++) {
        now += 100;
        snprintf(key, sizeof(key), "a:2001:db8::%x", i);
        api_throttle_fail(t, key, now);
    }
    assert_true(api_throttle_wait(t, "u:alice", now) > 0);
    /* A table full of running locks still takes a new key, and the lock that ends
     * first is the one that makes room. */
    for (unsigned i = 0; i < SLOTS; i++) {
        snprintf(key, sizeof(key), "u:user%u", i);
        fail_times(t, key, 6, now);   /* 60 s each: later than alice's 30 s */
    }
    assert_int_equal(api_throttle_wait(t, "u:alice", now), 0);
    snprintf(key, sizeof(key), "u:user%u", 0);
    assert_int_equal(api_throttle_wait(t, key, now), 60 * SECOND);
    api_throttle_free(t);
}

static void test_forgets_after_quiet_minutes(void **state)
{
    (void)state;
    struct api_throttle *t;
    assert_int_equal(api_throttle_new(SLOTS, &t), 0);
    fail_times(t, "a:192.0.2.1", 4, 1000);
    /* 15 quiet minutes later the four failures are forgotten: a fifth does not lock. */
    api_throttle_fail(t, "a:192.0.2.1", 1000 + 16 * MINUTE);
    assert_int_equal(api_throttle_wait(t, "a:192.0.2.1", 1000 + 16 * MINUTE), 0);
    api_throttle_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_locks_from_the_fifth_failure),
        cmocka_unit_test(test_a_full_table_keeps_running_locks),
        cmocka_unit_test(test_forgets_after_quiet_minutes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
