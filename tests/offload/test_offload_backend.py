"""The openai_http runtime against stub servers: streaming, byte counts, and every fault."""
from __future__ import annotations

import json
import socket

import pytest

from harness.backends import get_backend
from harness.backends.base import RuntimeSettings
from harness.compress.levels import parse_level, runtime_of
from harness.errors import ConfigError, HarnessError
from harness.schema import Node
from tests.offload import stubs


def remote_level(url: str, **extra):
    return parse_level(Node({"name": "srv", "runtime": "openai_http", "url": url,
                             "model": "stub-model", **extra}, "m.yaml", "levels[1]"))


def loaded(url: str, **extra):
    backend = get_backend("openai_http", remote_level(url, **extra))
    backend.load(None, RuntimeSettings(seed=7))
    return backend


def test_a_streamed_answer_with_usage_and_every_byte_counted():
    usage = {"id": "x", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}
    body = stubs.sse([stubs.chunk(" Paris"), stubs.chunk(" is"), stubs.chunk(" nice", "length"),
                      usage, "[DONE]"])
    reply = stubs.http(200, body, "text/event-stream", chunked=True)
    with stubs.StubServer(lambda conn, path: conn.sendall(reply)) as srv:
        b = loaded(srv.url)
        gen = b.generate("The capital of France is", 3, stop=("\n",), ignore_eos=True)
        fields = b.window_fields(gen.t_start_s, gen.t_end_s)
        sent = srv.requests[-1]
    assert gen.text == " Paris is nice" and gen.stop_reason == "length"
    assert (gen.tokens_in, gen.tokens_out) == (5, 3) and len(gen.token_times_s) == 3
    assert gen.t_start_s < gen.t_first_token_s <= gen.t_end_s
    request = json.loads(sent.split(b"\r\n\r\n", 1)[1])
    # greedy, streamed, the prompt as given, to the configured model
    assert request["prompt"] == "The capital of France is" and request["stream"] is True
    assert request["temperature"] == 0.0 and request["top_k"] == 1 and request["seed"] == 7
    assert request["stop"] == ["\n"] and request["ignore_eos"] and request["min_tokens"] == 3
    assert request["model"] == "stub-model"
    assert fields["network_sent_bytes"] == len(sent)
    assert fields["network_received_bytes"] == len(reply)
    assert fields["server_requests"] == 1 and fields["server_energy_j"] is None
    assert fields["offload"]["token_count_source"].startswith("server usage")
    assert fields["offload"]["server_energy"]["method"] is None


def test_no_usage_and_no_tokenizer_counts_streamed_pieces_and_says_so():
    reply = stubs.http(200, stubs.GOOD_STREAM, "text/event-stream")
    with stubs.StubServer(lambda conn, path: conn.sendall(reply)) as srv:
        b = loaded(srv.url)
        gen = b.generate("hello", 8)
        fields = b.window_fields(gen.t_start_s, gen.t_end_s)
    assert gen.tokens_out == 3 and gen.tokens_in == 0
    assert "prompt tokens unknown" in fields["offload"]["token_count_source"]


def test_an_estimate_is_labelled_and_uses_the_server_grid():
    reply = stubs.http(200, stubs.GOOD_STREAM, "text/event-stream")
    with stubs.StubServer(lambda conn, path: conn.sendall(reply)) as srv:
        b = loaded(srv.url, server_energy={"j_per_output_token": 0.5, "source": "a paper"},
                   server_carbon={"intensity_g_per_kwh": 360.0})
        gen = b.generate("hello", 8)
        fields = b.window_fields(gen.t_start_s, gen.t_end_s)
    assert fields["server_energy_j"] == pytest.approx(1.5)  # 3 tokens x 0.5 J
    assert fields["server_co2e_g"] == pytest.approx(1.5 / 3.6e6 * 360.0)
    energy = fields["offload"]["server_energy"]
    assert energy["method"] == "estimated" and energy["source"] == "a paper"
    assert fields["offload"]["server_carbon_intensity_g_per_kwh"] == 360.0


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_server_fails_at_load_with_the_fix():
    b = get_backend("openai_http", remote_level(f"http://127.0.0.1:{_free_port()}/v1"))
    with pytest.raises(HarnessError, match="connection refused; is the server running"):
        b.load(None, RuntimeSettings())


@pytest.mark.parametrize("behaviour, message", [
    (stubs.drop_mid_stream, r"closed the connection mid-stream.*after 2 streamed piece"),
    (stubs.answer(200, b"data: hello there\n\n", "text/event-stream"), "not JSON"),
    (stubs.answer(200, stubs.sse([{"foo": 1}]), "text/event-stream"), "without 'choices'"),
    (stubs.answer(200, b"<html>login</html>", "text/html"), "not text/event-stream"),
    (stubs.answer(500, b'{"error": {"message": "CUDA out of memory"}}'),
     "HTTP 500.*CUDA out of memory.*check its log"),
    (stubs.answer(404, b'{"detail": "Not Found"}'), "HTTP 404.*API base"),
    (stubs.answer(401, b'{"error": {"message": "bad key"}}'), "api_key_env"),
    (stubs.answer(200, stubs.sse([{"error": {"message": "context full"}}]), "text/event-stream"),
     "error mid-stream: context full"),
    (stubs.answer(200, stubs.sse([stubs.chunk(" a")]), "text/event-stream"),
     "ended the stream before the answer was complete"),
    (lambda conn, path: conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n"), "did not answer in HTTP"),
])
def test_faults_fail_the_generation_with_a_reason(behaviour, message):
    with stubs.StubServer(behaviour) as srv:
        b = loaded(srv.url)
        with pytest.raises(HarnessError, match=message):
            b.generate("hello", 8)


def test_a_silent_server_times_out():
    with stubs.StubServer(stubs.go_silent(3.0)) as srv:
        b = loaded(srv.url, timeout_s=0.5)
        with pytest.raises(HarnessError, match=r"sent nothing for timeout_s=0.5 s.*after 1 streamed"):
            b.generate("hello", 8)


def test_a_model_the_server_does_not_serve_is_refused_at_load():
    with stubs.StubServer(stubs.drop_mid_stream) as srv:
        level = parse_level(Node({"name": "srv", "runtime": "openai_http", "url": srv.url,
                                  "model": "gpt-9"}, "m.yaml", "levels[1]"))
        with pytest.raises(HarnessError, match="does not serve model 'gpt-9'.*stub-model"):
            get_backend("openai_http", level).load(None, RuntimeSettings())


def test_logits_are_refused_with_the_reason():
    b = get_backend("openai_http", remote_level("http://127.0.0.1:9/v1"))
    with pytest.raises(HarnessError, match="full next-token distribution"):
        b.logits([1, 2])


@pytest.mark.parametrize("entry, key, message", [
    ({"url": "ftp://host/v1", "model": "m"}, "levels[1].url", "not an http"),
    ({"url": "127.0.0.1:8080/v1", "model": "m"}, "levels[1].url", "not an http"),
    ({"url": "http://user:pw@host/v1", "model": "m"}, "levels[1].url", "api_key_env"),
    ({"url": "http://host/v1"}, "levels[1]", "missing required key 'model'"),
    ({"url": "http://host/v1", "model": ""}, "levels[1].model", "non-empty string"),
    ({"model": "m"}, "levels[1]", "missing required key 'url'"),
    ({"url": "http://host/v1", "model": "m", "meter": "tcp://x"}, "levels[1].meter", "http"),
    ({"url": "http://host/v1", "model": "m", "meter": "http://h:1",
      "server_energy": {"j_per_output_token": 1, "source": "s"}}, "levels[1].server_energy",
     "never mixed"),
    ({"url": "http://host/v1", "model": "m", "server_energy": {"j_per_output_token": 1}},
     "levels[1].server_energy", "missing required key 'source'"),
])
def test_bad_remote_levels_are_config_errors_naming_the_key(entry, key, message):
    with pytest.raises(ConfigError) as e:
        parse_level(Node({"name": "srv", "runtime": "openai_http", **entry}, "m.yaml", "levels[1]"))
    assert e.value.key_path == key and message in e.value.message


def test_a_remote_level_runs_in_openai_http():
    level = remote_level("http://10.0.0.2:8080/v1/")
    assert runtime_of(level) == "openai_http" and level.remote.url == "http://10.0.0.2:8080/v1"
    assert level.recipe == {"format": "remote", "url": "http://10.0.0.2:8080/v1", "model": "stub-model"}


def test_chat_api_sends_one_user_message_and_reads_deltas():
    def delta(text, finish=None):
        return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}
    reply = stubs.http(200, stubs.sse([delta("Ro"), delta("me", "stop"), "[DONE]"]), "text/event-stream")
    with stubs.StubServer(lambda conn, path: conn.sendall(reply)) as srv:
        b = loaded(srv.url, api="chat")
        gen = b.generate("Capital of Italy?", 8)
        sent = [r for r in srv.requests if b"chat/completions" in r.split(b"\r\n", 1)[0]]
    body = json.loads(sent[0].split(b"\r\n\r\n", 1)[1])
    assert body["messages"] == [{"role": "user", "content": "Capital of Italy?"}]
    assert gen.text == "Rome" and gen.stop_reason == "stop" and gen.tokens_out == 2


def test_prompts_go_to_the_configured_server_only(monkeypatch):
    """No proxy from the environment is used: the request reaches the stub directly."""
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    reply = stubs.http(200, stubs.GOOD_STREAM, "text/event-stream")
    with stubs.StubServer(lambda conn, path: conn.sendall(reply)) as srv:
        gen = loaded(srv.url).generate("secret prompt", 8)
        assert any(b"secret prompt" in r for r in srv.requests)
    assert gen.text == " Paris is nice"
