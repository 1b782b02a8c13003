"""What the test receivers share: their options, the HTTP server (plain or
TLS, on 127.0.0.1), the request log (one JSON line per request, flushed
at once) and a graceful stop on SIGTERM.

Options:
  --port N          0 picks a free port; `listening PORT` is printed on
                    stdout once bound. The address is reusable at once, so
                    a restarted receiver can take the same port.
  --out FILE        the request log: one JSON line appended per request
  --status CODE     answer every request with CODE and --body instead of
  --body TEXT       decoding it (`\\n` in TEXT stands for a newline)
  --tls CERT KEY    serve https with this certificate and key
"""

import argparse
import gzip
import json
import signal
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Recorded as sent (names lowercased), with every `x-` header.
HEADERS_OF_INTEREST = {
    "authorization",
    "content-encoding",
    "content-type",
    "otlp-profiles-development-version",
    "user-agent",
}


def parse_args(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--status", type=int)
    parser.add_argument("--body", default="")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    args.body = args.body.replace("\\n", "\n")
    return args


class Log:
    """The request log: whole lines, one writer at a time."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def write(self, record):
        line = json.dumps(record, sort_keys=True) + "\n"
        with self.lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(line)
            out.flush()


def headers_of_interest(headers):
    return {
        name.lower(): value
        for name, value in headers.items()
        if name.lower() in HEADERS_OF_INTEREST or name.lower().startswith("x-")
    }


def read_body(handler):
    """The request's body, by Content-Length or chunked."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length", 0)))


def gunzip_if_encoded(headers, body):
    """The body, gunzipped when Content-Encoding says gzip."""
    if headers.get("Content-Encoding", "identity").lower() == "gzip":
        return gzip.decompress(body)
    return body


class Handler(BaseHTTPRequestHandler):
    """POST: logs the request and answers it, by `server.decode` or with
    the fixed --status. HTTP/1.0: one request per connection, so a stop
    waits for nothing but requests in flight."""

    server_version = "bpfprof-test-receiver"
    timeout = 10

    def do_POST(self):
        record = {
            "time": time.time(),
            "method": "POST",
            "path": self.path,
            "headers": headers_of_interest(self.headers),
        }
        try:
            body = read_body(self)
        except (OSError, ValueError) as e:
            record.update(status=400, error=f"reading the body: {e}")
            self.server.log.write(record)
            self.answer(400, "text/plain", str(e).encode())
            return
        record["body_size"] = len(body)
        if self.server.fixed is not None:
            status, text = self.server.fixed
            record["status"] = status
            self.server.log.write(record)
            self.answer(status, "text/plain", text.encode())
            return
        status, content_type, answer = self.server.decode(self, body, record)
        record["status"] = status
        self.server.log.write(record)
        self.answer(status, content_type, answer)

    def answer(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))


class Server(ThreadingHTTPServer):
    allow_reuse_address = True
    # Stopping joins the threads of requests in flight: a request the log
    # has is answered too.
    daemon_threads = False

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        print(f"{client_address}: {error!r}", file=sys.stderr, flush=True)


def serve(args, decode):
    """Serves until SIGTERM or SIGINT; `decode(handler, body, record)`
    returns (status, content type, answer body) and adds to `record`."""
    server = Server(("127.0.0.1", args.port), Handler)
    server.log = Log(args.out)
    server.decode = decode
    server.fixed = (args.status, args.body) if args.status is not None else None
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*args.tls)
        # The handshake happens in the request's thread, on its first
        # read: a client that fails it holds up no other.
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )

    def stop(signum, frame):
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.05)
    # Closes the listening socket, then waits for requests in flight.
    server.server_close()
