/* IMF-fixdate (RFC 9110 §5.6.7), the one date format HTTP/1.1 senders must use. */
#include "http/http1-internal.h"

static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static void put2(char *o, int v)
{
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
}

void http_date_format(time_t t, char out[static 30])
{
    struct tm tm;

    /* Digits written by hand: the front formats a date on every response, and a
     * year past 9999 (or before 0) is clamped rather than overflowing out. */
    if (!gmtime_r(&t, &tm)) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    int year = tm.tm_year + 1900;
    if (year < 0)
        year = 0;
    if (year > 9999)
        year = 9999;
    memcpy(out, days[tm.tm_wday], 3);
    memcpy(out + 3, ", ", 2);
    put2(out + 5, tm.tm_mday);
    out[7] = ' ';
    memcpy(out + 8, months[tm.tm_mon], 3);
    out[11] = ' ';
    put2(out + 12, year / 100);
    put2(out + 14, year % 100);
    out[16] = ' ';
    put2(out + 17, tm.tm_hour);
    out[19] = ':';
    put2(out + 20, tm.tm_min);
    out[22] = ':';
    put2(out + 23, tm.tm_sec);
    memcpy(out + 25, " GMT", 5);   /* with the NUL */
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!http1_cc_is(s[i], HTTP1_CC_DIGIT))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int http_date_parse(const char *s, size_t len, time_t *ret)
{
    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    if (len != 29 || memcmp(s + 3, ", ", 2) != 0 || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[19] != ':' || s[22] != ':' || memcmp(s + 25, " GMT", 4) != 0)
        return -EINVAL;

    int wday = -1, mon = -1;
    for (int k = 0; k < 7; k++)
        if (memcmp(s, days[k], 3) == 0)
            wday = k;
    for (int k = 0; k < 12; k++)
        if (memcmp(s + 8, months[k], 3) == 0)
            mon = k;
    int mday = num(s + 5, 2), year = num(s + 12, 4);
    int hour = num(s + 17, 2), min = num(s + 20, 2), sec = num(s + 23, 2);
    if (wday < 0 || mon < 0 || mday < 1 || year < 0 || hour < 0 || hour > 23 || min < 0 ||
        min > 59 || sec < 0 || sec > 60)
        return -EINVAL;

    struct tm tm = { .tm_year = year - 1900, .tm_mon = mon, .tm_mday = mday,
                     .tm_hour = hour, .tm_min = min, .tm_sec = sec };
    time_t t = timegm(&tm);
    /* timegm normalises 31 Feb into March: a date that moved was not a date. The
     * weekday must agree too, as a cheap check that the sender meant this day. */
    struct tm back;
    if (!gmtime_r(&t, &back) || back.tm_mday != mday || back.tm_mon != mon ||
        back.tm_wday != wday)
        return -EINVAL;
    *ret = t;
    return 0;
}
