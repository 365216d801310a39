/* Tests for src/store/store-auth.c: sessions and API tokens, which go with their user. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include "common/fs.h"
#include "store/store.h"

struct fixture {
    char dir[64];
    char path[128];
    struct store *s;
};

static const char ID1[] = "1111111111111111111111111111111111111111111111111111111111111111";
static const char ID2[] = "2222222222222222222222222222222222222222222222222222222222222222";
static const char ID3[] = "3333333333333333333333333333333333333333333333333333333333333333";

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/berth-store-auth-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/berth.db", f->dir);
    assert_int_equal(store_open(f->path, &f->s, NULL), 0);
    assert_int_equal(store_user_insert(f->s, "alice", "h", false, NULL), 0);
    assert_int_equal(store_user_insert(f->s, "bob", "h", false, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->s);
    assert_int_equal(rm_rf(f->dir), 0);
    free(f);
    return 0;
}

static void add_session(struct store *s, const char *id, const char *user, int64_t now)
{
    struct store_session x = { .id = (char *)id, .user = (char *)user, .created_at = now,
                               .expires_at = now + 100, .last_seen = now, .csrf = (char *)"csrf",
                               .client = (char *)"192.0.2.1" };
    assert_int_equal(store_session_insert(s, &x), 0);
}

static void test_sessions(void **state)
{
    struct fixture *f = *state;
    struct store_session got = { 0 };
    add_session(f->s, ID1, "alice", 1000);
    add_session(f->s, ID2, "alice", 1000);
    add_session(f->s, ID3, "bob", 1000);

    struct store_session dup = { .id = (char *)ID1, .user = (char *)"bob", .csrf = (char *)"c" };
    assert_int_equal(store_session_insert(f->s, &dup), -EEXIST);
    struct store_session ghost = { .id = (char *)"4444444444444444444444444444444444444444444444444444444444444444",
                                   .user = (char *)"ghost", .csrf = (char *)"c" };
    assert_int_equal(store_session_insert(f->s, &ghost), -ENXIO);
    struct store_session short_id = { .id = (char *)"abc", .user = (char *)"bob", .csrf = (char *)"c" };
    assert_int_equal(store_session_insert(f->s, &short_id), -EINVAL);

    assert_int_equal(store_session_get(f->s, ID1, &got), 0);
    assert_string_equal(got.user, "alice");
    assert_string_equal(got.csrf, "csrf");
    assert_string_equal(got.client, "192.0.2.1");
    assert_int_equal(got.expires_at, 1100);
    store_session_done(&got);

    assert_int_equal(store_session_touch(f->s, ID1, 1050), 0);
    assert_int_equal(store_session_get(f->s, ID1, &got), 0);
    assert_int_equal(got.last_seen, 1050);
    store_session_done(&got);
    assert_int_equal(store_session_touch(f->s, "nope", 1), -ENOENT);

    /* Ending all of alice's sessions but one. */
    assert_int_equal(store_session_delete_user(f->s, "alice", ID1), 1);
    assert_int_equal(store_session_get(f->s, ID2, &got), -ENOENT);
    assert_int_equal(store_session_get(f->s, ID1, &got), 0);
    store_session_done(&got);

    /* Idle since before 1020 (bob's, at 1000) goes; alice's (1050) stays. */
    assert_int_equal(store_session_prune(f->s, 1060, 1020), 1);
    assert_int_equal(store_session_get(f->s, ID3, &got), -ENOENT);
    /* Past expires_at goes, however recent. */
    assert_int_equal(store_session_prune(f->s, 1100, 0), 1);
    assert_int_equal(store_session_get(f->s, ID1, &got), -ENOENT);
    assert_int_equal(store_session_delete(f->s, ID1), -ENOENT);

    /* Sessions go with their user. */
    add_session(f->s, ID1, "bob", 1000);
    assert_int_equal(store_user_delete(f->s, "bob"), 0);
    assert_int_equal(store_session_get(f->s, ID1, &got), -ENOENT);
}

static void test_tokens(void **state)
{
    struct fixture *f = *state;
    int64_t a = 0, b = 0;
    struct store_token t = { 0 };
    assert_int_equal(store_token_insert(f->s, "alice", "deploy", ID1, &a), 0);
    assert_int_equal(store_token_insert(f->s, "bob", "ci", ID2, &b), 0);
    assert_true(b > a);
    assert_int_equal(store_token_insert(f->s, "bob", "again", ID2, NULL), -EEXIST);
    assert_int_equal(store_token_insert(f->s, "ghost", "x", ID3, NULL), -ENXIO);
    assert_int_equal(store_token_insert(f->s, "bob", "", ID3, NULL), -EINVAL);

    assert_int_equal(store_token_find(f->s, ID1, &t), 0);
    assert_int_equal(t.id, a);
    assert_string_equal(t.user, "alice");
    assert_string_equal(t.name, "deploy");
    assert_int_equal(t.last_used, 0);
    assert_false(t.revoked);
    store_token_done(&t);
    assert_int_equal(store_token_find(f->s, ID3, &t), -ENOENT);

    assert_int_equal(store_token_touch(f->s, a, 4242), 0);
    assert_int_equal(store_token_revoke(f->s, a), 0);
    assert_int_equal(store_token_get(f->s, a, &t), 0);
    assert_int_equal(t.last_used, 4242);
    assert_true(t.revoked);
    store_token_done(&t);
    assert_int_equal(store_token_revoke(f->s, 9999), -ENOENT);

    struct store_token *list;
    size_t n;
    assert_int_equal(store_token_list(f->s, NULL, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "deploy");
    assert_string_equal(list[1].name, "ci");
    store_token_list_free(list, n);
    assert_int_equal(store_token_list(f->s, "bob", &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].user, "bob");
    store_token_list_free(list, n);

    assert_int_equal(store_user_delete(f->s, "bob"), 0);
    assert_int_equal(store_token_get(f->s, b, &t), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
