/* Names users choose. A site name becomes a directory, a uid name and a host label, so
 * the rules are the narrowest that all three accept. Host names are checked strictly:
 * what this returns goes into routes, certificates and logs. */
#include "common/names.h"

bool site_name_valid(const char *name)
{
    if (!name)
        return false;
    size_t n = strlen(name);
    if (n < 1 || n > 63 || name[0] == '-' || name[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

bool site_name_reserved(const char *name)
{
    static const char *const reserved[] = { "panel", "api", "www" };
    for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
        if (streq(name, reserved[i]))
            return true;
    return false;
}

bool user_name_valid(const char *name)
{
    if (!name)
        return false;
    size_t n = strlen(name);
    if (n < 1 || n > 32 || name[n - 1] == '.')
        return false;
    if (!((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return false;
    }
    return true;
}

/* ---- punycode (RFC 3492 section 6.3) ---- */

enum {
    PUNY_BASE = 36,
    PUNY_TMIN = 1,
    PUNY_TMAX = 26,
    PUNY_SKEW = 38,
    PUNY_DAMP = 700,
    PUNY_INITIAL_BIAS = 72,
    PUNY_INITIAL_N = 0x80,
};

static char puny_digit(uint32_t d)
{
    return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

static uint32_t puny_adapt(uint32_t delta, uint32_t numpoints, bool first)
{
    delta = first ? delta / PUNY_DAMP : delta / 2;
    delta += delta / numpoints;
    uint32_t k = 0;
    while (delta > ((PUNY_BASE - PUNY_TMIN) * PUNY_TMAX) / 2) {
        delta /= PUNY_BASE - PUNY_TMIN;
        k += PUNY_BASE;
    }
    return k + (PUNY_BASE - PUNY_TMIN + 1) * delta / (delta + PUNY_SKEW);
}

int punycode_encode(const uint32_t *cps, size_t n, char *out, size_t outsize)
{
    size_t o = 0;

    if (n > UINT32_MAX / 2)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (cps[i] > 0x10FFFF || (cps[i] >= 0xD800 && cps[i] <= 0xDFFF))
            return -EINVAL;
    if (outsize == 0)
        return -ERANGE;

    for (size_t i = 0; i < n; i++)
        if (cps[i] < 0x80) {
            if (o + 1 >= outsize)
                return -ERANGE;
            out[o++] = (char)cps[i];
        }
    uint32_t b = (uint32_t)o, h = b;
    if (b > 0) {
        if (o + 1 >= outsize)
            return -ERANGE;
        out[o++] = '-';
    }

    uint32_t cp = PUNY_INITIAL_N, delta = 0, bias = PUNY_INITIAL_BIAS;
    while (h < n) {
        /* The smallest code point not yet handled. */
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < n; i++)
            if (cps[i] >= cp && cps[i] < m)
                m = cps[i];
        if (m - cp > (UINT32_MAX - delta) / (h + 1))
            return -EINVAL; /* overflow: cannot happen with n bounded as above */
        delta += (m - cp) * (h + 1);
        cp = m;
        for (size_t i = 0; i < n; i++) {
            if (cps[i] < cp && ++delta == 0)
                return -EINVAL;
            if (cps[i] != cp)
                continue;
            uint32_t q = delta;
            for (uint32_t k = PUNY_BASE;; k += PUNY_BASE) {
                uint32_t t = k <= bias ? PUNY_TMIN : k >= bias + PUNY_TMAX ? PUNY_TMAX : k - bias;
                if (q < t)
                    break;
                if (o + 1 >= outsize)
                    return -ERANGE;
                out[o++] = puny_digit(t + (q - t) % (PUNY_BASE - t));
                q = (q - t) / (PUNY_BASE - t);
            }
            if (o + 1 >= outsize)
                return -ERANGE;
            out[o++] = puny_digit(q);
            bias = puny_adapt(delta, h + 1, h == b);
            delta = 0;
            h++;
        }
        delta++;
        cp++;
    }
    out[o] = 0;
    return 0;
}

/* ---- host names ---- */

#define DOMAIN_MAX 253
#define LABEL_MAX 63
/* Each code point of a label yields at least one output character, so longer input
 * cannot make a valid name; refusing it early bounds the work. */
#define DOMAIN_INPUT_MAX 1024


/* RFC 3490 section 3.1: these full stops separate labels like '.' does. */
static bool is_dot(uint32_t cp)
{
    return cp == '.' || cp == 0x3002 || cp == 0xFF0E || cp == 0xFF61;
}

/* Why a non-ASCII code point may not be in a host name, or NULL if it may. This is
 * not IDNA2008's full table; it refuses what could hide or fake structure. */
static const char *non_ascii_refusal(uint32_t cp)
{
    if (cp <= 0x9F)
        return "the domain name contains a control character";
    if (cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
        cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return "the domain name contains a space";
    if (cp == 0xAD || (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
        (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF0 && cp <= 0xFFFF) ||
        (cp >= 0xE0000 && cp <= 0xE0FFF))
        return "the domain name contains an invisible or formatting character";
    /* Fullwidth and lookalike forms of '/', ':', '@'... read as ASCII after the
     * normalisation browsers apply, so "evil.com／x" could point elsewhere. */
    if ((cp >= 0xFF00 && cp <= 0xFFEF) || cp == 0x2044 || cp == 0x2215 || cp == 0x2236 ||
        cp == 0xFE55 || cp == 0xFE6B || cp == 0xFE13 || cp == 0xFE6A)
        return "the domain name contains a character not allowed in host names";
    if ((cp >= 0xE000 && cp <= 0xF8FF) || cp >= 0xF0000 || (cp >= 0xFDD0 && cp <= 0xFDEF) ||
        (cp & 0xFFFE) == 0xFFFE)
        return "the domain name contains a private-use or non-character code point";
    return NULL;
}

static const char *ascii_refusal(uint32_t cp)
{
    if (cp < 0x20 || cp == 0x7F)
        return "the domain name contains a control character";
    if (cp == ' ')
        return "the domain name contains a space";
    if (cp == '_')
        return "an underscore is not allowed in host names";
    return "the domain name contains a character not allowed in host names";
}

/* Checks one label of code points (ASCII already lowercased) and appends its ASCII
 * form to out[*len]. */
static const char *label_append(const uint32_t *cps, size_t n, char *out, size_t *len)
{
    bool ascii = true;
    char label[LABEL_MAX + 1];
    size_t llen;

    if (n == 0)
        return "a label is empty (two dots in a row, or a leading dot)";
    if (n > LABEL_MAX)
        return "a label is longer than 63 characters";
    if (cps[0] == '-' || cps[n - 1] == '-')
        return "a label starts or ends with '-'";
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cps[i];
        const char *why;
        if (c >= 0x80) {
            why = non_ascii_refusal(c);
            ascii = false;
        } else
            why = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ? NULL
                                                                                : ascii_refusal(c);
        if (why)
            return why;
    }

    if (ascii) {
        for (size_t i = 0; i < n; i++)
            label[i] = (char)cps[i];
        llen = n;
    } else {
        /* RFC 5891 4.2.3.1: "??--" is reserved for A-labels like "xn--". */
        if (n >= 4 && cps[2] == '-' && cps[3] == '-')
            return "a label with non-ASCII letters has '--' in its third and fourth places";
        memcpy(label, "xn--", 4);
        int r = punycode_encode(cps, n, label + 4, sizeof(label) - 4);
        if (r < 0)
            return "a label is longer than 63 characters once converted to ASCII";
        llen = strlen(label);
    }

    if (*len + (*len > 0) + llen > DOMAIN_MAX)
        return "the domain name is longer than 253 characters";
    if (*len > 0)
        out[(*len)++] = '.';
    memcpy(out + *len, label, llen);
    *len += llen;
    out[*len] = 0;
    return NULL;
}

static const char *normalize(const char *input, char *out)
{
    uint32_t cps[DOMAIN_INPUT_MAX];
    size_t n = 0, len = 0, labels = 0, top = 0;
    size_t in_len = strlen(input);

    if (in_len > DOMAIN_INPUT_MAX)
        return "the domain name is longer than 253 characters";
    for (size_t i = 0; i < in_len;) {
        uint32_t cp;
        int k = utf8_decode((const unsigned char *)input + i, in_len - i, &cp);
        if (k < 0)
            return "the domain name is not valid UTF-8";
        i += (size_t)k;
        if (cp >= 'A' && cp <= 'Z')
            cp += 'a' - 'A';
        cps[n++] = is_dot(cp) ? '.' : cp;
    }
    /* A fully qualified name may end with its root dot: "example.com." */
    if (n > 0 && cps[n - 1] == '.')
        n--;
    if (n == 0)
        return "the domain name is empty";

    for (size_t start = 0; start <= n;) {
        size_t end = start;
        while (end < n && cps[end] != '.')
            end++;
        const char *why = label_append(cps + start, end - start, out, &len);
        if (why)
            return why;
        labels++;
        top = start;
        start = end + 1;
    }
    if (labels < 2)
        return "the domain name needs at least two labels, like example.com";

    /* An all-digit top label makes "1.2.3.4" look like a name. */
    bool digits = true;
    for (size_t i = top; i < n && digits; i++)
        digits = cps[i] >= '0' && cps[i] <= '9';
    if (digits)
        return "the last label is all digits, which reads as an IP address";
    return NULL;
}

int domain_normalize(const char *input, char **ret_ascii, const char **ret_reason)
{
    char out[DOMAIN_MAX + 1];
    const char *why = input ? normalize(input, out) : "the domain name is empty";

    if (why) {
        if (ret_reason)
            *ret_reason = why;
        return -EINVAL;
    }
    char *s = strdup(out);
    if (!s)
        return -ENOMEM;
    *ret_ascii = s;
    return 0;
}
