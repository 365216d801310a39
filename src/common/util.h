/* Small helpers shared by every component: scoped cleanup, ownership moves, string
 * comparisons. Header-only. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Move ownership out of a cleanup-managed variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _p_ = (p); (p) = NULL; _p_; })
#define TAKE_FD(fd) ({ int _fd_ = (fd); (fd) = -1; _fd_; })

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

static inline bool streq(const char *a, const char *b) { return strcmp(a, b) == 0; }
static inline bool streq_ptr(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}
static inline bool str_startswith(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}
/* Case-insensitive (ASCII letters only, as HTTP means it) compare of n bytes. */
static inline bool ascii_case_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + ('a' - 'A'));
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + ('a' - 'A'));
        if (x != y)
            return false;
    }
    return true;
}
/* Case-insensitive compare of a (ptr,len) token with a NUL-terminated ASCII literal.
 * Inline so that a literal's length is known at compile time: the front calls
 * this for every header field of every request. */
static inline bool mem_case_eq(const char *p, size_t len, const char *lit)
{
    return __builtin_strlen(lit) == len && ascii_case_eq(p, lit, len);
}

/* Close an fd, keeping errno. Returns -1 for `fd = safe_close(fd)`. */
int safe_close(int fd);

/* strdup that aborts on OOM: used only for small start-up strings. */
char *xstrdup(const char *s);

/* Monotonic milliseconds, and wall-clock seconds since the epoch. */
uint64_t now_ms(void);
int64_t now_s(void);

/* Parses a size like "256M", "1G", "512K", "1048576" into bytes. -EINVAL on bad
 * syntax, -ERANGE on overflow. */
int parse_size(const char *s, uint64_t *ret);
/* Formats bytes as "256M"/"1.5G" into out (at least 16 bytes). */
void format_size(uint64_t bytes, char *out, size_t n);
/* Parses an unsigned decimal integer within [min, max]. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret);
/* Decodes one UTF-8 sequence at s[0..len) (len > 0), well-formed only: no
 * overlongs, no surrogates, nothing past U+10FFFF. Returns its length and the code
 * point, or minus the length of the maximal ill-formed prefix (at least 1), so a
 * caller replacing bad input with U+FFFD does it once per subpart. */
int utf8_decode(const unsigned char *s, size_t len, uint32_t *ret_cp);
/* Parses a CPU share like "0.5" or "2" into thousandths of a CPU (500, 2000). */
int parse_cpu(const char *s, uint32_t *ret_millis);
