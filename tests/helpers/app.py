"""A tiny HTTP app for berth's lifecycle tests: serves on the listening socket berthd
passes as fd 3 (LISTEN_FDS=1), the way an app site's program is meant to.

GET /       -> 200 "hello from <BERTH_SITE> pid <pid inside> listen_pid=<LISTEN_PID>"
GET /sleep  -> the same after 0.5 s (keeps a connection open)
GET /hold   -> the same once /site/private/release exists (at most 10 s)
"""
import os
import socket
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        if self.path == "/sleep":
            time.sleep(0.5)
        if self.path == "/hold":
            for _ in range(200):
                if os.path.exists("/site/private/release"):
                    break
                time.sleep(0.05)
        body = (f"hello from {os.environ.get('BERTH_SITE')} pid {os.getpid()} "
                f"listen_pid={os.environ.get('LISTEN_PID')} listen={os.environ.get('BERTH_LISTEN')}\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("app: " + (fmt % args) + "\n")


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, sock):
        socketserver.BaseServer.__init__(self, "", Handler)
        self.socket = sock

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("", 0)


def main():
    assert os.environ.get("LISTEN_FDS") == "1", "expected LISTEN_FDS=1"
    assert os.environ.get("LISTEN_PID") == str(os.getpid()), "LISTEN_PID is not this process"
    sock = socket.socket(fileno=3)
    sock.setblocking(True)
    print(f"app: serving on fd 3 as pid {os.getpid()}", flush=True)
    Server(sock).serve_forever()


if __name__ == "__main__":
    main()
