/* Host table (open addressing, linear probing, backward-shift deletion: no
 * tombstones, so lookups stay short after many updates), host normalisation, and
 * the encoding of routes on the control socket. */
#include <ctype.h>
#include <sys/random.h>

#include "front/front-internal.h"

static uint64_t hash_seed;

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t front_hash(const char *key, size_t len)
{
    if (_unlikely_(hash_seed == 0)) {
        uint64_t s = 0;
        if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != sizeof(s))
            s = (uint64_t)now_ms() ^ (uint64_t)getpid() << 32;
        hash_seed = s | 1;
    }
    uint64_t h = hash_seed ^ (len * 0x9e3779b97f4a7c15ULL);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, key + i, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
    }
    uint64_t t = 0;
    for (size_t k = 0; i < len; i++, k++)
        t |= (uint64_t)(unsigned char)key[i] << (8 * k);
    h = mix(h ^ t);
    return h ? h : 1;   /* 0 marks an empty slot */
}

void front_map_init(struct front_map *m)
{
    *m = (struct front_map){ 0 };
}

void front_map_done(struct front_map *m)
{
    free(m->slots);
    *m = (struct front_map){ 0 };
}

static struct front_map_entry *find_slot(const struct front_map *m, uint64_t h, const char *key,
                                         size_t len)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct front_map_entry *e = &m->slots[i];
        if (e->hash == 0)
            return e;
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0)
            return e;
    }
}

static int grow(struct front_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct front_map_entry *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    struct front_map old = *m;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].hash)
            *find_slot(m, old.slots[i].hash, old.slots[i].key, old.slots[i].key_len) = old.slots[i];
    free(old.slots);
    return 0;
}

int front_map_put(struct front_map *m, const char *key, size_t len, void *value, void **ret_old)
{
    /* Load factor at most 1/2 keeps linear probes short. */
    if ((m->len + 1) * 2 > m->cap) {
        int r = grow(m);
        if (r < 0)
            return r;
    }
    uint64_t h = front_hash(key, len);
    struct front_map_entry *e = find_slot(m, h, key, len);
    void *old = e->hash ? e->value : NULL;
    if (!e->hash)
        m->len++;
    *e = (struct front_map_entry){ h, key, len, value };
    if (ret_old)
        *ret_old = old;
    return 0;
}

void *front_map_get(const struct front_map *m, const char *key, size_t len)
{
    if (m->len == 0)
        return NULL;
    struct front_map_entry *e = find_slot(m, front_hash(key, len), key, len);
    return e->hash ? e->value : NULL;
}

bool front_map_del(struct front_map *m, const char *key, size_t len, const void *value)
{
    if (m->len == 0)
        return false;
    struct front_map_entry *e = find_slot(m, front_hash(key, len), key, len);
    if (!e->hash || (value && e->value != value))
        return false;
    /* Backward-shift: pull later members of the probe run into the hole so that no
     * lookup ever stops early at it. */
    size_t mask = m->cap - 1, hole = (size_t)(e - m->slots);
    for (size_t i = (hole + 1) & mask; m->slots[i].hash; i = (i + 1) & mask) {
        size_t home = m->slots[i].hash & mask;
        /* Movable when its home is not within (hole, i] cyclically. */
        bool between = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!between) {
            m->slots[hole] = m->slots[i];
            hole = i;
        }
    }
    m->slots[hole] = (struct front_map_entry){ 0 };
    m->len--;
    return true;
}

int front_host_normalize(const char *in, size_t len, char *out, size_t *ret_len)
{
    size_t n = len;
    if (len > 0 && in[0] == '[') {
        const char *close = memchr(in, ']', len);
        if (!close)
            return -EINVAL;
        n = (size_t)(close - in) + 1;
        for (size_t i = 1; i + 1 < n; i++)
            if (!isxdigit((unsigned char)in[i]) && in[i] != ':' && in[i] != '.')
                return -EINVAL;
    } else {
        const char *colon = memchr(in, ':', len);
        if (colon)
            n = (size_t)(colon - in);
    }
    if (n < len) {
        /* A port: ":" followed by at most 5 digits (an empty port is allowed by
         * RFC 3986's grammar). */
        if (in[n] != ':' || len - n - 1 > 5)
            return -EINVAL;
        for (size_t i = n + 1; i < len; i++)
            if (!isdigit((unsigned char)in[i]))
                return -EINVAL;
    }
    if (n > 0 && in[n - 1] == '.')
        n--;
    if (n == 0 || n > FRONT_HOST_MAX + 2)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (in[0] != '[' && !isalnum(c) && c != '-' && c != '.' && c != '_')
            return -EINVAL;
        out[i] = (char)tolower(c);
    }
    out[n] = 0;
    *ret_len = n;
    return 0;
}

/* ---- control messages ----
 * UPSERT: u32 type, u32 site type, u32 state, u32 uid, u64 max_body, u32 n_hosts,
 * then strings each as u32 length + bytes: name, public_dir, logs_dir, backend, hosts;
 * then u32 upstream_timeout_ms, the certificate and its key (PEM strings), u32
 * https_redirect. A NULL string is length 0xffffffff. Both ends are the same binary, so host byte
 * order is fine. */

static int put_u32(struct buf *b, uint32_t v) { return buf_append(b, &v, sizeof(v)); }

static int put_str(struct buf *b, const char *s)
{
    if (!s)
        return put_u32(b, UINT32_MAX);
    size_t n = strlen(s);
    if (n > 4096)
        return -E2BIG;
    int r = put_u32(b, (uint32_t)n);
    return r < 0 ? r : buf_append(b, s, n);
}

/* A PEM certificate chain or key: longer than a path may be. */
#define PEM_MAX (64 * 1024)

static int put_pem(struct buf *b, const char *s)
{
    if (s && strlen(s) > PEM_MAX)
        return -E2BIG;
    if (!s)
        return put_u32(b, UINT32_MAX);
    int r = put_u32(b, (uint32_t)strlen(s));
    return r < 0 ? r : buf_append(b, s, strlen(s));
}

static bool path_ok(const char *p, bool required)
{
    if (!p)
        return !required;
    return p[0] == '/' && strlen(p) < 4096;
}

int front_msg_site_encode(const struct front_site *site, struct buf *out)
{
    if (!site->name || !site->name[0] || strlen(site->name) > 63)
        return -EINVAL;
    if (!path_ok(site->public_dir, true) || !path_ok(site->logs_dir, false) ||
        !path_ok(site->backend, false))
        return -EINVAL;
    if (site->n_hosts > 100000)
        return -E2BIG;
    if (!site->tls_cert != !site->tls_key)
        return -EINVAL;   /* a certificate is no use without its key, nor a key alone */
    for (size_t i = 0; i < site->n_hosts; i++) {
        char norm[FRONT_HOST_MAX + 3];
        size_t n;
        /* Hosts arrive normalised; refuse anything our lookup could never match. */
        if (front_host_normalize(site->hosts[i], strlen(site->hosts[i]), norm, &n) < 0 ||
            !streq(norm, site->hosts[i]))
            return -EINVAL;
    }
    struct buf b = BUF_INIT(FRONT_MSG_MAX);
    uint64_t mb = site->max_body;
    int r = 0;
    if ((r = put_u32(&b, FRONT_MSG_UPSERT)) < 0 || (r = put_u32(&b, site->type)) < 0 ||
        (r = put_u32(&b, site->state)) < 0 || (r = put_u32(&b, site->uid)) < 0 ||
        (r = buf_append(&b, &mb, sizeof(mb))) < 0 || (r = put_u32(&b, (uint32_t)site->n_hosts)) < 0 ||
        (r = put_str(&b, site->name)) < 0 || (r = put_str(&b, site->public_dir)) < 0 ||
        (r = put_str(&b, site->logs_dir)) < 0 || (r = put_str(&b, site->backend)) < 0)
        goto out;
    for (size_t i = 0; i < site->n_hosts && r >= 0; i++)
        r = put_str(&b, site->hosts[i]);
    if (r >= 0)
        r = put_u32(&b, site->upstream_timeout_ms);
    if (r >= 0)
        r = put_pem(&b, site->tls_cert);
    if (r >= 0)
        r = put_pem(&b, site->tls_key);
    if (r >= 0)
        r = put_u32(&b, site->https_redirect ? 1 : 0);
    if (r >= 0)
        r = buf_append(out, b.data, b.len);
out:
    buf_done(&b);
    return r == -ENOBUFS ? -E2BIG : r;
}

struct reader {
    const char *p;
    size_t left;
};

static int get(struct reader *rd, void *v, size_t n)
{
    if (rd->left < n)
        return -EBADMSG;
    memcpy(v, rd->p, n);
    rd->p += n;
    rd->left -= n;
    return 0;
}

/* Strings are NUL-terminated in place is not possible (the message is const), so
 * the encoder's strings are copied by the worker anyway; here we return pointers
 * into a NUL-terminated copy the caller owns. */
static int get_str(struct reader *rd, char **arena, const char **ret)
{
    uint32_t n;
    int r = get(rd, &n, sizeof(n));
    if (r < 0)
        return r;
    if (n == UINT32_MAX) {
        *ret = NULL;
        return 0;
    }
    if (n > rd->left || memchr(rd->p, 0, n))
        return -EBADMSG;
    memcpy(*arena, rd->p, n);
    (*arena)[n] = 0;
    *ret = *arena;
    *arena += n + 1;
    rd->p += n;
    rd->left -= n;
    return 0;
}

int front_msg_site_decode(const char *msg, size_t len, struct front_site_msg *ret)
{
    struct reader rd = { msg, len };
    uint32_t type, stype, state, uid, n_hosts;
    uint64_t mb;
    int r;
    if ((r = get(&rd, &type, 4)) < 0 || (r = get(&rd, &stype, 4)) < 0 ||
        (r = get(&rd, &state, 4)) < 0 || (r = get(&rd, &uid, 4)) < 0 ||
        (r = get(&rd, &mb, 8)) < 0 || (r = get(&rd, &n_hosts, 4)) < 0)
        return r;
    if (type != FRONT_MSG_UPSERT || stype > FRONT_SITE_APP || state > FRONT_SITE_STOPPED ||
        n_hosts > len / 4)
        return -EBADMSG;
    /* One allocation: the host pointer array followed by the string arena (every
     * string is shorter than the message, plus its NUL). */
    size_t arena_size = len + 6 + n_hosts;
    const char **hosts = malloc(n_hosts * sizeof(char *) + arena_size + 1);
    if (!hosts)
        return -ENOMEM;
    char *arena = (char *)(hosts + n_hosts);
    struct front_site s = { .type = stype, .state = state, .uid = uid, .max_body = mb,
                            .n_hosts = n_hosts, .hosts = hosts };
    if ((r = get_str(&rd, &arena, &s.name)) < 0 || (r = get_str(&rd, &arena, &s.public_dir)) < 0 ||
        (r = get_str(&rd, &arena, &s.logs_dir)) < 0 || (r = get_str(&rd, &arena, &s.backend)) < 0)
        goto fail;
    for (size_t i = 0; i < n_hosts; i++)
        if ((r = get_str(&rd, &arena, &hosts[i])) < 0 || !hosts[i])
            goto fail;
    if ((r = get(&rd, &s.upstream_timeout_ms, 4)) < 0 || (r = get_str(&rd, &arena, &s.tls_cert)) < 0 ||
        (r = get_str(&rd, &arena, &s.tls_key)) < 0)
        goto fail;
    uint32_t redirect;
    if ((r = get(&rd, &redirect, 4)) < 0 || redirect > 1) {
        r = -EBADMSG;
        goto fail;
    }
    s.https_redirect = redirect;
    if (!s.tls_cert != !s.tls_key) {
        r = -EBADMSG;
        goto fail;
    }
    if (!s.name || !s.public_dir || rd.left != 0) {
        r = -EBADMSG;
        goto fail;
    }
    *ret = (struct front_site_msg){ .site = s, .hosts = hosts };
    return 0;
fail:
    free(hosts);
    return r < 0 ? r : -EBADMSG;
}

bool front_challenge_valid(const char *s, size_t len, bool key_authorization)
{
    if (len == 0 || len > FRONT_CHALLENGE_MAX)
        return false;
    size_t dots = 0, part = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.' && key_authorization && part > 0) {
            dots++;
            part = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
        part++;
    }
    return key_authorization ? dots == 1 && part > 0 : true;
}
