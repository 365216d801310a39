#include "common/util.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

int safe_close(int fd)
{
    if (fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return -1;
}

char *xstrdup(const char *s)
{
    char *r = strdup(s);
    if (!r)
        abort();
    return r;
}

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
    uint64_t v = 0;
    if (!s || !*s)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -ERANGE;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < min || v > max)
        return -ERANGE;
    *ret = v;
    return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
    char digits[32];
    size_t n = strlen(s ?: "");
    uint64_t mult = 1, v;

    if (n == 0 || n >= sizeof(digits))
        return -EINVAL;
    memcpy(digits, s, n + 1);
    switch (digits[n - 1]) {
    case 'k': case 'K': mult = 1ULL << 10; break;
    case 'm': case 'M': mult = 1ULL << 20; break;
    case 'g': case 'G': mult = 1ULL << 30; break;
    case 't': case 'T': mult = 1ULL << 40; break;
    default: break;
    }
    if (mult != 1)
        digits[--n] = 0;
    int r = parse_uint(digits, 0, UINT64_MAX, &v);
    if (r < 0)
        return r;
    if (v > UINT64_MAX / mult)
        return -ERANGE;
    *ret = v * mult;
    return 0;
}

void format_size(uint64_t bytes, char *out, size_t n)
{
    static const char units[] = "KMGT";
    if (bytes < 1024) {
        snprintf(out, n, "%" PRIu64, bytes);
        return;
    }
    double v = (double)bytes;
    int u = -1;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    if (v == (double)(uint64_t)v)
        snprintf(out, n, "%" PRIu64 "%c", (uint64_t)v, units[u]);
    else
        snprintf(out, n, "%.1f%c", v, units[u]);
}

int parse_cpu(const char *s, uint32_t *ret_millis)
{
    uint64_t whole = 0, frac = 0;
    int frac_digits = 0;
    const char *p = s;

    if (!s || !*s || *s == '.')
        return -EINVAL;
    for (; *p && *p != '.'; p++) {
        if (*p < '0' || *p > '9' || whole > 1000)
            return -EINVAL;
        whole = whole * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        p++;
        if (!*p)
            return -EINVAL;
        for (; *p; p++) {
            if (*p < '0' || *p > '9' || frac_digits >= 3)
                return -EINVAL;
            frac = frac * 10 + (uint64_t)(*p - '0');
            frac_digits++;
        }
    }
    while (frac_digits < 3) {
        frac *= 10;
        frac_digits++;
    }
    uint64_t millis = whole * 1000 + frac;
    if (millis == 0 || millis > 1024 * 1000)
        return -ERANGE;
    *ret_millis = (uint32_t)millis;
    return 0;
}

/* Follows the Unicode table of well-formed sequences (Table 3-7). */
int utf8_decode(const unsigned char *s, size_t len, uint32_t *ret_cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *ret_cp = c;
        return 1;
    }
    unsigned need;
    unsigned char lo = 0x80, hi = 0xBF;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        cp = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        cp = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return -1;
    for (unsigned i = 1; i <= need; i++) {
        if (i >= len || s[i] < lo || s[i] > hi)
            return -(int)i;
        cp = (cp << 6) | (s[i] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    *ret_cp = cp;
    return (int)need + 1;
}
