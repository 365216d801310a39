/* Public key lines, checked as strictly as sshd would use them: the blob is decoded
 * and every field of the key read, so that what the store keeps is a key OpenSSH
 * clients can actually log in with, and its fingerprint is the one ssh-keygen -l
 * shows the user (SHA-256 of the blob, base64 without padding). */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>

#include "common/util.h"
#include "ssh/ssh.h"

struct reader {
    const uint8_t *p;
    size_t left;
};

/* An SSH "string" (RFC 4251 section 5): u32 length, then the bytes. */
static bool read_string(struct reader *r, const uint8_t **ret, size_t *ret_len)
{
    if (r->left < 4)
        return false;
    uint32_t len = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    if (len > r->left - 4)
        return false;
    *ret = r->p + 4;
    *ret_len = len;
    r->p += 4 + len;
    r->left -= 4 + len;
    return true;
}

static bool string_is(const uint8_t *p, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(p, s, len) == 0;
}

static int fail(char *why, size_t n, const char *fmt, ...) _printf_(3, 4);
static int fail(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (why && n)
        vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A positive mpint (RFC 4251): no leading zero byte unless the top bit needs it.
 * Its size in bits, or 0 when malformed, zero or negative. */
static unsigned mpint_bits(const uint8_t *p, size_t len)
{
    if (len == 0 || (p[0] & 0x80))
        return 0;
    if (p[0] == 0) {
        if (len == 1 || !(p[1] & 0x80))
            return 0;
        p++;
        len--;
    }
    if (len > SSH_PUBKEY_RSA_MAX_BITS / 8 + 1)
        return 0;
    unsigned bits = (unsigned)len * 8;
    for (uint8_t top = p[0]; !(top & 0x80); top <<= 1)
        bits--;
    return bits;
}

static const struct curve {
    const char *type, *name;
    size_t point_len;        /* uncompressed: 0x04 || X || Y */
    unsigned bits;
} curves[] = {
    { "ecdsa-sha2-nistp256", "nistp256", 65, 256 },
    { "ecdsa-sha2-nistp384", "nistp384", 97, 384 },
    { "ecdsa-sha2-nistp521", "nistp521", 133, 521 },
};

/* Reads the blob's fields after its type string. */
static int check_blob(const char *type, struct reader *r, unsigned *ret_bits, char *why, size_t n)
{
    const uint8_t *a, *b;
    size_t alen, blen;
    if (streq(type, "ssh-ed25519")) {
        if (!read_string(r, &a, &alen) || alen != crypto_sign_PUBLICKEYBYTES)
            return fail(why, n, "the ssh-ed25519 key is not 32 bytes long");
        *ret_bits = 256;
    } else if (streq(type, "ssh-rsa")) {
        if (!read_string(r, &a, &alen) || !read_string(r, &b, &blen))
            return fail(why, n, "the ssh-rsa key is cut short");
        unsigned ebits = mpint_bits(a, alen), nbits = mpint_bits(b, blen);
        if (ebits == 0 || ebits > 64 || !(a[alen - 1] & 1) || (ebits == 1))
            return fail(why, n, "the ssh-rsa key has an invalid public exponent");
        if (nbits == 0 || !(b[blen - 1] & 1))
            return fail(why, n, "the ssh-rsa key has an invalid modulus");
        if (nbits < SSH_PUBKEY_RSA_MIN_BITS)
            return fail(why, n, "the ssh-rsa key has %u bits; at least %d are needed (make a new one with "
                        "ssh-keygen -t ed25519)", nbits, SSH_PUBKEY_RSA_MIN_BITS);
        if (nbits > SSH_PUBKEY_RSA_MAX_BITS)
            return fail(why, n, "the ssh-rsa key has more than %d bits", SSH_PUBKEY_RSA_MAX_BITS);
        *ret_bits = nbits;
    } else {
        const struct curve *c = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(curves); i++)
            if (streq(type, curves[i].type))
                c = &curves[i];
        if (!c)
            return fail(why, n, "key type %s is not accepted", type);
        if (!read_string(r, &a, &alen) || !string_is(a, alen, c->name))
            return fail(why, n, "the %s key names another curve", type);
        if (!read_string(r, &b, &blen) || blen != c->point_len || b[0] != 0x04)
            return fail(why, n, "the %s key's point is not an uncompressed point of %s", type, c->name);
        *ret_bits = c->bits;
    }
    if (r->left != 0)
        return fail(why, n, "the %s key has %zu stray bytes after it", type, r->left);
    return 0;
}

static bool type_known(const char *t)
{
    if (streq(t, "ssh-ed25519") || streq(t, "ssh-rsa"))
        return true;
    for (size_t i = 0; i < ARRAY_SIZE(curves); i++)
        if (streq(t, curves[i].type))
            return true;
    return false;
}

int ssh_pubkey_parse(const char *line, size_t len, struct ssh_pubkey *ret, char *why, size_t n)
{
    if (len > SSH_PUBKEY_LINE_MAX)
        return fail(why, n, "the key is longer than %d bytes", SSH_PUBKEY_LINE_MAX);
    if (memmem(line, len, "PRIVATE KEY", 11))
        return fail(why, n, "this is a private key; give the public one (the .pub file) and keep this one secret");
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r' || line[i] == 0)
            return fail(why, n, "give one key on one line");
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    size_t type_start = i;
    while (i < len && line[i] != ' ' && line[i] != '\t')
        i++;
    size_t type_len = i - type_start;
    if (type_len == 0)
        return fail(why, n, "the key is empty; give a line such as \"ssh-ed25519 AAAA... you@laptop\" "
                    "(the contents of ~/.ssh/id_ed25519.pub)");
    char type[32];
    if (type_len >= sizeof(type) || (memcpy(type, line + type_start, type_len), type[type_len] = 0, !type_known(type))) {
        /* The usual mistakes get their own sentence. */
        if (memchr(line + type_start, '=', type_len) || memchr(line + type_start, ',', type_len))
            return fail(why, n, "options before the key (such as from=... or command=...) are not accepted; "
                        "give just the key");
        if (type_len < sizeof(type) && (streq(type, "ssh-dss")))
            return fail(why, n, "DSA keys are not accepted; make an ed25519 key with ssh-keygen -t ed25519");
        if (memmem(line + type_start, type_len, "-cert-v01@openssh.com", 21))
            return fail(why, n, "certificates are not accepted; give the plain public key");
        return fail(why, n, "not an accepted public key: it must start with ssh-ed25519, "
                    "ecdsa-sha2-nistp256/384/521 or ssh-rsa");
    }
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    size_t b64_start = i;
    while (i < len && line[i] != ' ' && line[i] != '\t')
        i++;
    size_t b64_len = i - b64_start;
    if (b64_len == 0)
        return fail(why, n, "the %s key has no key data after its type", type);
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    size_t comment_len = len - i;
    while (comment_len > 0 && (line[i + comment_len - 1] == ' ' || line[i + comment_len - 1] == '\t'))
        comment_len--;
    if (comment_len > SSH_PUBKEY_COMMENT_MAX)
        return fail(why, n, "the key's comment is longer than %d characters", SSH_PUBKEY_COMMENT_MAX);
    for (size_t k = 0; k < comment_len; k++) {
        unsigned char c = (unsigned char)line[i + k];
        if (c < 0x20 || c == 0x7f)
            return fail(why, n, "the key's comment has a control character");
    }

    size_t max_bin = b64_len / 4 * 3 + 3;
    _cleanup_free_ uint8_t *blob = malloc(max_bin);
    if (!blob)
        return -ENOMEM;
    size_t blob_len = 0;
    const char *end = NULL;
    if (sodium_base642bin(blob, max_bin, line + b64_start, b64_len, NULL, &blob_len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 || end != line + b64_start + b64_len)
        return fail(why, n, "the %s key's data is not valid base64 (was it cut or wrapped?)", type);
    struct reader r = { blob, blob_len };
    const uint8_t *inner;
    size_t inner_len;
    if (!read_string(&r, &inner, &inner_len) || !string_is(inner, inner_len, type))
        return fail(why, n, "the key's data is not a %s key (the type before it does not match)", type);
    unsigned bits = 0;
    int e = check_blob(type, &r, &bits, why, n);
    if (e < 0)
        return e;

    struct ssh_pubkey k = { .bits = bits };
    snprintf(k.type, sizeof(k.type), "%s", type);
    k.base64 = strndup(line + b64_start, b64_len);
    if (!k.base64)
        return -ENOMEM;
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, blob, blob_len);
    char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];
    sodium_bin2base64(b64, sizeof(b64), digest, sizeof(digest), sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    snprintf(k.fingerprint, sizeof(k.fingerprint), "SHA256:%s", b64);
    memcpy(k.comment, line + i, comment_len);
    k.comment[comment_len] = 0;
    *ret = k;
    return 0;
}

void ssh_pubkey_done(struct ssh_pubkey *key)
{
    if (!key)
        return;
    free(key->base64);
    *key = (struct ssh_pubkey){ 0 };
}

void ssh_fingerprint_to_url(const char *fingerprint, char *out, size_t n)
{
    if (n == 0)
        return;
    size_t i = 0;
    for (; fingerprint[i] && i + 1 < n; i++)
        out[i] = fingerprint[i] == '/' ? '_' : fingerprint[i] == '+' ? '-' : fingerprint[i];
    out[i] = 0;
}

int ssh_fingerprint_from_url(const char *s, char ret[SSH_FINGERPRINT_MAX])
{
    if (str_startswith(s, "SHA256:"))
        s += 7;
    /* 32 bytes are 43 base64 characters without padding; the last one carries
     * only 4 bits, so it is one of the 16 characters whose low 2 bits are zero. */
    if (strlen(s) != 43)
        return -EINVAL;
    char out[SSH_FINGERPRINT_MAX] = "SHA256:";
    for (size_t i = 0; i < 43; i++) {
        char c = s[i];
        if (c == '_')
            c = '/';
        else if (c == '-')
            c = '+';
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/'))
            return -EINVAL;
        out[7 + i] = c;
    }
    out[7 + 43] = 0;
    uint8_t bin[33];
    size_t bin_len;
    if (sodium_base642bin(bin, sizeof(bin), out + 7, 43, NULL, &bin_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0 || bin_len != 32)
        return -EINVAL;
    memcpy(ret, out, sizeof(out));
    return 0;
}
