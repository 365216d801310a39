/* HTTPS: TLS on the connections of the listeners marked for it.
 *
 * The default context is made in berthd before the workers fork, so every worker
 * shares its session ticket keys (a client resumes whichever worker it reaches) and
 * a bad default certificate stops berthd at start-up, not a worker later. A site's
 * own context is made in a worker the first time a client names one of the site's
 * hosts (SNI), from the PEM the route carried, and lives as long as that version
 * of the site: a table of many sites costs nothing until they are visited.
 *
 * Only TLS 1.2 and 1.3, no renegotiation (so a write never has to wait for a read),
 * ALPN h2 (unless turned off) then http/1.1. A handshake runs in the connection's head timeout, like a slow
 * request head would. */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "front/front-worker.h"

static SSL_CTX *default_ctx;

/* Bytes of records gathered before a send while a large file goes out: four full
 * records. Otherwise the buffer is small (a TLS connection idle between requests
 * holds about 8 KiB of it, not 70): records bigger than it go straight out. */
#define TLS_GATHER (4 * (16384 + 64))
#define TLS_GATHER_IDLE 4097   /* the least BIO_f_buffer takes as a new size */

static const unsigned char alpn_h2[] = "\x02h2\x08http/1.1";
static const unsigned char alpn_http11[] = "\x08http/1.1";
/* Set in berthd before the workers fork, so every worker offers the same. */
static bool offer_h2 = true;

void front_tls_set_http2(bool on)
{
    offer_h2 = on;
}

bool front_tls_alpn_h2(const struct conn *c)
{
    const unsigned char *p;
    unsigned len;
    SSL_get0_alpn_selected(c->tls, &p, &len);
    return len == 2 && memcmp(p, "h2", 2) == 0;
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *sel;
    /* Ours in our order: h2 whenever the client offers it. */
    const unsigned char *ours = offer_h2 ? alpn_h2 : alpn_http11;
    unsigned ours_len = offer_h2 ? sizeof(alpn_h2) - 1 : sizeof(alpn_http11) - 1;
    if (SSL_select_next_proto(&sel, outlen, ours, ours_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;   /* no common protocol: go on without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* The first queued OpenSSL error as text, for a log line; clears the queue. */
static const char *tls_error_text(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    if (!e)
        snprintf(buf, n, "unknown error");
    else
        ERR_error_string_n(e, buf, n);
    ERR_clear_error();
    return buf;
}

/* Loads a PEM chain (the leaf first) and its key into ctx. */
static int use_pem(SSL_CTX *ctx, const char *cert_pem, const char *key_pem)
{
    BIO *bio = BIO_new_mem_buf(cert_pem, -1);
    X509 *leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    int ok = leaf && SSL_CTX_use_certificate(ctx, leaf) == 1;
    X509_free(leaf);
    while (ok) {
        X509 *extra = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (!extra)
            break;
        if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
            X509_free(extra);
            ok = 0;
        }
    }
    ERR_clear_error();   /* the end of the chain reads as an error */
    BIO_free(bio);
    if (!ok)
        return -EINVAL;
    bio = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    ok = key && SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    return ok ? 0 : -EINVAL;
}

static SSL_CTX *new_ctx(const char *cert_pem, const char *key_pem, char *err, size_t n)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        tls_error_text(err, n);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* AES-128 first: as strong as anyone needs here, and a third cheaper per byte
     * than AES-256 (what OpenSSL would pick first). */
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384");
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* A partial write may be retried from a buffer that grew or moved (answers
     * are appended to it); idle keep-alive connections give their buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Resumption by tickets only: a cache in one worker is no use to the others. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    if (use_pem(ctx, cert_pem, key_pem) < 0) {
        char why[256];
        snprintf(err, n, "the certificate or its key cannot be used: %s", tls_error_text(why, sizeof(why)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The site a client named in its hello, if it has a certificate of its own. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    (void)arg;
    struct conn *c = SSL_get_app_data(ssl);
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char host[FRONT_HOST_MAX + 3];
    size_t len;
    if (!c || !name || front_host_normalize(name, strlen(name), host, &len) < 0)
        return SSL_TLSEXT_ERR_OK;   /* the default certificate */
    struct vsite *s = front_map_get(&c->w->hosts, host, len);
    SSL_CTX *ctx = s ? front_tls_site_ctx(s) : NULL;
    if (ctx)
        SSL_set_SSL_CTX(ssl, ctx);
    return SSL_TLSEXT_ERR_OK;
}

/* Makes the default context from PEM and puts it in place of the old one, whose
 * session ticket keys it keeps: tickets issued before stay good, and berthd and
 * every worker, which all started from the same keys, go on agreeing on them.
 * Connections already open keep the context they began with. */
static int default_ctx_replace(const char *cert_pem, const char *key_pem, char *err, size_t n)
{
    SSL_CTX *ctx = new_ctx(cert_pem, key_pem, err, n);
    if (!ctx)
        return -EINVAL;
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    if (default_ctx) {
        unsigned char keys[80];   /* the size OpenSSL's ticket key get/set take */
        bool ok = SSL_CTX_get_tlsext_ticket_keys(default_ctx, keys, sizeof(keys)) == 1 &&
                  SSL_CTX_set_tlsext_ticket_keys(ctx, keys, sizeof(keys)) == 1;
        OPENSSL_cleanse(keys, sizeof(keys));
        if (!ok) {
            tls_error_text(err, n);
            SSL_CTX_free(ctx);
            return -EINVAL;
        }
    }
    SSL_CTX_free(default_ctx);
    default_ctx = ctx;
    return 0;
}

int front_tls_prepare(const struct front_config *cfg, char *err, size_t n)
{
    if (!cfg->tls_listeners)
        return 0;
    if (!cfg->tls_default_cert || !cfg->tls_default_key) {
        snprintf(err, n, "HTTPS listeners need a default certificate and key");
        return -EINVAL;
    }
    return default_ctx_replace(cfg->tls_default_cert, cfg->tls_default_key, err, n);
}

int front_tls_default_replace(const char *cert_pem, const char *key_pem, char *err, size_t n)
{
    if (!default_ctx)
        return 0;   /* no HTTPS listener: nothing shows it */
    return default_ctx_replace(cert_pem, key_pem, err, n);
}

void front_tls_release(void)
{
    SSL_CTX_free(default_ctx);
    default_ctx = NULL;
}

SSL_CTX *front_tls_site_ctx(struct vsite *s)
{
    if (s->tls_ctx || !s->tls_cert || s->tls_ctx_failed)
        return s->tls_ctx;
    char err[300];
    s->tls_ctx = new_ctx(s->tls_cert, s->tls_key, err, sizeof(err));
    if (!s->tls_ctx) {
        /* Said once per version of the site; its hosts get the default meanwhile. */
        s->tls_ctx_failed = true;
        log_warning("front worker: site %s: %s; its hosts get the default certificate", s->name, err);
    }
    return s->tls_ctx;
}

int front_tls_start(struct conn *c)
{
    if (!default_ctx)
        return -ENOTSUP;
    c->tls = SSL_new(default_ctx);
    /* Reads straight from the socket; writes gather in a buffer so that the records
     * of an answer leave in a few sends, not one per 16 KiB record. */
    BIO *rbio = c->tls ? BIO_new_socket(c->fd, BIO_NOCLOSE) : NULL;
    BIO *wsock = c->tls ? BIO_new_socket(c->fd, BIO_NOCLOSE) : NULL;
    BIO *wbuf = c->tls ? BIO_new(BIO_f_buffer()) : NULL;
    if (!rbio || !wsock || !wbuf) {
        BIO_free(rbio);
        BIO_free(wsock);
        BIO_free(wbuf);
        front_tls_free(c);
        ERR_clear_error();
        return -ENOMEM;
    }
    SSL_set_bio(c->tls, rbio, BIO_push(wbuf, wsock));
    SSL_set_app_data(c->tls, c);
    c->tls_gathering = false;
    SSL_set_accept_state(c->tls);
    c->tls_ready = false;
    return 0;
}

int front_tls_handshake(struct conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->tls);
    if (r == 1) {
        c->tls_ready = true;
        return 1;
    }
    int e = SSL_get_error(c->tls, r);
    if (e == SSL_ERROR_WANT_READ) {
        c->readable = false;
        front_conn_want(c, EPOLLIN);
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        front_conn_want(c, EPOLLOUT);
        return 0;
    }
    /* A scanner, a client that does not trust us, plain HTTP on the HTTPS port:
     * nothing to log per connection. */
    ERR_clear_error();
    return -EPROTO;
}

ssize_t front_tls_read(struct conn *c, void *p, size_t n)
{
    ERR_clear_error();
    size_t got = 0;
    if (SSL_read_ex(c->tls, p, n, &got) == 1)
        return (ssize_t)got;
    int e = SSL_get_error(c->tls, 0);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return -EAGAIN;
    /* close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) the socket's end without it:
     * the end of input, as a plain socket would say. */
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    return -EPROTO;
}

void front_tls_gather(struct conn *c, bool large)
{
    BIO *w = SSL_get_wbio(c->tls);
    /* Resizing drops what the buffer holds: only when it is empty. */
    if (large == c->tls_gathering || BIO_wpending(w) != 0)
        return;
    if (BIO_set_write_buffer_size(w, large ? TLS_GATHER : TLS_GATHER_IDLE) == 1)
        c->tls_gathering = large;
    ERR_clear_error();
}

int front_tls_flush(struct conn *c)
{
    BIO *w = SSL_get_wbio(c->tls);
    if (BIO_wpending(w) == 0)
        return 1;
    ERR_clear_error();
    if (BIO_flush(w) == 1)
        return 1;
    bool retry = BIO_should_retry(w);
    ERR_clear_error();
    return retry ? 0 : -EPIPE;
}

ssize_t front_tls_write(struct conn *c, const void *p, size_t n)
{
    ERR_clear_error();
    size_t done = 0;
    if (SSL_write_ex(c->tls, p, n, &done) == 1)
        return (ssize_t)done;
    int e = SSL_get_error(c->tls, 0);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_WRITE ? -EAGAIN : -EPIPE;
}

void front_tls_close_notify(struct conn *c)
{
    if (!c->tls || !c->tls_ready)
        return;
    /* Best effort and never waiting: the client may already be gone. */
    ERR_clear_error();
    (void)SSL_shutdown(c->tls);
    ERR_clear_error();
    c->tls_ready = false;
}

void front_tls_free(struct conn *c)
{
    SSL_free(c->tls);
    c->tls = NULL;
    c->tls_ready = false;
}
