/* Tests for src/store/store-keys.c: sites' SSH keys, unique per site, gone with it. */
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

static void add_site(struct store *s, const char *name)
{
    struct store_site site = { .name = (char *)name, .type = (char *)"static", .network = (char *)"none",
                               .desired_state = (char *)"running", .backup_hour = 3, .backup_keep = 7 };
    assert_int_equal(store_site_insert(s, &site, NULL), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/berth-store-keys-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/berth.db", f->dir);
    assert_int_equal(store_open(f->path, &f->s, NULL), 0);
    add_site(f->s, "blog");
    add_site(f->s, "shop");
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

static const struct store_site_key K1 = {
    .algorithm = (char *)"ssh-ed25519", .key = (char *)"AAAAC3NzaC1lZDI1NTE5AAAAIN4W3BXxmCzGN+mNJqkKaOLv7D0zRqEnc/aj+GpLKkAs",
    .fingerprint = (char *)"SHA256:5EcbCjbDDUBxw6UkpJUP5aGbpMt7+0egwX2j9X6RUVA", .comment = (char *)"me@laptop",
    .created_at = 1800000000,
};
static const struct store_site_key K2 = {
    .algorithm = (char *)"ssh-ed25519", .key = (char *)"AAAAother", .fingerprint = (char *)"SHA256:other",
    .comment = NULL,
};

static void test_keys_per_site(void **state)
{
    struct fixture *f = *state;
    struct store_site_key *list;
    size_t n;
    assert_int_equal(store_site_key_insert(f->s, "nosuch", &K1), -ENOENT);
    assert_int_equal(store_site_key_insert(f->s, "blog", &K1), 0);
    assert_int_equal(store_site_key_insert(f->s, "blog", &K1), -EEXIST);   /* a duplicate */
    assert_int_equal(store_site_key_insert(f->s, "shop", &K1), 0);        /* the same key, another site */
    assert_int_equal(store_site_key_insert(f->s, "blog", &K2), 0);

    assert_int_equal(store_site_key_find(f->s, "blog", K1.fingerprint), 0);
    assert_int_equal(store_site_key_find(f->s, "blog", "SHA256:none"), -ENOENT);
    assert_int_equal(store_site_key_find(f->s, "nosuch", K1.fingerprint), -ENOENT);

    assert_int_equal(store_site_key_list(f->s, "blog", &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].fingerprint, K1.fingerprint);   /* oldest first */
    assert_string_equal(list[0].comment, "me@laptop");
    assert_string_equal(list[0].key, K1.key);
    assert_int_equal(list[0].created_at, 1800000000);
    assert_string_equal(list[1].comment, "");                  /* none given */
    assert_true(list[1].created_at > 0);
    store_site_key_list_free(list, n);

    assert_int_equal(store_site_key_delete(f->s, "blog", K1.fingerprint), 0);
    assert_int_equal(store_site_key_delete(f->s, "blog", K1.fingerprint), -ENOENT);
    assert_int_equal(store_site_key_find(f->s, "shop", K1.fingerprint), 0);   /* shop's stays */
}

static void test_keys_go_with_their_site(void **state)
{
    struct fixture *f = *state;
    struct store_site_key *list;
    size_t n;
    assert_int_equal(store_site_key_insert(f->s, "blog", &K1), 0);
    assert_int_equal(store_site_delete(f->s, "blog"), 0);
    add_site(f->s, "blog");
    assert_int_equal(store_site_key_list(f->s, "blog", &list, &n), 0);
    assert_int_equal(n, 0);
    store_site_key_list_free(list, n);
    assert_int_equal(store_site_key_find(f->s, "blog", K1.fingerprint), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keys_per_site, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_go_with_their_site, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
