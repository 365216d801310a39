/* ssh: the SFTP front. One port for every site: a login names a site, berthd's
 * broker decides whether a key or password may log in as it and starts OpenSSH's
 * sftp-server inside the site's sandbox; the front only carries the bytes.
 *
 * Three parts, see docs/internals/ssh.md:
 * - pure helpers shared with berthd, unit tests and fuzzers: public key lines
 *   (authorized_keys syntax, strictly checked) and the broker's message codec;
 * - the host key (libssh): loaded or made once in <state>, never replaced;
 * - the supervisor (berthd's side): forks the unprivileged ssh front, restarts it
 *   with backoff, and hands each new connection's broker socket to a callback.
 *   The front forks one child per connection.
 *
 * All functions return >= 0 on success or a negative errno; ret_* are untouched on
 * failure. Nothing here logs, except the front's processes (they have no caller). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct evloop;

/* ---- public keys (ssh-pubkey.c) ---------------------------------------------- */

#define SSH_PUBKEY_LINE_MAX 16384       /* longer input is refused before parsing */
#define SSH_PUBKEY_COMMENT_MAX 255
#define SSH_PUBKEY_RSA_MIN_BITS 2048
#define SSH_PUBKEY_RSA_MAX_BITS 16384
#define SSH_FINGERPRINT_MAX 64           /* "SHA256:" + 43 base64 characters + NUL fits */

/* One parsed public key. The strings are owned: free with ssh_pubkey_done. */
struct ssh_pubkey {
    char type[32];                       /* "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa" */
    char *base64;                        /* the key blob, base64 as OpenSSH writes it */
    char fingerprint[SSH_FINGERPRINT_MAX]; /* "SHA256:..." as ssh-keygen -l prints it */
    char comment[SSH_PUBKEY_COMMENT_MAX + 1]; /* "" when the line has none */
    unsigned bits;                       /* key size: 256 for ed25519, the curve's, RSA's modulus */
};

/* Parses one line "TYPE BASE64 [COMMENT]" (a trailing newline is allowed). Accepted
 * types: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa of 2048 to 16384 bits.
 * The blob must decode, name the same type and hold a well-formed key of it with
 * nothing after. authorized_keys options before the type, certificates, DSA and
 * anything else are -EINVAL with a sentence in why (size n). */
int ssh_pubkey_parse(const char *line, size_t len, struct ssh_pubkey *ret, char *why, size_t n);
/* Frees the strings of key and zeroes it. NULL-safe. */
void ssh_pubkey_done(struct ssh_pubkey *key);
/* The fingerprint with '/' and '+' turned into '_' and '-', for a URL path. */
void ssh_fingerprint_to_url(const char *fingerprint, char *out, size_t n);
/* The reverse: a fingerprint from a URL path ("SHA256:" may be omitted). -EINVAL for
 * anything that is not 43 characters of (URL-safe or plain) base64. */
int ssh_fingerprint_from_url(const char *s, char ret[SSH_FINGERPRINT_MAX]);

/* ---- the broker's messages (ssh-msg.c) ---------------------------------------
 * One SOCK_SEQPACKET packet each: u8 type, u8 field count, then each field as a
 * big-endian u16 length and that many bytes (no NUL inside). Fds ride along by
 * SCM_RIGHTS. */

#define SSH_MSG_MAX 8192
#define SSH_MSG_FIELDS_MAX 6

enum ssh_msg_type {
    /* a connection's child -> berthd */
    SSH_MSG_AUTH_KEY = 1,       /* site, "TYPE BASE64", "probe"|"login" */
    SSH_MSG_AUTH_PASSWORD = 2,  /* site, password */
    SSH_MSG_SPAWN = 3,          /* "sftp", or "shell", TERM ("": no terminal), columns,
                                   rows, command ("": a login shell) */
    /* berthd -> child */
    SSH_MSG_OK = 10,            /* [text]; SPAWN's answer carries the program's stdin and
                                   stdout (with a terminal: the pty master, twice) */
    SSH_MSG_DENY = 11,          /* text, a sentence the user may be shown */
    SSH_MSG_EXIT = 12,          /* the program ended: its exit status, in decimal */
    /* the ssh front -> berthd */
    SSH_MSG_CONN = 20,          /* client address "ADDR:PORT"; carries the connection's
                                   broker socket */
};

/* A decoded message; the fields point into the packet (borrowed). */
struct ssh_msg {
    uint8_t type;
    size_t n_fields;
    struct {
        const char *data;
        size_t len;
    } fields[SSH_MSG_FIELDS_MAX];
};

/* Encodes type and n strings into out (size SSH_MSG_MAX). Returns the length, or
 * -EMSGSIZE, -EINVAL (a NUL in a field, too many fields). */
int ssh_msg_encode(uint8_t type, const char *const *fields, size_t n, uint8_t *out, size_t size);
/* Decodes one packet. -EBADMSG for anything not exactly one well-formed message. */
int ssh_msg_decode(const uint8_t *p, size_t len, struct ssh_msg *ret);
/* Copies field i into out as a C string; -E2BIG if it does not fit, -EINVAL if absent. */
int ssh_msg_field(const struct ssh_msg *m, size_t i, char *out, size_t n);

/* Sends one packet with up to 4 fds attached (SCM_RIGHTS). 0, or negative errno. */
int ssh_send_fds(int sock, const void *p, size_t len, const int *fds, size_t n);
/* Receives one packet (O_CLOEXEC fds into fds, up to max, the rest -1; extra fds
 * are closed; *ret_n_fds, if not NULL, gets how many came). The packet's length,
 * 0 at EOF, or negative errno (-EAGAIN on a non-blocking socket with nothing). A
 * truncated packet is -EMSGSIZE, with its fds closed. */
ssize_t ssh_recv_fds(int sock, void *p, size_t size, int *fds, size_t max, size_t *ret_n_fds);

/* ---- host key (ssh-hostkey.c) ------------------------------------------------ */

/* Loads the ed25519 host key from path, or makes one there (0600, the caller's)
 * when there is none. A file that is there but is not a readable ed25519 private
 * key, or that others may read, is -EINVAL with the reason in why: it is never
 * replaced. ret_pem gets the key (OpenSSH format, malloc'd: wipe and free it),
 * ret_fingerprint its "SHA256:..." fingerprint; *ret_created says whether it is new. */
int ssh_hostkey_load_or_create(const char *path, char **ret_pem, char ret_fingerprint[SSH_FINGERPRINT_MAX],
                               bool *ret_created, char *why, size_t n);

/* ---- the front (ssh-front.c, ssh-session.c, ssh-supervisor.c) ---------------- */

#define BERTH_SSH_MAX_LISTEN 16          /* listeners the front serves */
#define SSH_FRONT_MAX_CONNS 256          /* connections at once, every client */
#define SSH_FRONT_MAX_CONNS_PER_ADDR 8   /* ... from one address */
#define SSH_FRONT_MAX_AUTH_TRIES 4       /* failed logins on one connection */
#define SSH_FRONT_LOGIN_GRACE_S 30       /* to log in after connecting */

struct ssh_front_config {
    uid_t uid;                   /* the front's user: not root */
    gid_t gid;
    const int *listen_fds;       /* borrowed; bound and listening, non-blocking */
    size_t n_listen;
    const char *host_key_pem;    /* borrowed: copied into the front's memory at fork */
    unsigned max_conns, max_conns_per_addr, max_auth_tries, login_grace_s; /* 0: the defaults */
};

struct ssh_supervisor;

/* A new connection's broker socket (SOCK_SEQPACKET, O_CLOEXEC; ownership moves to
 * the callee) and the client's "ADDR:PORT". */
typedef void (*ssh_conn_fn)(void *data, int fd, const char *address);

/* Forks the ssh front (uid/gid of cfg, no capabilities, no_new_privs, dies with
 * berthd) and restarts it with a doubling backoff when it dies. Each connection it
 * accepts is given to on_conn. cfg and its strings are copied. */
int ssh_supervisor_new(struct evloop *loop, const struct ssh_front_config *cfg, ssh_conn_fn on_conn, void *data,
                       struct ssh_supervisor **ret);
/* Stops the front (SIGTERM, then SIGKILL) and reaps it; its connections' children
 * die with it (PR_SET_PDEATHSIG). NULL-safe. */
void ssh_supervisor_free(struct ssh_supervisor *sup);
/* The front's pid, 0 while it is down (tests and logs). */
pid_t ssh_supervisor_pid(const struct ssh_supervisor *sup);
