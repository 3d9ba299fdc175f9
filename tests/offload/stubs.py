"""A stub OpenAI-compatible server on 127.0.0.1 that misbehaves on purpose (fault tests).

Each connection is answered by one scripted behaviour; requests are read whole first (headers and
Content-Length body), so the client's bytes are really sent. Bounded: it serves at most
`max_connections` and every socket has a timeout.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from typing import Callable

MODELS = {"object": "list", "data": [{"id": "stub-model", "object": "model"}]}


def sse(chunks: list[dict | str]) -> bytes:
    out = b""
    for c in chunks:
        out += b"data: " + (c if isinstance(c, str) else json.dumps(c)).encode() + b"\n\n"
    return out


def chunk(text: str, finish: str | None = None) -> dict:
    return {"id": "cmpl-1", "object": "text_completion", "model": "stub-model",
            "choices": [{"index": 0, "text": text, "finish_reason": finish}]}


GOOD_STREAM = sse([chunk(" Paris"), chunk(" is"), chunk(" nice", "length"), "[DONE]"])


def http(status: int, body: bytes, ctype: str = "application/json", chunked: bool = False) -> bytes:
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 401: "Unauthorized"}.get(status, "X")
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nConnection: close\r\n"
    if chunked:
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + b"".join(
            f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in _pieces(body)) + b"0\r\n\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _pieces(body: bytes) -> list[bytes]:
    return [p + b"\n\n" for p in body.split(b"\n\n") if p]


Behaviour = Callable[[socket.socket, str], None]  # (connection, request path)


def answer(status: int, body: bytes, ctype: str = "application/json", chunked: bool = False) -> Behaviour:
    return lambda conn, path: conn.sendall(http(status, body, ctype, chunked))


def drop_mid_stream(conn: socket.socket, path: str) -> None:
    """Headers and two chunks of a chunked SSE reply, then the connection is closed."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    for p in _pieces(sse([chunk(" Paris"), chunk(" is")])):
        conn.sendall(f"{len(p):x}\r\n".encode() + p + b"\r\n")
    conn.shutdown(socket.SHUT_RDWR)


def go_silent(seconds: float) -> Behaviour:
    def behave(conn: socket.socket, path: str) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
                     + sse([chunk(" Paris")]))
        time.sleep(seconds)
    return behave


class StubServer:
    """`/models` answers a model list; every other path gets `behaviour`."""

    def __init__(self, behaviour: Behaviour, max_connections: int = 50):
        self.behaviour = behaviour
        self.max_connections = max_connections
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def __enter__(self) -> "StubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        served = 0
        while not self._stop.is_set() and served < self.max_connections:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            served += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            raw = _read_request(conn)
            self.requests.append(raw)
            path = raw.split(b" ", 2)[1].decode()
            if path.endswith("/models"):
                conn.sendall(http(200, json.dumps(MODELS).encode()))
            else:
                self.behaviour(conn, path)
        except OSError:
            pass
        finally:
            conn.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        got = conn.recv(65536)
        if not got:
            return data
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        got = conn.recv(65536)
        if not got:
            break
        body += got
    return head + b"\r\n\r\n" + body
