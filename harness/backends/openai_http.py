"""A remote runtime: the device sends its prompts to an OpenAI-compatible server and streams the
answer (runtime `openai_http`).

Offloading is judged from the device: what it waits (time to first token, end-to-end latency),
what it sends and receives (HTTP bytes on the socket) and what it spends meanwhile (its own
sensor, as for local cells). The server's energy over the same window comes from `meter serve`
on the server (docs/offload.md) or from a J/token figure the matrix gives, labelled `estimated`.

Endpoint: `POST <url>/completions` with `stream: true` (a raw prompt, as the local runtimes get
it; `api: chat` sends it as one user message to `<url>/chat/completions`, where the server's chat
template changes the prompt). Greedy settings on every request. The prompt goes to the
configured URL only: no proxies from the environment, no redirects followed.

The HTTP client is a small HTTP/1.1 one on a plain socket so every byte sent and received is
counted (request and status lines, headers, chunk framing and body; TCP/IP and TLS overhead are
not) and every fault (refused, reset mid-stream, silent, malformed) becomes a message a person
can act on.
"""
from __future__ import annotations

import json
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

import numpy as np

from ..errors import HarnessError
from ..schema import Node
from .base import Backend, Generation, RuntimeSettings

APIS = ("completions", "chat")
ENDPOINT_KEYS = ("name", "runtime", "url", "model", "api", "timeout_s", "extra_sampling",
                 "api_key_env", "meter", "server_energy", "server_carbon")
MAX_ERROR_BODY_BYTES = 4096  # enough of an error reply to quote it
MAX_HEADER_BYTES = 65536
LOGITS_REFUSAL = ("a server behind an OpenAI-compatible API returns text (and at most the top-20 "
                  "log-probabilities of each sampled token), never the full next-token "
                  "distribution that fidelity and TruthfulQA score; run those kinds on a local level")


# ------------------------------------------------------------------------------------------------
# The level's configuration


@dataclass(frozen=True)
class ServerEnergyEstimate:
    """A J/token figure for a server without a meter; every figure from it is `estimated`."""

    j_per_output_token: float
    j_per_prompt_token: float
    source: str

    def energy_j(self, tokens_in: int, tokens_out: int) -> float:
        return self.j_per_output_token * tokens_out + self.j_per_prompt_token * tokens_in


@dataclass(frozen=True)
class Endpoint:
    """Where a remote level runs and how its server's energy and carbon are known."""

    url: str  # API base, e.g. http://127.0.0.1:8080/v1
    model: str  # the `model` of each request
    api: str = "completions"
    timeout_s: float = 60.0  # connect, and the longest silence between two reads
    extra_sampling: bool = True  # top_k/min_p/repeat_penalty (llama.cpp, vLLM, Ollama)
    api_key_env: str | None = None  # name of the environment variable holding a bearer token
    meter: str | None = None  # `python -m harness meter serve` URL on the server
    estimate: ServerEnergyEstimate | None = None
    carbon_g_per_kwh: float = 0.0  # the server's grid
    carbon_source: str = ""

    def describe(self) -> dict[str, Any]:
        """The endpoint as records show it (never the API key)."""
        out: dict[str, Any] = {"url": self.url, "model": self.model, "api": self.api,
                               "timeout_s": self.timeout_s, "meter": self.meter}
        if self.estimate is not None:
            out["server_energy_estimate"] = {
                "j_per_output_token": self.estimate.j_per_output_token,
                "j_per_prompt_token": self.estimate.j_per_prompt_token,
                "source": self.estimate.source}
        return out


def check_url(node: Node, what: str) -> str:
    """An http(s) URL with a host, no credentials, query or fragment; else a ConfigError."""
    raw = node.str()
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 (a bad port raises ValueError here)
    except ValueError as e:
        raise node.fail(f"'{raw}' is not a usable URL ({e})") from None
    if parts.scheme not in ("http", "https"):
        raise node.fail(f"'{raw}' is not an http(s) URL; {what} must start with http:// or "
                        "https:// (e.g. http://127.0.0.1:8080/v1)")
    if not parts.hostname:
        raise node.fail(f"'{raw}' names no host (e.g. http://127.0.0.1:8080/v1)")
    if parts.username or parts.password:
        raise node.fail("credentials in the URL would be written into every record; use "
                        "api_key_env (the name of an environment variable holding the key)")
    if parts.query or parts.fragment:
        raise node.fail(f"'{raw}': give the API base without a query or fragment")
    return raw.rstrip("/")


def parse_endpoint(node: Node) -> Endpoint:
    """Validate a remote level's keys (the level's name is read by harness.compress.levels)."""
    node.mapping(ENDPOINT_KEYS, required=("name", "runtime", "url", "model"))
    node.get("runtime").str(choices=("openai_http",))
    url = check_url(node.get("url"), "url")
    model = node.get("model").str()
    meter = check_url(node.get("meter"), "meter") if node.has("meter") else None
    estimate = _estimate(node.get("server_energy")) if node.has("server_energy") else None
    if meter and estimate:
        raise node.get("server_energy").fail(
            "give either meter (measured on the server) or server_energy (an estimate), not both: "
            "measured and estimated joules are never mixed in one figure")
    g, source = _server_carbon(node)
    key_env = node.opt("api_key_env", "str", None)
    if key_env is not None and not key_env.replace("_", "").isalnum():
        raise node.get("api_key_env").fail("the NAME of an environment variable (e.g. "
                                           "OPENAI_API_KEY), not the key itself")
    return Endpoint(url=url, model=model, api=node.opt("api", "str", "completions", choices=APIS),
                    timeout_s=node.opt("timeout_s", "float", 60.0, min=0.1, max=3600.0),
                    extra_sampling=node.opt("extra_sampling", "bool", True),
                    api_key_env=key_env, meter=meter, estimate=estimate,
                    carbon_g_per_kwh=g, carbon_source=source)


def _estimate(node: Node) -> ServerEnergyEstimate:
    node.mapping(("j_per_output_token", "j_per_prompt_token", "source"),
                 required=("j_per_output_token", "source"))
    return ServerEnergyEstimate(
        j_per_output_token=node.get("j_per_output_token").float(min=0.0, max=1e4),
        j_per_prompt_token=node.opt("j_per_prompt_token", "float", 0.0, min=0.0, max=1e4),
        source=node.get("source").str())


def _server_carbon(node: Node) -> tuple[float, str]:
    """The server's grid (it may sit in another country than the device)."""
    from ..energy.carbon import grid_intensity, parse_grid

    grid = parse_grid(node.get("server_carbon")) if node.has("server_carbon") else None
    if grid is not None and grid.intensity_g_per_kwh is not None:
        return grid.intensity_g_per_kwh, f"matrix {node.path}.server_carbon.intensity_g_per_kwh"
    g, source = grid_intensity(grid)
    return g, f"server grid: {source}"


# ------------------------------------------------------------------------------------------------
# HTTP/1.1 on a socket, every byte counted


class Exchange:
    """One HTTP request and its streamed reply on its own connection (`Connection: close`)."""

    def __init__(self, url: str, timeout_s: float):
        self.parts = urlsplit(url)
        self.timeout_s = timeout_s
        self.sent_bytes = 0
        self.received_bytes = 0
        self._sock: socket.socket | None = None
        self._buf = b""
        self._eof = False
        self._chunked = False  # the reply's framing, set from its headers
        self._remaining: int | None = None  # Content-Length left; None: until the connection closes

    @property
    def where(self) -> str:
        return f"{self.parts.scheme}://{self.parts.netloc}"

    def open(self, method: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        """Connect, send the request, read the status line and headers."""
        self._connect()
        path = self.parts.path or "/"
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.parts.netloc}", "Connection: close",
                "User-Agent: edgebench", *(f"{k}: {v}" for k, v in headers.items())]
        if body is not None:
            head.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        try:
            assert self._sock is not None
            self._sock.sendall(data)
        except OSError as e:
            raise HarnessError(f"{self.where}: sending the request failed ({_why(e)})") from None
        self.sent_bytes += len(data)
        return self._status_and_headers()

    def _connect(self) -> None:
        host = self.parts.hostname or ""
        port = self.parts.port or (443 if self.parts.scheme == "https" else 80)
        try:
            sock = socket.create_connection((host, port), timeout=self.timeout_s)
            if self.parts.scheme == "https":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        except ConnectionRefusedError:
            raise HarnessError(f"cannot connect to {self.where}: connection refused; is the server "
                               "running and listening there? (e.g. python -m llama_cpp.server "
                               f"--model FILE --host {host} --port {port}), or fix the level's url"
                               ) from None
        except socket.gaierror as e:
            raise HarnessError(f"cannot resolve the host of {self.where} ({e.strerror}); "
                               "fix the level's url") from None
        except (socket.timeout, TimeoutError):
            raise HarnessError(f"no connection to {self.where} within timeout_s={self.timeout_s:g} s; "
                               "is the host up and reachable (firewall, Wi-Fi)?") from None
        except ssl.SSLError as e:
            raise HarnessError(f"TLS with {self.where} failed ({e.reason}); check the "
                               "certificate or use the server's http:// URL on a trusted LAN") from None
        except OSError as e:
            raise HarnessError(f"cannot connect to {self.where} ({_why(e)})") from None
        self._sock = sock

    def _fill(self) -> bool:
        """Read more bytes; False at end of stream. A silence longer than timeout_s raises."""
        if self._eof:
            return False
        try:
            assert self._sock is not None
            data = self._sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise StreamTimeout(f"{self.where} sent nothing for timeout_s={self.timeout_s:g} s") from None
        except OSError as e:
            raise StreamDropped(f"the connection to {self.where} broke ({_why(e)})") from None
        if not data:
            self._eof = True
            return False
        self.received_bytes += len(data)
        self._buf += data
        return True

    def _readline(self, limit: int = MAX_HEADER_BYTES) -> bytes | None:
        while b"\n" not in self._buf:
            if len(self._buf) > limit:
                raise NotOpenAI(f"{self.where}: a line longer than {limit} bytes; not an HTTP/SSE reply")
            if not self._fill():
                if not self._buf:
                    return None
                line, self._buf = self._buf, b""
                return line
        line, self._buf = self._buf.split(b"\n", 1)
        return line + b"\n"

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                raise StreamDropped(f"{self.where} closed the connection inside a reply chunk")
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _status_and_headers(self) -> tuple[int, dict[str, str]]:
        line = self._readline()
        if line is None:
            raise StreamDropped(f"{self.where} closed the connection without replying")
        parts = line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise NotOpenAI(f"{self.where} did not answer in HTTP (first line: {line[:80]!r})")
        headers: dict[str, str] = {}
        while True:
            h = self._readline()
            if h is None:
                raise StreamDropped(f"{self.where} closed the connection inside the reply headers")
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._remaining = int(length) if length and length.isdigit() and not self._chunked else None
        return int(parts[1]), headers

    def body_pieces(self) -> Iterator[bytes]:
        """The reply body as it arrives (chunked transfer decoded)."""
        if self._chunked:
            yield from self._chunks()
            return
        while self._remaining is None or self._remaining > 0:
            if not self._buf and not self._fill():
                if self._remaining:
                    raise StreamDropped(f"{self.where} closed the connection {self._remaining} "
                                        "bytes before the end of its reply")
                return
            piece = self._buf if self._remaining is None else self._buf[:self._remaining]
            self._buf = self._buf[len(piece):]
            if self._remaining is not None:
                self._remaining -= len(piece)
            yield piece

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size_line = self._readline()
            if size_line is None:
                raise StreamDropped(f"{self.where} closed the connection mid-stream "
                                    "(no final chunk)")
            try:
                size = int(size_line.split(b";")[0].strip() or b"x", 16)
            except ValueError:
                raise NotOpenAI(f"{self.where}: bad chunk size line {size_line[:40]!r}") from None
            if size == 0:
                while self._readline() not in (None, b"\r\n", b"\n"):
                    pass  # trailers
                return
            data = self._read_exact(size)
            self._read_exact(2)  # CRLF after the chunk
            yield data

    def read_body(self, limit: int) -> bytes:
        out = b""
        for piece in self.body_pieces():
            out += piece
            if len(out) >= limit:
                return out[:limit]
        return out

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None


class StreamDropped(HarnessError):
    """The connection ended before the reply did."""


class StreamTimeout(HarnessError):
    """The server went silent for longer than the level's timeout_s."""


class NotOpenAI(HarnessError):
    """The reply is not HTTP, not JSON, or not in OpenAI's shape."""


def _why(e: OSError) -> str:
    return e.strerror or type(e).__name__


def sse_events(ex: Exchange) -> Iterator[str]:
    """The `data:` payloads of a server-sent-events body, in order."""
    pending = b""
    data: list[str] = []
    for piece in ex.body_pieces():
        pending += piece
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            text = line.rstrip(b"\r").decode("utf-8", errors="replace")
            if not text:
                if data:
                    yield "\n".join(data)
                    data = []
            elif text.startswith("data:"):
                data.append(text[5:].lstrip(" "))
            # comments (": ping") and event/id/retry fields carry nothing here
    if data:
        yield "\n".join(data)


# ------------------------------------------------------------------------------------------------
# The backend


@dataclass
class _Request:
    t_start_s: float  # monotonic
    t_end_s: float
    sent_bytes: int
    received_bytes: int
    tokens_in: int
    tokens_out: int


@dataclass
class _Stream:
    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    times: list[float] | None = None
    done: bool = False


class OpenAIHttpBackend(Backend):
    """A level served elsewhere; `load` checks the server (and its meter), `generate` streams."""

    name = "openai_http"

    def __init__(self, endpoint: Endpoint | None = None):
        self.endpoint = endpoint
        self._settings: RuntimeSettings | None = None
        self._requests: list[_Request] = []
        self._server_models: list[str] = []
        self._server_header: str | None = None
        self._token_count_source: str | None = None
        self._prompt_counts: dict[str, int] = {}
        self._tokenizer_path: str | None = None
        self.meter: Any = None  # harness.meter.client.MeterClient when the level names a meter

    @classmethod
    def for_level(cls, level: Any) -> "OpenAIHttpBackend":
        return cls(level.remote)

    # -- lifecycle --------------------------------------------------------------------------
    def load(self, model: Path, settings: RuntimeSettings) -> None:
        """No file to load: check that the server answers and serves the model (and the meter)."""
        ep = self._ep
        self._settings = settings
        status, body = self._json_request("GET", f"{ep.url}/models", None)
        if status != 200:
            raise HarnessError(_http_problem(ep, "/models", status, body))
        served = _model_ids(body)
        self._server_models = served
        if served and ep.model not in served:
            raise HarnessError(f"{ep.url} does not serve model '{ep.model}' (it serves: "
                               f"{', '.join(served[:10])}); fix the level's model")
        if ep.meter:
            from ..meter.client import MeterClient

            self.meter = MeterClient(ep.meter, timeout_s=min(ep.timeout_s, 10.0))
            self.meter.check_clock()

    @property
    def _ep(self) -> Endpoint:
        if self.endpoint is None:
            raise HarnessError("the openai_http runtime needs a level with url and model")
        return self.endpoint

    def unload(self) -> None:
        self._requests.clear()

    def info(self) -> dict[str, Any]:
        ep = self._ep
        return {"runtime": "openai_http", "version": self._server_header or "unknown",
                "url": ep.url, "model": ep.model,
                "api": ep.api, "server_models": self._server_models,
                "server_header": self._server_header}

    # -- generation -------------------------------------------------------------------------
    def generate(self, prompt: str, max_tokens: int, stop: Sequence[str] = (),
                 add_bos: bool = True, ignore_eos: bool = False) -> Generation:
        """Greedy and streamed; BOS is the server's business (it tokenizes the prompt)."""
        ep = self._ep
        body = self._body(prompt, max_tokens, stop, ignore_eos)
        ex = Exchange(f"{ep.url}/{'chat/completions' if ep.api == 'chat' else 'completions'}",
                      ep.timeout_s)
        t_start = time.monotonic()
        stream = _Stream(times=[])
        try:
            status, headers = ex.open("POST", body, self._headers())
            self._server_header = headers.get("server", self._server_header)
            if status != 200:
                raise HarnessError(_http_problem(ep, ex.parts.path, status,
                                                 ex.read_body(MAX_ERROR_BODY_BYTES)))
            _check_stream_type(ep, headers)
            self._read_stream(ex, stream)
        except (StreamDropped, StreamTimeout) as e:
            got = len(stream.times or [])
            raise type(e)(f"{e} after {got} streamed piece(s) of the answer; the cell's answer is "
                          "incomplete. Check the server's log (crash, restart, overload); a slow "
                          "server needs a larger timeout_s on the level") from None
        finally:
            ex.close()
        t_end = time.monotonic()
        return self._generation(prompt, stream, ex, t_start, t_end)

    def _body(self, prompt: str, max_tokens: int, stop: Sequence[str], ignore_eos: bool) -> bytes:
        ep = self._ep
        seed = self._settings.seed if self._settings else 0
        body: dict[str, Any] = {"model": ep.model, "max_tokens": max_tokens, "stream": True,
                                "stream_options": {"include_usage": True},
                                "temperature": 0.0, "top_p": 1.0, "seed": seed,
                                "presence_penalty": 0.0, "frequency_penalty": 0.0}
        if ep.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if stop:
            body["stop"] = list(stop)
        if ep.extra_sampling:  # greedy the llama.cpp way; vLLM and Ollama take these too
            body.update(top_k=1, min_p=0.0, repeat_penalty=1.0)
            # llama.cpp's server keeps the previous prompt's KV cache unless told not to; speed
            # kinds pay their full prefill, as local cells do (llama-cpp-python ignores the key)
            body["cache_prompt"] = bool(self._settings and self._settings.reuse_prompt_prefix)
            if ignore_eos:  # fixed-length runs: llama.cpp/vLLM ignore_eos, llama-cpp-python min_tokens
                body.update(ignore_eos=True, min_tokens=max_tokens)
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        env = self._ep.api_key_env
        if env:
            key = os.environ.get(env)
            if not key:
                raise HarnessError(f"the level's api_key_env names {env}, which is not set in "
                                   "this environment; export it before the run")
            h["Authorization"] = f"Bearer {key}"
        return h

    def _read_stream(self, ex: Exchange, stream: _Stream) -> None:
        for data in sse_events(ex):
            if data.strip() == "[DONE]":
                stream.done = True
                return
            _apply_chunk(self._ep, ex, data, stream)
        if not stream.done and stream.finish_reason is None:
            raise StreamDropped(f"{ex.where} ended the stream before the answer was complete "
                                "(no finish_reason, no [DONE])")

    def _generation(self, prompt: str, stream: _Stream, ex: Exchange, t_start: float,
                    t_end: float) -> Generation:
        times = stream.times or []
        usage = stream.usage or {}
        tokens_out = _int(usage.get("completion_tokens"))
        tokens_in = _int(usage.get("prompt_tokens"))
        if tokens_out is None:
            tokens_out = len(times)  # llama.cpp servers stream one token per chunk
        if tokens_in is None:
            tokens_in = self._count_prompt(prompt)
        else:
            self._token_count_source = "server usage (stream_options.include_usage)"
        self._requests.append(_Request(t_start, t_end, ex.sent_bytes, ex.received_bytes,
                                       tokens_in, tokens_out))
        reason = {"length": "length"}.get(stream.finish_reason or "", "stop")
        t_first = times[0] if times else t_end
        return Generation(text=stream.text, tokens_in=tokens_in, tokens_out=tokens_out,
                          t_start_s=t_start, t_first_token_s=t_first, t_end_s=t_end,
                          token_times_s=tuple(times), stop_reason=reason, tokens=())

    def _count_prompt(self, prompt: str) -> int:
        """Prompt tokens when the server reports no usage: its own tokenizer endpoint, asked once
        per distinct prompt (llama-cpp-python `/extras/tokenize/count`, llama.cpp `/tokenize`).
        These requests are the harness's, not the query's: their bytes are not counted."""
        if prompt in self._prompt_counts:
            return self._prompt_counts[prompt]
        root = self._ep.url.removesuffix("/v1")
        tries = ([self._tokenizer_path] if self._tokenizer_path else
                 ["/extras/tokenize/count", "/tokenize"])
        for path in tries:
            payload = {"input": prompt} if path.startswith("/extras") else {"content": prompt}
            try:
                status, body = self._json_request("POST", root + path, payload)
            except HarnessError:
                continue
            n = _token_count(body) if status == 200 else None
            if n is not None:
                self._tokenizer_path = path
                self._token_count_source = (f"completion tokens: streamed pieces; prompt tokens: "
                                            f"the server's tokenizer ({path})")
                self._prompt_counts[prompt] = n
                return n
        self._token_count_source = ("completion tokens: streamed pieces; prompt tokens unknown "
                                    "(no usage, no tokenizer endpoint): recorded as 0")
        return 0

    def _json_request(self, method: str, url: str, payload: dict[str, Any] | None) -> tuple[int, Any]:
        ex = Exchange(url, self._ep.timeout_s)
        try:
            data = None if payload is None else json.dumps(payload).encode("utf-8")
            headers = {**self._headers(), "Accept": "application/json"}
            if data is None:
                headers.pop("Content-Type")
            status, reply_headers = ex.open(method, data, headers)
            self._server_header = reply_headers.get("server", self._server_header)
            raw = ex.read_body(1 << 20)
        finally:
            ex.close()
        try:
            return status, json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            if status == 200:
                raise NotOpenAI(f"{url} answered {status} with something that is not JSON "
                                f"({_excerpt(raw)}); is this an OpenAI-compatible API base "
                                "(ending in /v1)?") from None
            return status, raw

    # -- what the device cannot do remotely -------------------------------------------------
    def tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        raise HarnessError("the openai_http runtime has no tokenizer on the device (the server "
                           "tokenizes); this workload needs a local level")

    def detokenize(self, tokens: Sequence[int]) -> str:
        raise HarnessError("the openai_http runtime has no tokenizer on the device")

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        raise HarnessError(f"the openai_http runtime cannot give logits: {LOGITS_REFUSAL}")

    @property
    def eos_token(self) -> int:
        raise HarnessError("the openai_http runtime does not know the server model's tokens")

    # -- figures measured off the device ------------------------------------------------------
    def window_fields(self, t0_s: float, t1_s: float) -> dict[str, Any]:
        """Network bytes of the requests made in [t0, t1] and the server's energy over it."""
        reqs = [r for r in self._requests if t0_s <= r.t_start_s <= t1_s]
        self._requests = [r for r in self._requests if r.t_start_s > t1_s]
        tokens_in = sum(r.tokens_in for r in reqs)
        tokens_out = sum(r.tokens_out for r in reqs)
        out: dict[str, Any] = {
            "network_sent_bytes": sum(r.sent_bytes for r in reqs),
            "network_received_bytes": sum(r.received_bytes for r in reqs),
            "server_requests": len(reqs)}
        out.update(self._server_energy(t0_s, t1_s, tokens_in, tokens_out))
        out["offload"] = self._offload_constants()
        return out

    def _server_energy(self, t0_s: float, t1_s: float, tokens_in: int,
                       tokens_out: int) -> dict[str, Any]:
        ep = self._ep
        if self.meter is not None:
            fields = self.meter.window_energy(t0_s, t1_s)
        elif ep.estimate is not None:
            fields = {"server_energy_j": ep.estimate.energy_j(tokens_in, tokens_out),
                      "server_energy_valid": True}
        else:
            return {"server_energy_j": None}
        e = fields.get("server_energy_j")
        fields["server_co2e_g"] = (None if e is None
                                   else e / 3.6e6 * ep.carbon_g_per_kwh)
        return fields

    def _offload_constants(self) -> dict[str, Any]:
        ep = self._ep
        if self.meter is not None:
            energy = self.meter.provenance()
        elif ep.estimate is not None:
            energy = {"method": "estimated", "sensor": "j_per_token", "model": "j-per-token",
                      "source": ep.estimate.source, "coverage": "as the source states"}
        else:
            energy = {"method": None, "why": "no meter and no server_energy estimate on the level"}
        return {**ep.describe(), "server_energy": energy,
                "server_carbon_intensity_g_per_kwh": ep.carbon_g_per_kwh,
                "server_carbon_source": ep.carbon_source,
                "token_count_source": self._token_count_source,
                "network_bytes_counted": "HTTP request/reply bytes on the device's socket "
                                         "(headers, chunk framing, body); not TCP/IP or TLS overhead"}


# ------------------------------------------------------------------------------------------------
# Reading OpenAI replies


def _apply_chunk(ep: Endpoint, ex: Exchange, data: str, stream: _Stream) -> None:
    """One streamed chunk: its text piece, finish reason and usage (when the server sends it)."""
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError:
        raise NotOpenAI(f"{ex.where} streamed a line that is not JSON ({_excerpt(data)}); "
                        "not an OpenAI-compatible stream") from None
    if not isinstance(chunk, dict):
        raise NotOpenAI(f"{ex.where} streamed {type(chunk).__name__}, not an OpenAI chunk object")
    if "error" in chunk:
        raise HarnessError(f"{ex.where} reported an error mid-stream: {_error_message(chunk)}")
    if isinstance(chunk.get("usage"), dict):
        stream.usage = chunk["usage"]
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise NotOpenAI(f"{ex.where} streamed a chunk without 'choices' ({_excerpt(data)}); "
                        "not an OpenAI completion stream")
    for choice in choices:
        piece = _piece(ep, choice)
        if piece:
            stream.text += piece
            assert stream.times is not None
            stream.times.append(time.monotonic())
        if isinstance(choice, dict) and choice.get("finish_reason"):
            stream.finish_reason = str(choice["finish_reason"])


def _piece(ep: Endpoint, choice: Any) -> str:
    if not isinstance(choice, dict):
        return ""
    if ep.api == "chat":
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
    else:
        content = choice.get("text")
    return content if isinstance(content, str) else ""


def _check_stream_type(ep: Endpoint, headers: dict[str, str]) -> None:
    ctype = headers.get("content-type", "")
    if "text/event-stream" not in ctype:
        raise NotOpenAI(f"{ep.url} answered a streamed request with Content-Type '{ctype or 'none'}'"
                        ", not text/event-stream: not an OpenAI-compatible streaming endpoint "
                        "(is url the API base, ending in /v1?)")


def _http_problem(ep: Endpoint, path: str, status: int, body: Any) -> str:
    msg = _error_message(body) if isinstance(body, dict) else _excerpt(body)
    base = f"{ep.url} answered HTTP {status} to {path}: {msg}"
    if status in (401, 403):
        return base + "; the server wants an API key: set api_key_env on the level"
    if status == 404:
        return base + "; is url the API base (e.g. http://HOST:8080/v1) and is the model served?"
    if status in (400, 422):
        return base + ("; the server refused the request (set extra_sampling: false if it rejects "
                       "top_k/min_p/repeat_penalty)")
    if status >= 500:
        return base + "; the server failed: check its log (out of memory, model not loaded)"
    return base


def _error_message(body: Any) -> str:
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body))
        if isinstance(err, dict):
            return str(err.get("message") or err)[:300]
        return str(err)[:300]
    return _excerpt(body)


def _excerpt(raw: Any) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
    text = " ".join(text.split())
    return repr(text[:120]) + ("..." if len(text) > 120 else "") if text else "(empty)"


def _model_ids(body: Any) -> list[str]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise NotOpenAI(f"/models did not answer with an OpenAI model list ({_excerpt(body)}); "
                        "is url the API base (ending in /v1)?")
    return [str(m.get("id")) for m in body["data"] if isinstance(m, dict) and m.get("id")]


def _token_count(body: Any) -> int | None:
    if isinstance(body, dict):
        if isinstance(body.get("count"), int):
            return body["count"]
        if isinstance(body.get("tokens"), list):
            return len(body["tokens"])
    return None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def prepared_fields(level: Any) -> dict[str, Any]:
    """The model fields of a remote level's records: what the device knows of the server's
    model (its name and URL); size, parameters and quantisation are the server's business."""
    ep: Endpoint = level.remote
    return {"model_sha256": None, "model_size_bytes": None, "quant_type": None,
            "model_source": f"openai_http {ep.url} model {ep.model}",
            "compression": {"kind": "remote", "recipe": level.recipe, **ep.describe()},
            "source_quant_type": None}
