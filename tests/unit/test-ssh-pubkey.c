/* Tests for src/ssh/ssh-pubkey.c: which key lines are accepted, their fingerprints
 * (as ssh-keygen -l prints them) and the reasons given for the others. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>

#include "common/util.h"
#include "ssh/ssh.h"

/* Made by ssh-keygen 9.2; the fingerprints are what ssh-keygen -lf printed. */
static const char ed25519[] =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN4W3BXxmCzGN+mNJqkKaOLv7D0zRqEnc/aj+GpLKkAs me@laptop\n";
static const char ed25519_fp[] = "SHA256:5EcbCjbDDUBxw6UkpJUP5aGbpMt7+0egwX2j9X6RUVA";
static const char rsa2048[] =
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDIQD8MRtC5yle74+WK6EfrSJCrMi32QXlbrqUkW+FdVcOh2rSleeR83reM6uJYhj64Zfb+"
    "njJJCqHZKN+kTFn2QH4G/8xqxwvi61Tus+x0XCg05TVtyTJC7Y4bOQLm4SxPE4jeqru1CkwWHuFUeKTsmRfR/ZpBMoj1PZD4C9qEgYehGzfl"
    "suzLijEo6nX1kXKqTZmnd8KW9R9t9JKdtoVmqj1yoJA1SooFjV5cUJx0pdbZFBXdTIhmWYW3ZKk3g1VS8guUlukNuvJFtYB4oDM/lC99HXU7"
    "eOq/VVsxVgS0++jWQid8q7EY+j6vx8WRlY2YvNf1feLZDVSrgtMIJkuN root@vm";
static const char rsa2048_fp[] = "SHA256:m7qhAI9E7dk0G8ERt+YkrDW9TOY0gyDnvPtKwWBCi9s";
static const char ecdsa384[] =
    "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBMWav++v3avqHPgrWrkwSTYaTX830Qvzbirx"
    "oz2L6WrN1EFK1PVmOK7f5xgAKclE4fbcS47W9KsR1bPznvCMXLxJCmXGJAdCMEYQdDs8K1D6f/xKYBM3wa48vqPUbuAv5g==";
static const char ecdsa384_fp[] = "SHA256:b4XgjhLlZGdzNbecuWZoEXPbmFoYedi0rxdvONiCE2c";

static int parse(const char *line, struct ssh_pubkey *k, char *why, size_t n)
{
    return ssh_pubkey_parse(line, strlen(line), k, why, n);
}

static void test_accepts_the_usual_keys(void **state)
{
    (void)state;
    struct ssh_pubkey k;
    char why[256] = "";
    assert_int_equal(parse(ed25519, &k, why, sizeof(why)), 0);
    assert_string_equal(k.type, "ssh-ed25519");
    assert_string_equal(k.fingerprint, ed25519_fp);
    assert_string_equal(k.comment, "me@laptop");
    assert_int_equal(k.bits, 256);
    assert_true(strncmp(k.base64, "AAAAC3Nza", 9) == 0 && !strchr(k.base64, ' '));
    ssh_pubkey_done(&k);

    assert_int_equal(parse(rsa2048, &k, why, sizeof(why)), 0);
    assert_string_equal(k.fingerprint, rsa2048_fp);
    assert_int_equal(k.bits, 2048);
    ssh_pubkey_done(&k);

    assert_int_equal(parse(ecdsa384, &k, why, sizeof(why)), 0);
    assert_string_equal(k.fingerprint, ecdsa384_fp);
    assert_string_equal(k.comment, "");
    assert_int_equal(k.bits, 384);
    ssh_pubkey_done(&k);
}

/* Builds "TYPE base64(blob)" from raw blob bytes. */
static void line_from_blob(const char *type, const uint8_t *blob, size_t len, char *out, size_t n)
{
    char b64[4096];
    sodium_bin2base64(b64, sizeof(b64), blob, len, sodium_base64_VARIANT_ORIGINAL);
    snprintf(out, n, "%s %s", type, b64);
}

static size_t put_string(uint8_t *p, const void *s, size_t len)
{
    p[0] = (uint8_t)(len >> 24);
    p[1] = (uint8_t)(len >> 16);
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
    memcpy(p + 4, s, len);
    return 4 + len;
}

static void test_refuses_short_rsa_and_bad_blobs(void **state)
{
    (void)state;
    struct ssh_pubkey k;
    char why[256], line[8192];
    uint8_t blob[2048], n[129];
    /* A 1024-bit modulus: odd, top bit set, so a leading zero byte. */
    memset(n, 0xab, sizeof(n));
    n[0] = 0;
    n[1] = 0xc1;
    n[128] = 0x01;
    size_t off = put_string(blob, "ssh-rsa", 7);
    off += put_string(blob + off, "\x01\x00\x01", 3);
    off += put_string(blob + off, n, sizeof(n));
    line_from_blob("ssh-rsa", blob, off, line, sizeof(line));
    assert_int_equal(parse(line, &k, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "1024 bits"));

    /* An ed25519 blob whose key is 31 bytes. */
    uint8_t key[32] = { 1 };
    off = put_string(blob, "ssh-ed25519", 11);
    off += put_string(blob + off, key, 31);
    line_from_blob("ssh-ed25519", blob, off, line, sizeof(line));
    assert_int_equal(parse(line, &k, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "32 bytes"));

    /* Stray bytes after a good ed25519 key. */
    off = put_string(blob, "ssh-ed25519", 11);
    off += put_string(blob + off, key, 32);
    blob[off++] = 0;
    line_from_blob("ssh-ed25519", blob, off, line, sizeof(line));
    assert_int_equal(parse(line, &k, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "stray"));

    /* The line says ed25519, the blob says rsa. */
    off = put_string(blob, "ssh-rsa", 7);
    off += put_string(blob + off, key, 32);
    line_from_blob("ssh-ed25519", blob, off, line, sizeof(line));
    assert_int_equal(parse(line, &k, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "does not match"));

    /* ecdsa naming another curve than its type. */
    uint8_t point[65] = { 4 };
    off = put_string(blob, "ecdsa-sha2-nistp256", 19);
    off += put_string(blob + off, "nistp384", 8);
    off += put_string(blob + off, point, sizeof(point));
    line_from_blob("ecdsa-sha2-nistp256", blob, off, line, sizeof(line));
    assert_int_equal(parse(line, &k, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "another curve"));
}

static void test_refuses_what_is_not_a_plain_key(void **state)
{
    (void)state;
    struct ssh_pubkey k;
    char why[256], line[4096];
    static const struct {
        const char *line, *reason;
    } cases[] = {
        { "", "empty" },
        { "   \n", "empty" },
        { "garbage", "not an accepted public key" },
        { "ssh-dss AAAAB3NzaC1kc3MAAACBAP", "DSA" },
        { "from=\"10.0.0.1\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN4W3BXxmCzGN+mNJqkKaOLv7D0zRqEnc/aj+GpLKkAs",
          "options" },
        { "ssh-ed25519-cert-v01@openssh.com AAAA", "certificates" },
        { "-----BEGIN OPENSSH PRIVATE KEY-----", "private key" },
        { "ssh-ed25519", "no key data" },
        { "ssh-ed25519 !!!!", "not valid base64" },
        { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN4W3BXxmCzGN+mNJqkKaOLv7D0zRqEnc/aj+GpLKk", "not valid base64" },
        { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN4W3BXxmCzGN+mNJqkKaOLv7D0zRqEnc/aj+GpLKkAs a\nb", "one line" },
        { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN4W3BXxmCzGN+mNJqkKaOLv7D0zRqEnc/aj+GpLKkAs a\x01", "control" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        why[0] = 0;
        assert_int_equal(parse(cases[i].line, &k, why, sizeof(why)), -EINVAL);
        if (!strstr(why, cases[i].reason))
            fail_msg("case %zu: \"%s\" gave \"%s\"", i, cases[i].line, why);
    }
    /* Too long is refused before anything is read. */
    memset(line, 'A', sizeof(line));
    char *big = malloc(SSH_PUBKEY_LINE_MAX + 2);
    memset(big, 'A', SSH_PUBKEY_LINE_MAX + 1);
    big[SSH_PUBKEY_LINE_MAX + 1] = 0;
    assert_int_equal(parse(big, &k, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "longer than"));
    free(big);
}

static void test_fingerprint_url_round_trip(void **state)
{
    (void)state;
    char url[SSH_FINGERPRINT_MAX], back[SSH_FINGERPRINT_MAX];
    ssh_fingerprint_to_url(ed25519_fp, url, sizeof(url));
    assert_string_equal(url, "SHA256:5EcbCjbDDUBxw6UkpJUP5aGbpMt7-0egwX2j9X6RUVA");
    assert_int_equal(ssh_fingerprint_from_url(url, back), 0);
    assert_string_equal(back, ed25519_fp);
    /* Without its prefix, and in the plain spelling, too. */
    assert_int_equal(ssh_fingerprint_from_url(url + 7, back), 0);
    assert_string_equal(back, ed25519_fp);
    assert_int_equal(ssh_fingerprint_from_url(ed25519_fp, back), 0);
    assert_int_equal(ssh_fingerprint_from_url("SHA256:short", back), -EINVAL);
    assert_int_equal(ssh_fingerprint_from_url("SHA256:5EcbCjbDDUBxw6UkpJUP5aGbpMt7-0egwX2j9X6RUV.", back), -EINVAL);
    assert_int_equal(ssh_fingerprint_from_url("../../etc/passwd", back), -EINVAL);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_the_usual_keys),
        cmocka_unit_test(test_refuses_short_rsa_and_bad_blobs),
        cmocka_unit_test(test_refuses_what_is_not_a_plain_key),
        cmocka_unit_test(test_fingerprint_url_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
