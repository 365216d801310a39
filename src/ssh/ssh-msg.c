/* The broker's message codec: small, length-prefixed, and strict, because berthd
 * (root) decodes what an unprivileged process facing the internet wrote. */
#include <stdio.h>

#include "common/util.h"
#include "ssh/ssh.h"

int ssh_msg_encode(uint8_t type, const char *const *fields, size_t n, uint8_t *out, size_t size)
{
    if (n > SSH_MSG_FIELDS_MAX)
        return -EINVAL;
    if (size < 2)
        return -EMSGSIZE;
    size_t off = 0;
    out[off++] = type;
    out[off++] = (uint8_t)n;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(fields[i]);
        if (len > UINT16_MAX || size - off < 2 + len)
            return -EMSGSIZE;
        out[off++] = (uint8_t)(len >> 8);
        out[off++] = (uint8_t)len;
        memcpy(out + off, fields[i], len);
        off += len;
    }
    if (off > SSH_MSG_MAX)
        return -EMSGSIZE;
    return (int)off;
}

int ssh_msg_decode(const uint8_t *p, size_t len, struct ssh_msg *ret)
{
    if (len < 2 || len > SSH_MSG_MAX || p[1] > SSH_MSG_FIELDS_MAX)
        return -EBADMSG;
    struct ssh_msg m = { .type = p[0], .n_fields = p[1] };
    size_t off = 2;
    for (size_t i = 0; i < m.n_fields; i++) {
        if (len - off < 2)
            return -EBADMSG;
        size_t flen = (size_t)p[off] << 8 | p[off + 1];
        off += 2;
        if (len - off < flen || memchr(p + off, 0, flen))
            return -EBADMSG;
        m.fields[i].data = (const char *)p + off;
        m.fields[i].len = flen;
        off += flen;
    }
    if (off != len)
        return -EBADMSG;
    *ret = m;
    return 0;
}

int ssh_msg_field(const struct ssh_msg *m, size_t i, char *out, size_t n)
{
    if (i >= m->n_fields)
        return -EINVAL;
    if (m->fields[i].len >= n)
        return -E2BIG;
    memcpy(out, m->fields[i].data, m->fields[i].len);
    out[m->fields[i].len] = 0;
    return 0;
}
