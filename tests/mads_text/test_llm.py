import asyncio
import socket

import pytest

from mads_text.llm import GenParams, LLMError, LLMUnavailable, make_backend
from mads_text.llm.fake import ScriptedBackend
from mads_text.llm.wrappers import CachedBackend, RetryingBackend


def run(c):
    return asyncio.run(c)


def test_retry_recovers_then_gives_up():
    be = RetryingBackend(ScriptedBackend([LLMError("boom"), "ok"]), retries=2, backoff_s=0.01)
    assert run(be.complete("x")).text == "ok"
    be = RetryingBackend(ScriptedBackend([LLMError("boom")] * 5), retries=2, backoff_s=0.01)
    with pytest.raises(LLMError, match="gave up after 3 attempts"):
        run(be.complete("x"))


def test_retry_times_out():
    class Slow(ScriptedBackend):
        async def _complete(self, prompt, params):
            await asyncio.sleep(5)

    be = RetryingBackend(Slow(), retries=1, timeout_s=0.05, backoff_s=0.01)
    with pytest.raises(LLMError, match="timed out"):
        run(be.complete("x"))


def test_cache_is_exact_and_keyed_on_params(tmp_path):
    inner = ScriptedBackend(["a", "b", "c"])
    be = CachedBackend(inner, tmp_path / "c.sqlite")
    assert run(be.complete("p", GenParams(seed=1))).text == "a"
    again = run(be.complete("p", GenParams(seed=1)))
    assert again.text == "a" and again.cached
    assert run(be.complete("p", GenParams(seed=2))).text == "b"
    assert len(inner.calls) == 2
    # survives a reopen
    be2 = CachedBackend(ScriptedBackend([]), tmp_path / "c.sqlite")
    assert run(be2.complete("p", GenParams(seed=2))).text == "b"


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_openai_endpoint_fails_clearly():
    be = make_backend("openai", "some-model", base_url=f"http://127.0.0.1:{_free_port()}/v1", retries=1)
    with pytest.raises(LLMUnavailable, match="cannot reach http://127.0.0.1"):
        run(be.complete("hi", GenParams(max_tokens=3)))
    with pytest.raises(LLMUnavailable, match="cannot reach"):
        run(be.check())


def test_unknown_backend_and_model():
    with pytest.raises(LLMUnavailable, match="unknown backend"):
        make_backend("nope")
    with pytest.raises(LLMUnavailable, match="neither a preset"):
        make_backend("embedded", "/no/such/model.gguf")


@pytest.mark.slow
def test_embedded_smollm2_raw_chat_and_json():
    be = make_backend("embedded", "smollm2", parallel=2)
    c = run(be.complete("Alice: Hello, how are you?\nBob:", GenParams(max_tokens=16, stop=["\n"], seed=1)))
    assert c.completion_tokens > 0 and "\n" not in c.text
    same = run(be.complete("Alice: Hello, how are you?\nBob:", GenParams(max_tokens=16, stop=["\n"], seed=1)))
    assert same.text == c.text  # seeded sampling is reproducible
    schema = {"type": "object", "properties": {"state": {"enum": ["Doubt", "Interested"]}}, "required": ["state"]}
    import json

    from mads_text.llm import Message

    j = run(be.complete([Message(role="user", content="Classify: 'sounds good'")], GenParams(max_tokens=60, json_schema=schema)))
    assert json.loads(j.text)["state"] in ("Doubt", "Interested")


def test_runtime_settings_from_the_environment_are_checked(monkeypatch):
    from mads_text.llm.embedded import _env_int

    monkeypatch.setenv("MADS_LLM_CACHE_RAM_MIB", "1024")
    assert _env_int("MADS_LLM_CACHE_RAM_MIB") == 1024
    monkeypatch.setenv("MADS_LLM_CACHE_RAM_MIB", "")
    assert _env_int("MADS_LLM_CACHE_RAM_MIB") is None
    for bad in ("1g", "-5"):
        monkeypatch.setenv("MADS_LLM_THREADS", bad)
        with pytest.raises(LLMUnavailable, match="MADS_LLM_THREADS"):
            _env_int("MADS_LLM_THREADS")
