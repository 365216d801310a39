"""Helpers for the front's integration tests: lay out sites as berthd does, run the
front (today through build/src/front/front-harness; later through berthd), talk
HTTP/1.1 to it with raw sockets, and run small backends on unix sockets.

Nothing here depends on pytest, so berthd's tests can reuse it."""

import base64
import hashlib
import json
import os
import signal
import socket
import socketserver
import struct
import subprocess
import threading
import time

FRONT_UID = 199999
FRONT_GID = 199999


def build_dir():
    return os.environ.get("BERTH_BUILD_DIR", "/work/main/build-test")


def harness_path():
    return os.path.join(build_dir(), "src", "front", "front-harness")


class Site:
    """One site's directories, laid out and owned like berthd lays them out."""

    def __init__(self, root, name, uid, **opts):
        self.name = name
        self.uid = uid
        self.gid = uid
        self.dir = os.path.join(root, "sites", name)
        self.public = os.path.join(self.dir, "public")
        self.logs = os.path.join(self.dir, "logs")
        self.private = os.path.join(self.dir, "private")
        self.opts = opts
        os.makedirs(self.public, exist_ok=True)
        os.makedirs(self.logs, exist_ok=True)
        os.makedirs(self.private, exist_ok=True)
        if os.getuid() == 0:
            os.chown(self.dir, 0, self.gid)
            os.chmod(self.dir, 0o751)
            os.chown(self.public, uid, FRONT_GID)
            os.chmod(self.public, 0o2750)
            os.chown(self.private, uid, self.gid)
            os.chmod(self.private, 0o700)
            os.chown(self.logs, FRONT_UID, self.gid)
            os.chmod(self.logs, 0o750)

    def write(self, rel, data, mtime=None, owner=None):
        """Writes public/rel as the site user would (owner uid, group front)."""
        path = os.path.join(self.public, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        with open(path, "wb") as f:
            f.write(data)
        if os.getuid() == 0:
            d = os.path.dirname(path)
            while d.startswith(self.public) and d != self.public:
                os.chown(d, self.uid, FRONT_GID)
                os.chmod(d, 0o2750)
                d = os.path.dirname(d)
            os.chown(path, owner if owner is not None else self.uid, FRONT_GID)
            os.chmod(path, 0o640)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    def symlink(self, rel, target, owner=None):
        path = os.path.join(self.public, rel)
        os.symlink(target, path)
        if os.getuid() == 0:
            os.lchown(path, owner if owner is not None else self.uid, FRONT_GID)
        return path

    def hosts(self):
        return self.opts.get("hosts", [f"{self.name}.localhost"])

    def route_line(self):
        o = self.opts
        words = [f"name={self.name}", f"type={o.get('type', 'static')}",
                 f"state={o.get('state', 'serving')}", f"public={self.public}",
                 f"logs={self.logs}", f"uid={self.uid}", "hosts=" + ",".join(self.hosts())]
        if o.get("backend"):
            words.append(f"backend={o['backend']}")
        if o.get("max_body"):
            words.append(f"max_body={o['max_body']}")
        if o.get("timeout_ms"):
            words.append(f"timeout_ms={o['timeout_ms']}")
        if o.get("cert"):
            words.append(f"cert={o['cert']} key={o['key']}")
        if o.get("redirect"):
            words.append("redirect=https")
        return " ".join(words)

    def access_log(self):
        try:
            with open(os.path.join(self.logs, "access.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""


class Front:
    """Runs the front (front-harness) on a random loopback port with a state dir."""

    def __init__(self, state_dir, workers=2, extra_args=(), tls=None):
        """tls: (cert, key) PEM paths of the default certificate: the front then
        also listens for HTTPS, on tls_port."""
        self.state = str(state_dir)
        self.workers = workers
        self.extra = list(extra_args)
        self.tls = tls
        self.tls_port = None
        self.challenges = {}   # ACME token -> key authorization the front answers
        self.sites = {}
        self.proc = None
        self.port = None
        self.routes = os.path.join(self.state, "routes")
        self.port_file = os.path.join(self.state, "port")
        self.global_dir = os.path.join(self.state, "front-logs")
        os.makedirs(self.global_dir, exist_ok=True)
        if os.getuid() == 0:
            os.chown(self.global_dir, FRONT_UID, FRONT_GID)
        os.chmod(self.state, 0o755)
        # The workers run as the front user: every ancestor must be searchable
        # (pytest's tmp dirs are 0700). Only the search bit is added.
        d = os.path.dirname(os.path.abspath(self.state))
        while d != "/":
            st = os.stat(d)
            if not st.st_mode & 0o001:
                os.chmod(d, (st.st_mode & 0o7777) | 0o001)
            d = os.path.dirname(d)
        os.makedirs(os.path.join(self.state, "sites"), exist_ok=True)
        os.chmod(os.path.join(self.state, "sites"), 0o755)
        self.global_log = os.path.join(self.global_dir, "unknown.log")

    def add_site(self, name, uid, reload=True, **opts):
        site = Site(self.state, name, uid, **opts)
        self.sites[name] = site
        if reload:
            self.reload()
        return site

    def remove_site(self, name):
        del self.sites[name]
        self.reload()

    def write_routes(self):
        tmp = self.routes + ".tmp"
        with open(tmp, "w") as f:
            for s in self.sites.values():
                f.write(s.route_line() + "\n")
            for token, key_auth in self.challenges.items():
                f.write(f"challenge {token} {key_auth}\n")
        os.rename(tmp, self.routes)

    def reload(self):
        self.write_routes()
        if self.proc:
            self.proc.send_signal(signal.SIGHUP)

    def start(self):
        self.write_routes()
        args = [harness_path(), "--listen", "127.0.0.1:0", "--routes", self.routes,
                "--port-file", self.port_file, "--workers", str(self.workers),
                "--global-log", self.global_log] + self.extra
        if self.tls:
            args += ["--tls-listen", "127.0.0.1:0", "--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        self.stderr = open(os.path.join(self.state, "front.stderr"), "w")
        self.proc = subprocess.Popen(args, stdout=self.stderr, stderr=self.stderr)
        deadline = time.time() + 10
        while time.time() < deadline:
            if os.path.exists(self.port_file):
                ports = open(self.port_file).read().split()
                self.port = int(ports[0])
                if self.tls:
                    self.tls_port = int(ports[1])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("front-harness exited: " + open(self.stderr.name).read())
            time.sleep(0.02)
        raise RuntimeError("front-harness did not start")

    def worker_pids(self):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.stderr.close()
            text = self.stderr_text()
            # Sanitizer reports from the supervisor or any worker fail the test.
            if "Sanitizer" in text or "runtime error" in text:
                raise AssertionError("front reported: " + text[-3000:])
        return self.proc.returncode if self.proc else None

    def stderr_text(self):
        return open(os.path.join(self.state, "front.stderr")).read()


# ---- raw HTTP over sockets ----

def connect(port, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(sock, head_only=False, method="GET"):
    """Reads one response; returns (status, headers dict lower-case, body bytes).
    Handles Content-Length, chunked and close-delimited bodies."""
    buf = sock._berth_buf if hasattr(sock, "_berth_buf") else b""

    def fill():
        nonlocal buf
        d = sock.recv(65536)
        if not d:
            raise EOFError
        buf += d

    while b"\r\n\r\n" not in buf:
        fill()
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers.setdefault(k.strip().lower(), v.strip())
    body = b""
    no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
    if no_body or head_only:
        pass
    elif "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            fill()
        body, buf = buf[:n], buf[n:]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            while b"\r\n" not in buf:
                fill()
            line, buf = buf.split(b"\r\n", 1)
            size = int(line.split(b";")[0], 16)
            while len(buf) < size + 2:
                fill()
            body += buf[:size]
            buf = buf[size + 2:]
            if size == 0:
                break
    else:
        try:
            while True:
                fill()
        except (EOFError, ConnectionResetError):
            pass
        body, buf = buf, b""
    sock._berth_buf = buf
    return status, headers, body


class _Sock:
    """socket wrapper that can carry leftover bytes between responses."""

    def __init__(self, s):
        self.s = s
        self._berth_buf = b""

    def recv(self, n):
        return self.s.recv(n)

    def sendall(self, d):
        return self.s.sendall(d)

    def close(self):
        self.s.close()

    def settimeout(self, t):
        self.s.settimeout(t)

    def shutdown(self, how):
        self.s.shutdown(how)


def open_conn(port, timeout=5):
    return _Sock(connect(port, timeout))


def request(port, host, path="/", method="GET", headers=None, body=None, version="1.1"):
    """One request on a fresh connection; returns (status, headers, body)."""
    s = open_conn(port)
    try:
        s.sendall(build_request(host, path, method, headers, body, version))
        return read_response(s, method=method)
    finally:
        s.close()


def build_request(host, path="/", method="GET", headers=None, body=None, version="1.1"):
    lines = [f"{method} {path} HTTP/{version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None and not any(k.lower() in ("content-length", "transfer-encoding")
                                    for k in (headers or {})):
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is not None:
        data += body if isinstance(body, bytes) else body.encode()
    return data


def recv_until_close(s):
    """What the peer sends until it closes (or goes quiet past the socket's timeout)."""
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def raw(port, data, timeout=3):
    """Sends bytes, reads until the server closes or goes quiet; returns bytes."""
    s = connect(port, timeout)
    try:
        s.sendall(data)
        return recv_until_close(s)
    finally:
        s.close()


def status_of(resp_bytes):
    if not resp_bytes.startswith(b"HTTP/1."):
        return None
    return int(resp_bytes.split(b" ", 2)[1])


def socket_inodes(*pids):
    """The inode numbers of the sockets the processes hold (gone ones: none)."""
    out = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(int(link[8:-1]))
    return out


def wait_until(fn, timeout=5, step=0.01):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


# ---- a backend on a unix socket ----

class _Handler(socketserver.StreamRequestHandler):
    """A deliberately small HTTP/1.1 server so tests see exactly what the front
    sends: keep-alive, Content-Length and chunked request bodies, and routes:
      /headers  -> JSON of the request line and headers
      /echo     -> the request body back (Content-Length)
      /stream?n=K&delay=S -> K chunks "chunk i\\n", S seconds apart (chunked)
      /sleep?s=S -> answers after S seconds
      /ws       -> WebSocket echo (RFC 6455, text and binary frames)
      /close    -> body until close (no length)
    """

    def read_head(self):
        line = self.rfile.readline()
        if not line:
            return None
        method, target, _ = line.decode().split(" ", 2)
        headers = []
        while True:
            h = self.rfile.readline().decode()
            if h in ("\r\n", "\n", ""):
                break
            k, v = h.split(":", 1)
            headers.append((k.strip(), v.strip()))
        return method, target, headers

    def read_body(self, headers):
        hd = {k.lower(): v for k, v in headers}
        if hd.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        n = int(hd.get("content-length", "0"))
        return self.rfile.read(n) if n else b""

    def send(self, status, body=b"", headers=()):
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
        for k, v in headers:
            head += f"{k}: {v}\r\n"
        self.wfile.write(head.encode() + b"\r\n" + body)
        self.wfile.flush()

    def handle(self):
        self.server.connections += 1
        while True:
            try:
                r = self.read_head()
            except (ConnectionError, ValueError):
                return
            if r is None:
                return
            method, target, headers = r
            self.server.requests.append((method, target, headers))
            path, _, query = target.partition("?")
            q = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            if path == "/refuse":
                # Refuses the body unread, as a backend with an upload limit does,
                # once the front has filled the socket with it: the answer and the
                # close then reach the front together.
                time.sleep(0.2)
                self.send(413, b"too big for me", [("Connection", "close")])
                return
            if path == "/early":
                # Starts answering, stops reading before the body, ends the answer
                # a little later and keeps the connection open a while: the
                # front's end of it is of no further use.
                self.request.shutdown(socket.SHUT_RD)
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nearly")
                self.wfile.flush()
                time.sleep(0.3)
                self.wfile.write(b"-done")
                self.wfile.flush()
                time.sleep(2)
                return
            body = self.read_body(headers)
            if path == "/headers":
                self.send(200, json.dumps({"method": method, "target": target,
                                           "headers": headers, "body_len": len(body)}).encode(),
                          [("Content-Type", "application/json")])
            elif path == "/echo":
                self.send(200, body, [("X-Echo-Len", str(len(body)))])
                self.server.echoed.append(target)   # the whole answer went into the socket
            elif path == "/stream":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                self.wfile.flush()
                for i in range(int(q.get("n", "3"))):
                    d = f"chunk {i}\n".encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(d), d))
                    self.wfile.flush()
                    time.sleep(float(q.get("delay", "0")))
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            elif path == "/sleep":
                time.sleep(float(q.get("s", "1")))
                self.send(200, b"slept")
            elif path == "/vanish":
                return   # as a backend that ran the request and died before answering
            elif path == "/close":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close")
                self.wfile.flush()
                return
            elif path == "/ws":
                hd = {k.lower(): v for k, v in headers}
                key = hd["sec-websocket-key"]
                acc = base64.b64encode(hashlib.sha1(
                    (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
                self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % acc).encode())
                self.wfile.flush()
                while True:
                    f = ws_read_frame(self.rfile)
                    if f is None or f[0] == 8:
                        return
                    self.wfile.write(ws_frame(f[1], f[0], mask=False))
                    self.wfile.flush()
            else:
                self.send(404, b"no such backend route")


class Backend(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, path):
        self.requests = []
        self.echoed = []   # targets of /echo requests whose answer was written whole
        self.connections = 0
        super().__init__(path, _Handler)
        os.chmod(path, 0o777)   # the front's workers run as another uid
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.shutdown()
        self.server_close()


def ws_open(port, host, path="/ws"):
    """A WebSocket through the front, its handshake asserted (101): (socket, reader)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    fh = s.makefile("rb")
    status = fh.readline()
    assert b" 101 " in status, status
    while fh.readline() not in (b"\r\n", b""):
        pass
    return s, fh


def ws_frame(payload, opcode=1, mask=True):
    b0 = 0x80 | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_read_frame(f):
    h = f.read(2)
    if len(h) < 2:
        return None
    opcode, n = h[0] & 0x0F, h[1] & 0x7F
    masked = h[1] & 0x80
    if n == 126:
        n = struct.unpack("!H", f.read(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", f.read(8))[0]
    key = f.read(4) if masked else None
    data = f.read(n)
    if key:
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return opcode, data
