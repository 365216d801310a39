#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

static int max_level = LOG_INFO;
static const char *ident = "berth";
static int journal = -1;   /* -1 unknown, 0 no, 1 stderr is journald's stream */

static const char *const level_names[] = {
    [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit", [LOG_ERR] = "error",
    [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void log_set_max_level(int level) { max_level = level; }
int log_get_max_level(void) { return max_level; }
void log_set_ident(const char *s) { ident = s; }

int log_level_from_string(const char *s)
{
    for (int i = LOG_ERR; i <= LOG_DEBUG; i++)
        if (streq(s, level_names[i]))
            return i;
    return -EINVAL;
}

/* journald sets JOURNAL_STREAM=dev:ino for the stream it connected; only when stderr
 * is that very stream do we switch to "<N>" prefixes (sd-daemon(3)). */
static bool stderr_is_journal(void)
{
    if (journal >= 0)
        return journal;
    journal = 0;
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
        st.st_dev == dev && st.st_ino == ino)
        journal = 1;
    return journal;
}

/* Messages carry what peers chose (a sign-in name, an archive's entry names): a
 * newline there would start a forged line of its own, or under journald a new entry
 * with a "<N>" priority of the peer's choosing. Control bytes are written as \xNN. */
static void escape_controls(const char *in, char *out, size_t n)
{
    size_t k = 0;
    for (; *in && k + 1 < n; in++) {
        unsigned char c = (unsigned char)*in;
        if (c >= 0x20 && c != 0x7f) {
            out[k++] = (char)c;
            continue;
        }
        if (k + 5 > n)
            break;
        snprintf(out + k, 5, "\\x%02x", c);
        k += 4;
    }
    out[k] = 0;
}

static _printf_(3, 0) void emit(int level, int error, const char *fmt, va_list ap)
{
    char raw[2048], msg[2048];
    int n = vsnprintf(raw, sizeof(raw), fmt, ap);
    if (n < 0)
        return;
    if (error)
        snprintf(raw + MIN((size_t)n, sizeof(raw) - 1), sizeof(raw) - MIN((size_t)n, sizeof(raw) - 1),
                 ": %s", strerror(error));
    escape_controls(raw, msg, sizeof(msg));
    if (stderr_is_journal()) {
        fprintf(stderr, "<%d>%s\n", level, msg);
    } else {
        char ts[32];
        struct timespec now;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(stderr, "%s.%03ldZ %s[%d] %s: %s\n", ts, now.tv_nsec / 1000000, ident,
                (int)getpid(), level_names[level], msg);
    }
}

void log_full(int level, const char *fmt, ...)
{
    if (level > max_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, 0, fmt, ap);
    va_end(ap);
}

int log_full_errno(int level, int error, const char *fmt, ...)
{
    error = abs(error);
    if (level <= max_level) {
        int saved = errno;
        va_list ap;
        va_start(ap, fmt);
        emit(level, error, fmt, ap);
        va_end(ap);
        errno = saved;
    }
    return -error;
}
