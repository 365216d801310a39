/* Private to src/ssh: the front's process entry points and the fd-passing helpers
 * they share with the supervisor. */
#pragma once

#include <fcntl.h>
#include <poll.h>

#include "common/util.h"
#include "ssh/ssh.h"

/* The ssh front's process: drops to cfg's uid, accepts on cfg's listeners and
 * forks ssh_session_main for each connection, sending berthd (on ctl) the broker
 * socket of each. Never returns. */
_noreturn_ void ssh_front_main(const struct ssh_front_config *cfg, int ctl);

/* One connection's child: key exchange, login through the broker (fd broker),
 * then the SFTP session. Takes ownership of fd and broker; bind is the front's
 * ssh_bind (with the host key). Never returns. */
_noreturn_ void ssh_session_main(void *bind, const struct ssh_front_config *cfg, int fd, int broker,
                                 const char *address);
