/* Request paths as the file server sees them: decoded once, with every "." and ".."
 * resolved here, so nothing below ever meets an encoded escape from the root. */
#include "http/http1-internal.h"

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int http_path_normalize(const char *path, size_t len, char *out, size_t outsize, size_t *ret_len)
{
    size_t i = 0, o = 0;
    bool trailing = false;

    if (len == 0 || path[0] != '/')
        return -EINVAL;
    if (outsize < len + 1)
        return -ENOBUFS;

    /* out holds "/seg/seg" with no trailing slash; each segment is decoded straight
     * after its '/', then dropped again if it turns out to be "." or "..". Output
     * never outgrows input: each byte out comes from at least one byte in. */
    while (i < len) {
        size_t seg = o;
        i++;   /* the '/' */
        out[o++] = '/';
        while (i < len && path[i] != '/') {
            char c = path[i];
            if (c == '%') {
                int hi, lo;
                if (len - i < 3 || (hi = hex_digit(path[i + 1])) < 0 ||
                    (lo = hex_digit(path[i + 2])) < 0)
                    return -EINVAL;
                c = (char)(hi << 4 | lo);
                /* An encoded '/' would split differently before and after decoding. */
                if (c == '/')
                    return -EINVAL;
                i += 3;
            } else
                i++;
            if (c == '\0')
                return -EINVAL;
            out[o++] = c;
        }
        size_t n = o - seg - 1;
        const char *s = out + seg + 1;
        if (n == 0 || (n == 1 && s[0] == '.')) {
            o = seg;
            trailing = true;
        } else if (n == 2 && s[0] == '.' && s[1] == '.') {
            if (seg == 0)
                return -EINVAL;   /* above the root */
            o = seg;
            while (o > 0 && out[o - 1] != '/')
                o--;
            o--;   /* the '/' that started the popped segment */
            trailing = true;
        } else
            trailing = false;
    }
    if (o == 0 || trailing)
        out[o++] = '/';
    out[o] = '\0';
    *ret_len = o;
    return 0;
}

int http_segment_decode(char *seg)
{
    char *out = seg;
    for (const char *in = seg; *in; in++) {
        if (*in != '%') {
            *out++ = *in;
            continue;
        }
        int hi = hex_digit(in[1]), lo = hi < 0 ? -1 : hex_digit(in[2]);
        if (lo < 0)
            return -EINVAL;
        char c = (char)(hi << 4 | lo);
        if (c == '/' || c == 0)
            return -EINVAL;
        *out++ = c;
        in += 2;
    }
    *out = 0;
    return 0;
}
