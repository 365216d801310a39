/* Tests for src/front/balance.c: when a worker steps back from accepting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "front/front-internal.h"

/* Publishes n connections for worker `index` at time `now`, as that worker would. */
static void as_worker(struct front_balance_slot *b, unsigned index, size_t n, uint64_t now)
{
    front_balance_join(b, 3, index);
    front_balance_publish(n, now);
}

static void test_alone_or_unjoined_always_accepts(void **state)
{
    assert_true(front_balance_may_accept(1000000, 5000));   /* never joined */
    struct front_balance_slot *b;
    assert_int_equal(front_balance_new(3, &b), 0);
    as_worker(b, 0, 500, 5000);
    assert_true(front_balance_may_accept(500, 5000));       /* no other worker yet */
    front_balance_free(b, 3);
}

static void test_steps_back_only_when_clearly_ahead(void **state)
{
    struct front_balance_slot *b;
    assert_int_equal(front_balance_new(3, &b), 0);
    as_worker(b, 1, 30, 5000);
    as_worker(b, 2, 40, 5000);
    as_worker(b, 0, 0, 5000);
    /* The least loaded other worker holds 30: slack 4 + 30/8. */
    assert_true(front_balance_may_accept(37, 5000));
    assert_false(front_balance_may_accept(38, 5000));
    /* A worker that stopped beating a second ago no longer counts. */
    as_worker(b, 1, 30, 3000);
    as_worker(b, 0, 0, 5000);
    assert_true(front_balance_may_accept(49, 5000));    /* 40 + 4 + 40/8 */
    assert_false(front_balance_may_accept(50, 5000));
    /* Nor one the supervisor saw die. */
    front_balance_leave(b, 2);
    assert_true(front_balance_may_accept(1000, 5000));
    front_balance_free(b, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alone_or_unjoined_always_accepts),
        cmocka_unit_test(test_steps_back_only_when_clearly_ahead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
