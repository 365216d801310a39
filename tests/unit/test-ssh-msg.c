/* Tests for src/ssh/ssh-msg.c: the broker's messages, as bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include "common/util.h"
#include "ssh/ssh.h"

static void test_encodes_exact_bytes(void **state)
{
    (void)state;
    uint8_t out[SSH_MSG_MAX];
    const char *fields[] = { "blog", "pw" };
    int n = ssh_msg_encode(SSH_MSG_AUTH_PASSWORD, fields, 2, out, sizeof(out));
    static const uint8_t want[] = { 2, 2, 0, 4, 'b', 'l', 'o', 'g', 0, 2, 'p', 'w' };
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(out, want, sizeof(want));

    struct ssh_msg m;
    assert_int_equal(ssh_msg_decode(out, (size_t)n, &m), 0);
    assert_int_equal(m.type, SSH_MSG_AUTH_PASSWORD);
    assert_int_equal(m.n_fields, 2);
    char site[8], small[4];
    assert_int_equal(ssh_msg_field(&m, 0, site, sizeof(site)), 0);
    assert_string_equal(site, "blog");
    assert_int_equal(ssh_msg_field(&m, 0, small, sizeof(small)), -E2BIG);
    assert_int_equal(ssh_msg_field(&m, 2, site, sizeof(site)), -EINVAL);
}

static void test_refuses_malformed(void **state)
{
    (void)state;
    struct ssh_msg m;
    static const struct {
        uint8_t b[16];
        size_t len;
    } bad[] = {
        { { 1 }, 1 },                          /* no field count */
        { { 1, 1, 0 }, 3 },                    /* length cut */
        { { 1, 1, 0, 5, 'a' }, 5 },            /* field longer than the packet */
        { { 1, 1, 0, 1, 'a', 'x' }, 6 },       /* trailing byte */
        { { 1, 1, 0, 2, 'a', 0 }, 6 },         /* NUL inside */
        { { 1, 7 }, 2 },                       /* too many fields */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ssh_msg_decode(bad[i].b, bad[i].len, &m), -EBADMSG);
    uint8_t ok[] = { 10, 0 };
    assert_int_equal(ssh_msg_decode(ok, sizeof(ok), &m), 0);
    assert_int_equal(m.n_fields, 0);
}

static void test_encode_limits(void **state)
{
    (void)state;
    uint8_t out[SSH_MSG_MAX];
    char *big = malloc(SSH_MSG_MAX);
    memset(big, 'x', SSH_MSG_MAX - 1);
    big[SSH_MSG_MAX - 1] = 0;
    const char *fields[] = { big };
    assert_int_equal(ssh_msg_encode(SSH_MSG_OK, fields, 1, out, sizeof(out)), -EMSGSIZE);
    const char *many[SSH_MSG_FIELDS_MAX + 1] = { "a", "a", "a", "a", "a", "a", "a" };
    assert_int_equal(ssh_msg_encode(SSH_MSG_OK, many, SSH_MSG_FIELDS_MAX + 1, out, sizeof(out)), -EINVAL);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encodes_exact_bytes),
        cmocka_unit_test(test_refuses_malformed),
        cmocka_unit_test(test_encode_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
