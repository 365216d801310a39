/* Child processes: forking one with a control socket, what a child keeps of its
 * parent's fds, ending one, and the gates tests hold children at. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Forks with a SOCK_SEQPACKET pair between parent and child. In the child returns
 * 0 with *ret_sock its end. In the parent returns 1 with *ret_pid, *ret_pidfd (a
 * pidfd of the child) and *ret_sock (its end, non-blocking); a child whose pidfd
 * cannot be made is killed and reaped. Negative errno on failure (no child left). */
int proc_fork_with_socket(pid_t *ret_pid, int *ret_pidfd, int *ret_sock);

/* Closes every fd above 2 but those in keep (sorted in place; duplicates and fds
 * below 3 are fine). For a forked child that must not hold its parent's database,
 * sockets or other children's ends. */
void proc_close_fds_except(int *keep, size_t n);

/* In a forked child: makes fds[0..n) fds 3, 4, ... in that order and closes every
 * other fd above 2. -errno on failure (the child should _exit). */
int proc_fds_to_low(const int *fds, size_t n);

/* SIGKILLs the process behind pidfd and reaps it. */
void proc_kill_wait(int pidfd);

/* Test hook: when the environment variable env_name names a file, waits (up to
 * 30 s) until that file exists, so a test can act while the caller is held. */
void proc_test_gate(const char *env_name);
