/* Tests for src/front/spread.c: a listener with SO_REUSEPORT becomes one socket
 * per worker on the same port, one without stays shared, the CPU program sends a
 * connection to the socket of its CPU's worker, the choice of a worker to hand
 * connections to, and a connection passed through an inbox still works. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "front/front-internal.h"

static int listener(bool reuseport, uint16_t *ret_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    int one = 1;
    if (reuseport)
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
    assert_int_equal(listen(fd, 128), 0);
    socklen_t l = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    *ret_port = ntohs(a.sin_port);
    return fd;
}

/* The worker started, listens and beats: others may hand it connections. */
static void set_serving(struct front_spread *s, unsigned worker)
{
    front_spread_set_alive(s, worker, true);
    front_spread_set_ready(s, worker, now_ms());
}

static void set_all_serving(struct front_spread *s)
{
    for (unsigned i = 0; i < s->n_workers; i++)
        set_serving(s, i);
}

static int connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static uint16_t port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    return ntohs(a.sin_port);
}

/* Which of the n sockets holds a connection waiting to be accepted: -1 if none. */
static int accepted_on(const int *fds, unsigned n)
{
    for (int tries = 0; tries < 200; tries++) {
        for (unsigned i = 0; i < n; i++) {
            int c = accept4(fds[i], NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) {
                close(c);
                return (int)i;
            }
        }
        usleep(1000);
    }
    return -1;
}

static void test_reuseport_listener_gets_a_socket_per_worker(void **state)
{
    uint16_t port;
    int lfd = listener(true, &port);
    struct front_spread *s;
    assert_int_equal(front_spread_new(&lfd, 1, 3, NULL, &s), 0);
    int fds[3];
    for (unsigned i = 0; i < 3; i++) {
        fds[i] = front_spread_socket(s, 0, i);
        assert_int_equal(port_of(fds[i]), port);
    }
    assert_int_equal(fds[0], lfd);
    assert_int_not_equal(fds[1], lfd);
    assert_int_not_equal(fds[2], lfd);
    assert_int_not_equal(fds[1], fds[2]);
    assert_false(s->steered);
    /* Every connection reaches one of the three, and by hash more than one is used. */
    unsigned hits[3] = { 0 };
    for (int k = 0; k < 60; k++) {
        int c = connect_to(port);
        int i = accepted_on(fds, 3);
        assert_true(i >= 0);
        hits[i]++;
        close(c);
    }
    assert_true((hits[0] > 0) + (hits[1] > 0) + (hits[2] > 0) >= 2);
    front_spread_free(s);
    /* The sockets made for workers 1 and 2 are closed, the caller's is not. */
    assert_int_equal(fcntl(fds[1], F_GETFD), -1);
    assert_int_not_equal(fcntl(lfd, F_GETFD), -1);
    close(lfd);
}

static void test_plain_listener_is_shared(void **state)
{
    uint16_t port;
    int lfd = listener(false, &port);
    struct front_spread *s;
    assert_int_equal(front_spread_new(&lfd, 1, 4, NULL, &s), 0);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(front_spread_socket(s, 0, i), lfd);
    front_spread_free(s);
    assert_int_not_equal(fcntl(lfd, F_GETFD), -1);
    close(lfd);
}

struct pinned_connect {
    int cpu;
    uint16_t port;
    int fd;
};

static void *connect_from_cpu(void *data)
{
    struct pinned_connect *p = data;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(p->cpu, &one);
    if (pthread_setaffinity_np(pthread_self(), sizeof(one), &one) != 0) {
        p->fd = -1;
        return NULL;
    }
    p->fd = connect_to(p->port);
    return NULL;
}

static void test_cpu_program_steers_to_the_cpus_worker(void **state)
{
    cpu_set_t allowed;
    assert_int_equal(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
    int cpus[2], n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &allowed))
            cpus[n++] = c;
    if (n < 2)
        skip();
    uint16_t port;
    int lfd = listener(true, &port);
    struct front_spread *s;
    assert_int_equal(front_spread_new(&lfd, 1, 2, cpus, &s), 0);
    assert_true(s->steered);
    int fds[2] = { front_spread_socket(s, 0, 0), front_spread_socket(s, 0, 1) };
    for (int round = 0; round < 10; round++) {
        for (int w = 0; w < 2; w++) {
            struct pinned_connect p = { .cpu = cpus[w], .port = port };
            pthread_t t;
            assert_int_equal(pthread_create(&t, NULL, connect_from_cpu, &p), 0);
            pthread_join(t, NULL);
            assert_true(p.fd >= 0);
            assert_int_equal(accepted_on(fds, 2), w);
            close(p.fd);
        }
    }
    front_spread_free(s);
    close(lfd);
}

static void test_pick_evens_out_live_workers(void **state)
{
    uint16_t port;
    int lfd = listener(false, &port);
    struct front_spread *s;
    assert_int_equal(front_spread_new(&lfd, 1, 3, NULL, &s), 0);
    set_all_serving(s);
    /* Even enough: nothing moves. */
    front_spread_set_conns(s, 0, 33);
    front_spread_set_conns(s, 1, 31);
    front_spread_set_conns(s, 2, 32);
    assert_int_equal(front_spread_pick(s, 0, NULL), -1);
    /* Clearly more than the least loaded: half the difference goes there. */
    front_spread_set_conns(s, 0, 64);
    front_spread_set_conns(s, 1, 10);
    front_spread_set_conns(s, 2, 4);
    uint32_t surplus = 0;
    assert_int_equal(front_spread_pick(s, 0, &surplus), 2);
    assert_int_equal(surplus, 30);
    /* A worker that is down takes nothing, and its count is dropped. */
    front_spread_set_alive(s, 2, false);
    assert_int_equal(atomic_load(&s->slots[2].conns), 0);
    assert_int_equal(front_spread_pick(s, 0, &surplus), 1);
    /* Connections on their way count: a burst of accepts sees them at once. */
    atomic_store(&s->slots[1].incoming, 60);
    assert_int_equal(front_spread_pick(s, 0, NULL), -1);
    /* One worker: never. */
    front_spread_free(s);
    assert_int_equal(front_spread_new(&lfd, 1, 1, NULL, &s), 0);
    set_serving(s, 0);
    front_spread_set_conns(s, 0, 1000);
    assert_int_equal(front_spread_pick(s, 0, NULL), -1);
    assert_int_equal(front_spread_inbox_fd(s, 0), -1);
    front_spread_free(s);
    close(lfd);
}

static void test_moving_to_the_cpus_worker_keeps_counts_even(void **state)
{
    uint16_t port;
    int lfd = listener(true, &port);
    struct front_spread *s;
    int cpus[2] = { 0, 1 };
    assert_int_equal(front_spread_new(&lfd, 1, 2, cpus, &s), 0);
    assert_int_equal(front_spread_worker_on_cpu(s, 1), 1);
    assert_int_equal(front_spread_worker_on_cpu(s, 0), 0);
    assert_int_equal(front_spread_worker_on_cpu(s, 7), -1);
    assert_int_equal(front_spread_worker_on_cpu(s, -1), -1);
    set_all_serving(s);
    /* Level: a few may go while `to` stays within what evening out tolerates. */
    front_spread_set_conns(s, 0, 32);
    front_spread_set_conns(s, 1, 32);
    assert_true(front_spread_may_move(s, 0, 1));
    front_spread_set_conns(s, 0, 30);
    front_spread_set_conns(s, 1, 34);
    assert_false(front_spread_may_move(s, 0, 1));
    /* And whatever may move is never handed back by evening out. */
    unsigned moves = 0;
    for (uint32_t mine = 0; mine < 200; mine++)
        for (uint32_t theirs = 0; theirs < 200; theirs++) {
            front_spread_set_conns(s, 0, mine);
            front_spread_set_conns(s, 1, theirs);
            if (!front_spread_may_move(s, 0, 1))
                continue;
            front_spread_set_conns(s, 0, mine - 1);
            front_spread_set_conns(s, 1, theirs + 1);
            assert_int_equal(front_spread_pick(s, 1, NULL), -1);
            moves++;
            /* The workers' beats must stay fresh for this loop to mean anything. */
            set_all_serving(s);
        }
    assert_true(moves > 10000);
    /* Never to itself or to a worker that is down. */
    front_spread_set_conns(s, 0, 100);
    front_spread_set_conns(s, 1, 0);
    assert_false(front_spread_may_move(s, 0, 0));
    front_spread_set_alive(s, 1, false);
    assert_false(front_spread_may_move(s, 0, 1));
    front_spread_free(s);
    close(lfd);
}

static void test_a_worker_not_ready_or_stalled_gets_nothing(void **state)
{
    uint16_t port;
    int lfd = listener(false, &port);
    struct front_spread *s;
    assert_int_equal(front_spread_new(&lfd, 1, 2, NULL, &s), 0);
    set_serving(s, 0);
    front_spread_set_conns(s, 0, 50);
    /* Forked but not listening yet: nothing goes to it. */
    front_spread_set_alive(s, 1, true);
    assert_false(front_spread_serving(s, 1, now_ms()));
    assert_int_equal(front_spread_pick(s, 0, NULL), -1);
    assert_false(front_spread_may_move(s, 0, 1));
    front_spread_set_ready(s, 1, now_ms());
    assert_true(front_spread_serving(s, 1, now_ms()));
    assert_int_equal(front_spread_pick(s, 0, NULL), 1);
    /* No beat for longer than the stall period: taken for stalled. */
    assert_false(front_spread_serving(s, 1, now_ms() + FRONT_WORKER_STALL_MS + 1));
    /* Died: not ready again until the new process says so. */
    front_spread_set_alive(s, 1, false);
    front_spread_set_alive(s, 1, true);
    assert_false(front_spread_serving(s, 1, now_ms()));
    front_spread_free(s);
    close(lfd);
}

static void test_connections_left_to_a_dead_worker_are_rerouted(void **state)
{
    uint16_t port;
    int lfd = listener(false, &port);
    struct front_spread *s;
    assert_int_equal(front_spread_new(&lfd, 1, 3, NULL, &s), 0);
    set_all_serving(s);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct front_handoff h = { .admitted = false, .deadline_ms = 42 }, got_h;
    assert_int_equal(front_spread_handoff(s, 1, sv[0], &h), 0);
    close(sv[0]);
    /* Worker 1 dies with it in its inbox; worker 0 is down too: it goes to 2. */
    front_spread_set_alive(s, 0, false);
    front_spread_set_alive(s, 1, false);
    front_spread_reroute(s, 1);
    assert_int_equal(atomic_load(&s->slots[1].incoming), 0);
    assert_int_equal(front_spread_receive(s, 1, &got_h), -EAGAIN);
    int fd = front_spread_receive(s, 2, &got_h);
    assert_true(fd >= 0);
    assert_false(got_h.admitted);
    assert_int_equal(got_h.deadline_ms, 42);
    assert_int_equal(write(fd, "x", 1), 1);
    char c;
    assert_int_equal(read(sv[1], &c, 1), 1);
    close(fd);
    /* With nobody serving, a rerouted connection is closed, not kept forever. */
    assert_int_equal(front_spread_handoff(s, 1, sv[1], &h), 0);
    close(sv[1]);
    front_spread_set_alive(s, 2, false);
    front_spread_reroute(s, 1);
    assert_int_equal(front_spread_receive(s, 0, &got_h), -EAGAIN);
    assert_int_equal(front_spread_receive(s, 2, &got_h), -EAGAIN);
    front_spread_free(s);
    close(lfd);
}

static void test_handoff_passes_a_working_connection(void **state)
{
    uint16_t port;
    int lfd = listener(true, &port);
    struct front_spread *s;
    assert_int_equal(front_spread_new(&lfd, 1, 2, NULL, &s), 0);
    int client = connect_to(port);
    int fds[2] = { front_spread_socket(s, 0, 0), front_spread_socket(s, 0, 1) };
    int server = -1;
    for (int tries = 0; tries < 200 && server < 0; tries++) {
        for (int i = 0; i < 2 && server < 0; i++)
            server = accept4(fds[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (server < 0)
            usleep(1000);
    }
    assert_true(server >= 0);
    struct front_handoff h = { .admitted = true, .deadline_ms = 123456789 }, got_h = { 0 };
    assert_int_equal(front_spread_receive(s, 1, &got_h), -EAGAIN);
    assert_int_equal(front_spread_handoff(s, 1, server, &h), 0);
    assert_int_equal(atomic_load(&s->slots[1].incoming), 1);
    close(server);   /* the sender's copy; the socket lives on in the message */
    struct pollfd pfd = { .fd = front_spread_inbox_fd(s, 1), .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, 1000), 1);
    int got = front_spread_receive(s, 1, &got_h);
    assert_true(got >= 0);
    assert_true(got_h.admitted);
    assert_int_equal(got_h.deadline_ms, 123456789);
    assert_int_equal(atomic_load(&s->slots[1].incoming), 0);
    assert_int_equal(front_spread_receive(s, 1, &got_h), -EAGAIN);
    assert_true(fcntl(got, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(got, F_GETFL) & O_NONBLOCK);
    /* Both ways still work on the received socket. */
    assert_int_equal(write(client, "ping", 4), 4);
    char b[8];
    pfd = (struct pollfd){ .fd = got, .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, 1000), 1);
    assert_int_equal(read(got, b, sizeof(b)), 4);
    assert_memory_equal(b, "ping", 4);
    assert_int_equal(write(got, "pong", 4), 4);
    assert_int_equal(read(client, b, sizeof(b)), 4);
    assert_memory_equal(b, "pong", 4);
    close(got);
    assert_int_equal(read(client, b, sizeof(b)), 0);   /* the last copy closed: EOF */
    close(client);
    front_spread_free(s);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuseport_listener_gets_a_socket_per_worker),
        cmocka_unit_test(test_plain_listener_is_shared),
        cmocka_unit_test(test_cpu_program_steers_to_the_cpus_worker),
        cmocka_unit_test(test_pick_evens_out_live_workers),
        cmocka_unit_test(test_moving_to_the_cpus_worker_keeps_counts_even),
        cmocka_unit_test(test_a_worker_not_ready_or_stalled_gets_nothing),
        cmocka_unit_test(test_connections_left_to_a_dead_worker_are_rerouted),
        cmocka_unit_test(test_handoff_passes_a_working_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
