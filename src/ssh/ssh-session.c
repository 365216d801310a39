/* One connection's child. It holds no secret but the host key and decides
 * nothing: every login is a question to berthd's broker, and the SFTP server is
 * a process berthd starts in the site's sandbox, whose stdin and stdout come back
 * here. The child only moves bytes between the channel and those two pipes.
 *
 * Back-pressure: the channel's data is read (ssh_channel_read_nonblocking) only
 * once the previous chunk is written to sftp-server, and libssh grants the client
 * more window only as data is read; sftp-server's output is read only while the
 * client's window has room. So at most one chunk each way sits here, whatever
 * either side does. */
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "common/log.h"
#include "ssh/ssh-internal.h"

#define CHUNK 32768

#define EXIT_GRACE_MS 500   /* output still read after the program's exit */

struct session {
    const struct ssh_front_config *cfg;
    ssh_session ssh;
    ssh_event event;
    ssh_channel channel;
    struct ssh_channel_callbacks_struct channel_cb;
    int broker;
    const char *address;
    char user[64];
    bool authed;
    unsigned failures;
    bool spawned;           /* the program runs: in_fd and out_fd are its stdin, stdout */
    bool done;              /* end the connection */
    bool tty;               /* the client asked for a terminal (pty-req) */
    char term[48];
    int cols, rows;
    bool out_eof;           /* the program's output ended */
    bool exited;            /* berthd said the program ended, with exit_status */
    int exit_status;
    uint64_t exit_deadline; /* exited: the output is read until then at most */
    int in_fd, out_fd;      /* sftp-server's stdin (we write), stdout (we read) */
    bool out_watched, in_watched, broker_watched;
    uint8_t pending[CHUNK]; /* from the channel, not yet written to in_fd */
    size_t pending_off, pending_len;
};

/* Asks berthd; true when the answer is OK. fds (2) get what an OK carries; text
 * (size n, may be NULL) the answer's sentence. */
static bool broker_ask(struct session *s, uint8_t type, const char *const *fields, size_t n, int *fds, char *text,
                       size_t text_size)
{
    uint8_t msg[SSH_MSG_MAX];
    int len = ssh_msg_encode(type, fields, n, msg, sizeof(msg));
    if (len < 0 || ssh_send_fds(s->broker, msg, (size_t)len, NULL, 0) < 0) {
        s->done = true;
        return false;
    }
    int got[2];
    ssize_t r = ssh_recv_fds(s->broker, msg, sizeof(msg), got, 2, NULL);
    struct ssh_msg m;
    if (r <= 0 || ssh_msg_decode(msg, (size_t)r, &m) < 0) {
        /* berthd is gone or ended this connection. */
        s->done = true;
        safe_close(got[0]);
        safe_close(got[1]);
        return false;
    }
    if (fds) {
        fds[0] = got[0];
        fds[1] = got[1];
    } else {
        safe_close(got[0]);
        safe_close(got[1]);
    }
    if (text && (m.n_fields < 1 || ssh_msg_field(&m, 0, text, text_size) < 0))
        snprintf(text, text_size, "refused");
    return m.type == SSH_MSG_OK;
}

static void count_failure(struct session *s)
{
    if (++s->failures >= s->cfg->max_auth_tries) {
        log_info("ssh: %s: too many failed logins on one connection; disconnecting", s->address);
        s->done = true;
    }
}

static int on_auth_password(ssh_session ssh, const char *user, const char *password, void *data)
{
    struct session *s = data;
    if (s->done)
        return SSH_AUTH_DENIED;
    const char *fields[] = { user, password };
    if (strlen(user) < sizeof(s->user) && broker_ask(s, SSH_MSG_AUTH_PASSWORD, fields, 2, NULL, NULL, 0)) {
        snprintf(s->user, sizeof(s->user), "%s", user);
        s->authed = true;
        return SSH_AUTH_SUCCESS;
    }
    count_failure(s);
    return SSH_AUTH_DENIED;
}

static int on_auth_pubkey(ssh_session ssh, const char *user, struct ssh_key_struct *pubkey, char state, void *data)
{
    struct session *s = data;
    if (s->done || (state != SSH_PUBLICKEY_STATE_NONE && state != SSH_PUBLICKEY_STATE_VALID))
        return SSH_AUTH_DENIED;
    char *b64 = NULL;
    const char *type = ssh_key_type_to_char(ssh_key_type(pubkey));
    if (!type || ssh_pki_export_pubkey_base64(pubkey, &b64) != SSH_OK) {
        count_failure(s);
        return SSH_AUTH_DENIED;
    }
    char line[SSH_MSG_MAX];
    snprintf(line, sizeof(line), "%s %s", type, b64);
    ssh_string_free_char(b64);
    /* A probe asks whether the key would do, before the client signs with it:
     * the broker answers without counting or logging it as a login. */
    bool probe = state == SSH_PUBLICKEY_STATE_NONE;
    const char *fields[] = { user, line, probe ? "probe" : "login" };
    bool ok = strlen(user) < sizeof(s->user) && broker_ask(s, SSH_MSG_AUTH_KEY, fields, 3, NULL, NULL, 0);
    if (ok && !probe) {
        snprintf(s->user, sizeof(s->user), "%s", user);
        s->authed = true;
    }
    if (!ok)
        count_failure(s);
    return ok ? SSH_AUTH_SUCCESS : SSH_AUTH_DENIED;
}

/* ---- the channel ---- */

static void take_fds(struct session *s, const int *fds)
{
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    s->in_fd = fds[0];
    s->out_fd = fds[1];
    s->spawned = true;
}

static int on_subsystem(ssh_session ssh, ssh_channel ch, const char *subsystem, void *data)
{
    struct session *s = data;
    if (s->spawned || !streq(subsystem, "sftp"))
        return -1;
    const char *fields[] = { "sftp" };
    int fds[2] = { -1, -1 };
    if (!broker_ask(s, SSH_MSG_SPAWN, fields, 1, fds, NULL, 0) || fds[0] < 0 || fds[1] < 0) {
        safe_close(fds[0]);
        safe_close(fds[1]);
        return -1;
    }
    take_fds(s, fds);
    return 0;
}

/* A shell or a command: berthd runs it in the site's sandbox (sites that run code
 * only). A refusal is answered with berthd's sentence on stderr and status 1, so
 * that the user reads why instead of a bare "request failed". */
static int start_shell(struct session *s, ssh_channel ch, const char *command)
{
    if (s->spawned)
        return -1;
    char cols[12], rows[12], why[512];
    snprintf(cols, sizeof(cols), "%d", s->cols);
    snprintf(rows, sizeof(rows), "%d", s->rows);
    const char *fields[] = { "shell", s->tty ? s->term : "", cols, rows, command };
    int fds[2] = { -1, -1 };
    if (strlen(command) < SSH_MSG_MAX - 512 && broker_ask(s, SSH_MSG_SPAWN, fields, 5, fds, why, sizeof(why)) &&
        fds[0] >= 0 && fds[1] >= 0) {
        take_fds(s, fds);
        return 0;
    }
    safe_close(fds[0]);
    safe_close(fds[1]);
    if (s->done)
        return -1;
    log_info("ssh: %s: site %s: shell refused: %s", s->address, s->user, why);
    ssh_channel_write_stderr(ch, why, (uint32_t)strlen(why));
    ssh_channel_write_stderr(ch, "\r\n", 2);
    ssh_channel_request_send_exit_status(ch, 1);
    ssh_channel_send_eof(ch);
    ssh_channel_close(ch);
    s->done = true;
    return 0;
}

static int on_shell(ssh_session ssh, ssh_channel ch, void *data)
{
    return start_shell(data, ch, "");
}

static int on_exec(ssh_session ssh, ssh_channel ch, const char *command, void *data)
{
    return start_shell(data, ch, command);
}

static int on_pty(ssh_session ssh, ssh_channel ch, const char *term, int w, int h, int pw, int ph, void *data)
{
    struct session *s = data;
    if (s->spawned)
        return -1;
    s->tty = true;
    snprintf(s->term, sizeof(s->term), "%s", term);
    s->cols = w;
    s->rows = h;
    return 0;
}

static int on_window_change(ssh_session ssh, ssh_channel ch, int w, int h, int pw, int ph, void *data)
{
    struct session *s = data;
    if (!s->tty || !s->spawned || w <= 0 || h <= 0 || w > 1000 || h > 1000)
        return -1;
    struct winsize ws = { .ws_col = (unsigned short)w, .ws_row = (unsigned short)h };
    return ioctl(s->out_fd, TIOCSWINSZ, &ws) < 0 ? -1 : 0;
}

static int on_env(ssh_session ssh, ssh_channel ch, const char *name, const char *value, void *data)
{
    return -1;
}

static void on_channel_close(ssh_session ssh, ssh_channel ch, void *data)
{
    struct session *s = data;
    s->done = true;
}

static ssh_channel on_channel_open(ssh_session ssh, void *data)
{
    struct session *s = data;
    if (s->channel || !s->authed)
        return NULL;   /* one session channel per connection */
    s->channel = ssh_channel_new(ssh);
    if (!s->channel)
        return NULL;
    s->channel_cb = (struct ssh_channel_callbacks_struct){
        .userdata = s,
        .channel_subsystem_request_function = on_subsystem,
        .channel_shell_request_function = on_shell,
        .channel_exec_request_function = on_exec,
        .channel_pty_request_function = on_pty,
        .channel_env_request_function = on_env,
        .channel_pty_window_change_function = on_window_change,
        .channel_close_function = on_channel_close,
    };
    ssh_callbacks_init(&s->channel_cb);
    ssh_set_channel_callbacks(s->channel, &s->channel_cb);
    return s->channel;
}

/* ---- pumping ---- */

static int on_out(socket_t fd, int revents, void *data);
static int on_in(socket_t fd, int revents, void *data);

/* Writes what is pending to sftp-server. */
static void flush_in(struct session *s)
{
    while (s->pending_off < s->pending_len) {
        ssize_t w = write(s->in_fd, s->pending + s->pending_off, s->pending_len - s->pending_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            break;
        if (w <= 0) {
            s->done = true;   /* sftp-server is gone */
            return;
        }
        s->pending_off += (size_t)w;
    }
    bool want = s->pending_off < s->pending_len;
    if (want && !s->in_watched)
        s->in_watched = ssh_event_add_fd(s->event, s->in_fd, POLLOUT, on_in, s) == SSH_OK;
    else if (!want && s->in_watched) {
        ssh_event_remove_fd(s->event, s->in_fd);
        s->in_watched = false;
    }
    if (!want)
        s->pending_off = s->pending_len = 0;
}

static int on_in(socket_t fd, int revents, void *data)
{
    struct session *s = data;
    if (revents & (POLLERR | POLLHUP | POLLNVAL))
        s->done = true;
    else
        flush_in(s);
    return 0;
}

/* The program's status to the client, then the channel's end. */
static void finish(struct session *s)
{
    ssh_channel_request_send_exit_status(s->channel, s->exited ? s->exit_status : 0);
    ssh_channel_send_eof(s->channel);
    ssh_channel_close(s->channel);
    s->done = true;
}

static void output_ended(struct session *s)
{
    s->out_eof = true;
    if (s->out_watched) {
        ssh_event_remove_fd(s->event, s->out_fd);
        s->out_watched = false;
    }
    /* The status comes from berthd, which reaps the program: wait for it (a pipe
     * may close before the program has exited). */
    if (s->exited)
        finish(s);
}

static int on_out(socket_t fd, int revents, void *data)
{
    struct session *s = data;
    uint32_t window = ssh_channel_window_size(s->channel);
    if (window == 0)
        return 0;
    uint8_t buf[CHUNK];
    ssize_t n = read(fd, buf, MIN((size_t)window, sizeof(buf)));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        /* EOF on a pipe, EIO on a pty master once no slave is open. */
        output_ended(s);
        return 0;
    }
    if (ssh_channel_write(s->channel, buf, (uint32_t)n) != n)
        s->done = true;
    return 0;
}

/* berthd speaks on the broker socket only to say the program ended (EXIT); when
 * it closes the socket without that, the site was removed or the key revoked:
 * the session ends now, whatever the client is doing. */
static int on_broker(socket_t fd, int revents, void *data)
{
    struct session *s = data;
    uint8_t msg[SSH_MSG_MAX];
    int fds[1];
    ssize_t n = ssh_recv_fds(fd, msg, sizeof(msg), fds, 1, NULL);
    safe_close(fds[0]);
    if (n == -EAGAIN)
        return 0;
    struct ssh_msg m;
    char status[16];
    uint64_t v;
    if (n > 0 && ssh_msg_decode(msg, (size_t)n, &m) == 0 && m.type == SSH_MSG_EXIT &&
        ssh_msg_field(&m, 0, status, sizeof(status)) == 0 && parse_uint(status, 0, 255, &v) == 0) {
        s->exited = true;
        s->exit_status = (int)v;
        s->exit_deadline = now_ms() + EXIT_GRACE_MS;
        if (s->out_eof)
            finish(s);
        return 0;
    }
    if (s->exited) {
        /* The socket's end after EXIT: stop watching it. */
        ssh_event_remove_fd(s->event, fd);
        s->broker_watched = false;
        return 0;
    }
    s->done = true;
    return 0;
}

/* After the channel's close: the client answers it and hangs up itself. Leaving
 * first would cut it off before it read the status and the last output (OpenSSH
 * then says "Broken pipe" and exits 255). A second at most. */
static void linger(struct session *s)
{
    uint64_t until = now_ms() + 1000;
    while (now_ms() < until && !(ssh_get_status(s->ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR)))
        if (ssh_event_dopoll(s->event, 100) == SSH_ERROR)
            break;
}

static void pump(struct session *s)
{
    s->broker_watched = ssh_event_add_fd(s->event, s->broker, POLLIN, on_broker, s) == SSH_OK;
    while (!s->done) {
        if (s->pending_len == 0 && s->in_fd >= 0) {
            int n = ssh_channel_read_nonblocking(s->channel, s->pending, sizeof(s->pending), 0);
            if (n == SSH_ERROR)
                break;
            if (n > 0) {
                s->pending_len = (size_t)n;
                flush_in(s);
            } else if (ssh_channel_is_eof(s->channel)) {
                /* The client sent EOF: sftp-server sees it and exits. */
                s->in_fd = safe_close(s->in_fd);
            }
        }
        /* A program gone with a child of its own still holding the output open (a
         * daemon started from a shell): what came by the grace time is all. */
        if (s->exited && !s->out_eof && now_ms() >= s->exit_deadline) {
            output_ended(s);
            continue;
        }
        /* The program's output is read only while the client's window has room. */
        bool room = !s->out_eof && ssh_channel_window_size(s->channel) > 0;
        if (room && !s->out_watched)
            s->out_watched = ssh_event_add_fd(s->event, s->out_fd, POLLIN, on_out, s) == SSH_OK;
        else if (!room && s->out_watched) {
            ssh_event_remove_fd(s->event, s->out_fd);
            s->out_watched = false;
        }
        if (ssh_event_dopoll(s->event, s->exited ? 100 : 1000) == SSH_ERROR)
            break;
        if (ssh_get_status(s->ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR))
            break;
    }
    linger(s);
}

_noreturn_ void ssh_session_main(void *bind, const struct ssh_front_config *cfg, int fd, int broker,
                                 const char *address)
{
    /* Die with the front; no other process of the front's uid may ptrace this one
     * or read its memory (a compromised sibling must not take over a session). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    prctl(PR_SET_DUMPABLE, 0);
    alarm(cfg->login_grace_s);

    static struct session s;
    s = (struct session){ .cfg = cfg, .broker = broker, .address = address, .in_fd = -1, .out_fd = -1 };
    struct timeval tv = { .tv_sec = 60 };
    setsockopt(broker, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

    s.ssh = ssh_new();
    if (!s.ssh || ssh_bind_accept_fd(bind, s.ssh, fd) != SSH_OK)
        _exit(1);
    struct ssh_server_callbacks_struct cb = {
        .userdata = &s,
        .auth_password_function = on_auth_password,
        .auth_pubkey_function = on_auth_pubkey,
        .channel_open_request_session_function = on_channel_open,
    };
    ssh_callbacks_init(&cb);
    ssh_set_server_callbacks(s.ssh, &cb);
    ssh_set_auth_methods(s.ssh, SSH_AUTH_METHOD_PUBLICKEY | SSH_AUTH_METHOD_PASSWORD);
    if (ssh_handle_key_exchange(s.ssh) != SSH_OK) {
        /* Garbage instead of a banner, a scanner, a client that went away. */
        log_debug("ssh: %s: key exchange failed: %s", address, ssh_get_error(s.ssh));
        _exit(0);
    }
    s.event = ssh_event_new();
    if (!s.event || ssh_event_add_session(s.event, s.ssh) != SSH_OK)
        _exit(1);
    /* Until the client asks for its subsystem (or a shell, refused). */
    while (!s.done && !s.spawned) {
        if (ssh_event_dopoll(s.event, 1000) == SSH_ERROR)
            break;
        if (ssh_get_status(s.ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR))
            break;
    }
    if (s.spawned) {
        alarm(0);
        pump(&s);
    } else if (s.done && s.channel) {
        linger(&s);
    }
    ssh_disconnect(s.ssh);
    _exit(0);
}
