/* The chunked transfer coding (RFC 9112 §7.1), decoded in place. Every raw byte is
 * consumed on each call, so the caller's buffer only ever holds decoded data. */
#include "http/http1-internal.h"

enum {
    CK_SIZE = 0,     /* chunk-size hex digits */
    CK_BWS,          /* whitespace after the size: only a ';' may follow */
    CK_EXT,          /* chunk extensions, up to CR */
    CK_SIZE_LF,
    CK_DATA,
    CK_DATA_CR,
    CK_DATA_LF,
    CK_TRAILER,      /* start of a trailer line, or the final CRLF */
    CK_TRAILER_NAME,
    CK_TRAILER_VALUE,
    CK_TRAILER_LF,
    CK_FINAL_LF,
    CK_DONE,
};

void http1_chunked_init(struct http1_chunked *c)
{
    *c = (struct http1_chunked){ .state = CK_SIZE };
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Extensions and trailers are read only to be dropped: bound them so a peer cannot
 * keep us parsing nothing forever. */
static bool extra_add(struct http1_chunked *c, size_t n)
{
    c->ext_len += n;
    return c->ext_len <= HTTP1_CHUNKED_MAX_EXTRA;
}

int http1_chunked_decode(struct http1_chunked *c, char *buf, size_t *len, size_t *ret_extra)
{
    size_t n = *len, i = 0, o = 0, k;
    int st = c->state;

    if (st == CK_DONE) {
        *len = 0;
        if (ret_extra)
            *ret_extra = n;
        return 1;
    }
    while (i < n) {
        char ch = buf[i];
        switch (st) {
        case CK_SIZE: {
            int d = hex_value(ch);
            if (d >= 0) {
                /* 16 digits fill 64 bits: a 17th is refused, not wrapped (leading
                 * zeros included, which also bounds the line). */
                if (c->digits >= 16)
                    return -400;
                c->remaining = (c->remaining << 4) | (uint64_t)d;
                c->digits++;
                i++;
                continue;
            }
            if (c->digits == 0)
                return -400;
            if (ch == ';')
                st = CK_EXT;
            else if (ch == ' ' || ch == '\t')
                st = CK_BWS;
            else if (ch == '\r')
                st = CK_SIZE_LF;
            else
                return -400;
            if (st != CK_SIZE_LF && !extra_add(c, 1))
                return -400;
            i++;
            break;
        }
        case CK_BWS:
            if (!extra_add(c, 1))
                return -400;
            if (ch == ';')
                st = CK_EXT;
            else if (ch != ' ' && ch != '\t')
                return -400;
            i++;
            break;
        case CK_EXT:
            k = i;
            while (i < n && http1_cc_is(buf[i], HTTP1_CC_VALUE))
                i++;
            if (!extra_add(c, i - k))
                return -400;
            if (i == n)
                break;
            if (buf[i] != '\r')
                return -400;   /* bare LF or a CTL */
            i++;
            st = CK_SIZE_LF;
            break;
        case CK_SIZE_LF:
            if (ch != '\n')
                return -400;
            i++;
            st = c->remaining ? CK_DATA : CK_TRAILER;
            break;
        case CK_DATA:
            k = (size_t)MIN((uint64_t)(n - i), c->remaining);
            memmove(buf + o, buf + i, k);
            o += k;
            i += k;
            c->remaining -= k;
            c->total += k;
            if (c->remaining == 0)
                st = CK_DATA_CR;
            break;
        case CK_DATA_CR:
            if (ch != '\r')
                return -400;
            i++;
            st = CK_DATA_LF;
            break;
        case CK_DATA_LF:
            if (ch != '\n')
                return -400;
            i++;
            c->digits = 0;
            st = CK_SIZE;
            break;
        case CK_TRAILER:
            if (ch == '\r') {
                i++;
                st = CK_FINAL_LF;
                break;
            }
            if (!http1_cc_is(ch, HTTP1_CC_TCHAR))
                return -400;   /* obs-fold, bare LF, garbage */
            st = CK_TRAILER_NAME;
            break;
        case CK_TRAILER_NAME:
            k = i;
            while (i < n && http1_cc_is(buf[i], HTTP1_CC_TCHAR))
                i++;
            if (!extra_add(c, i - k))
                return -400;
            if (i == n)
                break;
            if (buf[i] != ':' || !extra_add(c, 1))
                return -400;
            i++;
            st = CK_TRAILER_VALUE;
            break;
        case CK_TRAILER_VALUE:
            k = i;
            while (i < n && http1_cc_is(buf[i], HTTP1_CC_VALUE))
                i++;
            if (!extra_add(c, i - k))
                return -400;
            if (i == n)
                break;
            if (buf[i] != '\r')
                return -400;
            i++;
            st = CK_TRAILER_LF;
            break;
        case CK_TRAILER_LF:
            if (ch != '\n')
                return -400;
            i++;
            st = CK_TRAILER;
            break;
        case CK_FINAL_LF:
            if (ch != '\n')
                return -400;
            i++;
            /* The next pipelined message starts here: keep it, right after the data. */
            memmove(buf + o, buf + i, n - i);
            c->state = CK_DONE;
            *len = o;
            if (ret_extra)
                *ret_extra = n - i;
            return 1;
        default:
            return -400;
        }
    }
    c->state = st;
    *len = o;
    if (ret_extra)
        *ret_extra = 0;
    return HTTP1_INCOMPLETE;
}
