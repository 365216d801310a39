"""How the front spreads connections over its workers (src/front/spread.c): each
worker has its own listening socket, a connection goes to the worker pinned to the
CPU that took it, a pile-up on one worker is evened out by handing connections over
(and they keep working), a worker that is down is covered by the others, and a
port someone already listens on is still refused.

Runs front-harness from $BERTH_BUILD_DIR (default /work/main/build-test)."""

import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from front_helpers import (Front, build_request, harness_path, open_conn, read_response, socket_inodes,
                           wait_until)

pytestmark = pytest.mark.skipif(
    not os.path.exists(harness_path()) and os.environ.get("BERTH_MUST_WORK") != "1",
    reason="front-harness not built")


def cpus_of(pid):
    """The CPUs pid may run on; empty when it is gone (a worker just killed and
    reaped between the listing of pids and this read)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            lines = f.readlines()
    except (FileNotFoundError, ProcessLookupError):
        return set()
    for line in lines:
        if line.startswith("Cpus_allowed_list:"):
            spec = line.split(":", 1)[1].strip()
            out = set()
            for part in spec.split(","):
                a, _, b = part.partition("-")
                out.update(range(int(a), int(b or a) + 1))
            return out
    return set()


TCP_ESTABLISHED, TCP_LISTEN = "01", "0A"


def tcp_sockets(port, state):
    """(remote port, inode) of each socket on local port `port` in `state`."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state and int(fields[9]):
                    yield int(fields[2].rsplit(":", 1)[1], 16), int(fields[9])


def server_side_inodes(port):
    """Client port -> inode of the front's socket for that connection."""
    return dict(tcp_sockets(port, TCP_ESTABLISHED))


def owners(front, conns):
    """For each connection, the pid of the worker holding its socket (None while
    it is on its way from one worker to another)."""
    by_inode = {}
    for pid in front.worker_pids():
        for ino in socket_inodes(pid):
            by_inode[ino] = pid
    sides = server_side_inodes(front.port)
    return [by_inode.get(sides.get(c.s.getsockname()[1])) for c in conns]


def get_ok(conn, host="alpha.localhost"):
    conn.sendall(build_request(host, "/"))
    status, _, body = read_response(conn)
    return status == 200 and body == b"alpha\n"


def connect_from_cpu(port, cpu, n):
    """n connections made by a thread that runs only on cpu (on loopback the SYN is
    processed on the connecting CPU), each answered once."""
    conns, errors = [], []

    def run():
        try:
            os.sched_setaffinity(0, {cpu})
            for _ in range(n):
                c = open_conn(port)
                assert get_ok(c)
                conns.append(c)
        except Exception as e:   # reported by the caller
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not errors, errors
    return conns


@pytest.fixture
def front(tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    f = Front(tmp_path, workers=2)
    s = f.add_site("alpha", 1001, reload=False)
    s.write("index.html", "alpha\n")
    f.start()
    assert wait_until(lambda: len(f.worker_pids()) == 2, 5)
    yield f
    f.stop()


def worker_on(front, cpu):
    for pid in front.worker_pids():
        if cpus_of(pid) == {cpu}:
            return pid
    return None


def test_each_worker_has_its_own_listening_socket(front):
    listening = {inode for _, inode in tcp_sockets(front.port, TCP_LISTEN)}
    assert len(listening) == 2
    pids = front.worker_pids()
    # Each worker holds both (to cover the other while it is down), but they are two.
    for pid in pids:
        assert listening <= socket_inodes(pid)


def test_connection_goes_to_the_worker_of_its_cpu(front):
    cpus = sorted({next(iter(cpus_of(p))) for p in front.worker_pids()})
    assert len(cpus) == 2, "workers are pinned one per CPU by default"
    conns = {cpu: connect_from_cpu(front.port, cpu, 3) for cpu in cpus}
    try:
        for cpu, cs in conns.items():
            assert owners(front, cs) == [worker_on(front, cpu)] * 3
    finally:
        for cs in conns.values():
            for c in cs:
                c.close()


def requests_from_cpu(conns, cpu):
    """One request on each connection from a thread that runs only on cpu."""
    errors = []

    def run():
        try:
            os.sched_setaffinity(0, {cpu})
            for c in conns:
                assert get_ok(c)
        except Exception as e:
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not errors, errors


def test_connections_follow_their_client_to_another_cpu(front):
    """Clients that move to the other CPU after connecting (a thread migrated, a
    NIC queue's interrupt moved) are handed to that CPU's worker."""
    cpu_a, cpu_b = sorted(next(iter(cpus_of(p))) for p in front.worker_pids())
    on_a = connect_from_cpu(front.port, cpu_a, 4)
    on_b = connect_from_cpu(front.port, cpu_b, 4)
    try:
        assert owners(front, on_a) == [worker_on(front, cpu_a)] * 4
        assert owners(front, on_b) == [worker_on(front, cpu_b)] * 4

        def swapped():
            requests_from_cpu(on_a, cpu_b)
            requests_from_cpu(on_b, cpu_a)
            return (owners(front, on_a) == [worker_on(front, cpu_b)] * 4 and
                    owners(front, on_b) == [worker_on(front, cpu_a)] * 4)

        assert wait_until(swapped, 10, 0.1), (owners(front, on_a), owners(front, on_b))
    finally:
        for c in on_a + on_b:
            c.close()


def test_pile_up_on_one_worker_is_evened_out(front):
    cpu = next(iter(cpus_of(front.worker_pids()[0])))
    conns = connect_from_cpu(front.port, cpu, 16)
    try:
        pids = front.worker_pids()

        def split():
            o = owners(front, conns)
            return None in o or [o.count(p) for p in pids]

        # All 16 came in on one CPU; within a few ticks they are 8 and 8 or close.
        assert wait_until(lambda: (s := split()) is not True and abs(s[0] - s[1]) <= 3, 5), split()
        # The connections that moved answer like the others, many times over and
        # while the workers go on evening out.
        for _ in range(5):
            for c in conns:
                assert get_ok(c)
    finally:
        for c in conns:
            c.close()


def test_moved_keepalive_connection_keeps_its_idle_timeout(tmp_path):
    """A connection handed over between requests is idle, not new: the short
    head timeout for fresh connections does not drop it."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    f = Front(tmp_path, workers=2, extra_args=["--header-timeout", "600", "--idle-timeout", "20000"])
    s = f.add_site("alpha", 1001, reload=False)
    s.write("index.html", "alpha\n")
    f.start()
    try:
        assert wait_until(lambda: len(f.worker_pids()) == 2, 5)
        cpu = next(iter(cpus_of(f.worker_pids()[0])))
        conns = connect_from_cpu(f.port, cpu, 12)
        first = owners(f, conns)
        assert wait_until(lambda: len(set(owners(f, conns)) - {None}) == 2, 5)
        moved = [c for c, a, b in zip(conns, first, owners(f, conns)) if a != b]
        assert moved
        time.sleep(1.5)   # well past the head timeout, far from the idle one
        for c in conns:
            assert get_ok(c)
    finally:
        f.stop()


def test_moved_silent_connection_keeps_its_head_timeout(tmp_path):
    """A connection that never sent a byte is dropped after the head timeout
    (slowloris) even when it was handed to another worker meanwhile: a move
    never extends a deadline."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    f = Front(tmp_path, workers=2, extra_args=["--header-timeout", "1500", "--idle-timeout", "20000"])
    f.add_site("alpha", 1001, reload=False).write("index.html", "alpha\n")
    f.start()
    try:
        assert wait_until(lambda: len(f.worker_pids()) == 2, 5)
        cpu = next(iter(cpus_of(f.worker_pids()[0])))
        silent = []

        def run():
            os.sched_setaffinity(0, {cpu})
            for _ in range(12):
                silent.append(open_conn(f.port))

        t = threading.Thread(target=run)
        t.start()
        t.join(10)
        assert len(silent) == 12
        first = owners(f, silent)
        assert wait_until(lambda: len(set(owners(f, silent)) - {None}) == 2, 1.2, 0.02), first
        time.sleep(2.0)   # past the head timeout counted from the connect
        for c in silent:
            c.settimeout(3)
            try:
                assert c.recv(100) == b""
            except ConnectionResetError:
                pass
            c.close()
    finally:
        f.stop()


def test_moved_connection_is_not_refused_by_the_client_limit(tmp_path):
    """A keep-alive connection handed to another worker was admitted already: the
    per-client limit of the worker it goes to does not turn it into a 503."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    f = Front(tmp_path, workers=2, extra_args=["--max-conns-per-client", "4"])
    f.add_site("alpha", 1001, reload=False).write("index.html", "alpha\n")
    f.start()
    try:
        assert wait_until(lambda: len(f.worker_pids()) == 2, 5)
        cpu_a, cpu_b = sorted(next(iter(cpus_of(p))) for p in f.worker_pids())
        mine = connect_from_cpu(f.port, cpu_a, 4) + connect_from_cpu(f.port, cpu_b, 4)
        # Another client piles busy connections (half a head each) on worker A, so
        # A hands idle ones of the first client to B, which already has 4 of them.
        busy = []

        def run():
            os.sched_setaffinity(0, {cpu_a})
            for _ in range(4):
                s = socket.socket()
                s.bind(("127.0.0.2", 0))
                s.connect(("127.0.0.1", f.port))
                s.sendall(b"GET / HTTP/1.1\r\nHost: alpha.loc")
                busy.append(s)

        t = threading.Thread(target=run)
        t.start()
        t.join(10)
        worker_b = worker_on(f, cpu_b)
        assert wait_until(lambda: owners(f, mine).count(worker_b) > 4, 5), owners(f, mine)
        for c in mine:
            assert get_ok(c)
        for s in busy:
            s.close()
    finally:
        f.stop()


def test_busy_connections_are_not_moved_mid_request(front):
    """A connection with half a request read stays where it is; the request
    completes there."""
    cpu = next(iter(cpus_of(front.worker_pids()[0])))
    conns = connect_from_cpu(front.port, cpu, 12)
    try:
        # Half a head on each, then wait past several ticks of evening out.
        for c in conns:
            c.sendall(b"GET / HTTP/1.1\r\nHost: alpha.loc")
        before = owners(front, conns)
        time.sleep(0.5)
        assert owners(front, conns) == before
        for c in conns:
            c.sendall(b"alhost\r\n\r\n")
            status, _, body = read_response(c)
            assert (status, body) == (200, b"alpha\n")
    finally:
        for c in conns:
            c.close()


def test_connections_keep_working_under_concurrent_requests(front):
    """Threads keep requesting on connections that all started on one worker while
    some are handed over: every answer is right and none is lost."""
    cpu = next(iter(cpus_of(front.worker_pids()[0])))
    conns = connect_from_cpu(front.port, cpu, 20)
    failures, counts = [], [0] * len(conns)
    stop = threading.Event()

    def hammer(i, c):
        try:
            while not stop.is_set():
                assert get_ok(c)
                counts[i] += 1
        except Exception as e:
            failures.append(repr(e))

    threads = [threading.Thread(target=hammer, args=(i, c)) for i, c in enumerate(conns)]
    try:
        for t in threads:
            t.start()
        moved = wait_until(lambda: len(set(owners(front, conns)) - {None}) == 2, 10)
        time.sleep(0.3)   # and requests go on after the move
        stop.set()
        for t in threads:
            t.join(30)
        assert not failures, failures[:3]
        assert moved, owners(front, conns)
        assert all(n > 0 for n in counts)
    finally:
        stop.set()
        for c in conns:
            c.close()


def test_down_worker_is_covered_by_the_others(front):
    """Kill the worker of one CPU until it restarts only after a backoff; new
    connections from that CPU are answered before it is back."""
    cpu = next(iter(cpus_of(front.worker_pids()[0])))
    for _ in range(5):
        pid = wait_until(lambda: worker_on(front, cpu), 10)
        assert pid
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: worker_on(front, cpu) != pid, 5)
    # Its restart now waits a backoff of a second or more (100, 200, 400, 800 ms...).
    assert wait_until(lambda: worker_on(front, cpu) is None, 5)
    answered_while_down = 0
    for _ in range(3):
        conns = connect_from_cpu(front.port, cpu, 1)
        if worker_on(front, cpu) is None:
            answered_while_down += 1
        conns[0].close()
    assert answered_while_down >= 1
    # And it comes back.
    assert wait_until(lambda: worker_on(front, cpu) is not None, 10)


def test_stopped_worker_is_covered_by_the_others(front):
    """A worker that stops ticking (SIGSTOP here; a hang would do the same) is taken
    for stalled within about a second: connections steered to it are then
    answered by the other worker, and nothing is handed to it."""
    cpu = next(iter(cpus_of(front.worker_pids()[0])))
    stopped = worker_on(front, cpu)
    os.kill(stopped, signal.SIGSTOP)
    try:
        conns = connect_from_cpu(front.port, cpu, 3)   # each answered, or this fails
        assert stopped not in owners(front, conns)
        for c in conns:
            c.close()
    finally:
        os.kill(stopped, signal.SIGCONT)
    # Back to ticking: it serves its CPU's connections again.
    def own_again():
        conns = connect_from_cpu(front.port, cpu, 1)
        try:
            return owners(front, conns) == [stopped]
        finally:
            conns[0].close()
    assert wait_until(own_again, 5, 0.1)


def test_port_in_use_is_still_refused(front, tmp_path):
    other = subprocess.run([harness_path(), "--listen", f"127.0.0.1:{front.port}", "--routes",
                            front.routes, "--workers", "2"],
                           capture_output=True, text=True, timeout=10)
    assert other.returncode != 0
    assert "Address already in use" in other.stderr
    # A plain program cannot take it either.
    s = socket.socket()
    try:
        with pytest.raises(OSError):
            s.bind(("127.0.0.1", front.port))
    finally:
        s.close()
    assert get_ok(open_conn(front.port))
