"""``mads serve``, ``mads call`` and ``mads ab-report``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from pathlib import Path

import typer

from mads_text.common.cli import fail


def serve_cmd(
    scenario: str = typer.Option("insurance", help="Built-in scenario (insurance, automotive, finance) or a YAML path."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8765, help="TCP port (0 picks a free one and prints it)."),
    token: str | None = typer.Option(None, envvar="MADS_SERVE_TOKEN", help="Bearer token callers must present (or MADS_SERVE_TOKEN)."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Accept calls without a token (local experiments only)."),
    db: Path = typer.Option(Path("calls.sqlite"), help="SQLite call store (WAL); created if missing."),
    split: str | None = typer.Option(None, help="A/B split, e.g. audio=0.5 (the rest goes to pipeline). Default: audio=0.5 when the audio arm can run, else all pipeline."),
    experiment: str = typer.Option("default", help="Experiment name: salt of the sticky caller -> arm assignment."),
    backend: str = typer.Option("embedded", help="LLM backend of the pipeline arm: embedded, openai, vllm, transformers."),
    model: str | None = typer.Option(None, help="LLM model: embedded preset qwen1.5b (default) or smollm2, or a path / served name."),
    base_url: str | None = typer.Option(None, help="OpenAI-compatible endpoint for --backend openai."),
    prompt_mode: str = typer.Option("auto", help="Dialog Agent prompt framing: auto, transcript, chat."),
    prompt: str | None = typer.Option(None, help="Dialog Agent instruction or evolved SOP for both arms, replacing the scenario's meta instruction; @file reads a file."),
    max_tokens: int = typer.Option(60, help="Longest agent reply in tokens (short replies keep latency down)."),
    temperature: float = typer.Option(0.7, min=0.0, help="Sampling temperature of both arms (0: greedy)."),
    top_p: float = typer.Option(1.0, min=0.0, max=1.0, help="Nucleus sampling mass of both arms."),
    allow_mismatch: bool = typer.Option(False, "--allow-mismatch", help="Run both arms although they differ in backbone, prompt or decoding; the A/B report states the differences."),
    caller_name_in_prompt: bool = typer.Option(False, help="Tell the Dialog Agent the caller's name (costs the shared prompt cache: slower replies)."),
    llm_threads: int = typer.Option(2, min=1, help="llama.cpp threads of the embedded backend (2 answered sooner than 1 on 2 cores, docs/serve.md)."),
    speculative: str | None = typer.Option(None, help="llama.cpp n-gram speculative decoding of the embedded backend: ngram-simple, ngram-mod, ngram-map-k, ngram-map-k4v, ngram-cache."),
    stream: bool = typer.Option(True, help="Stream the agent's reply and voice its first clause at once (embedded backend); --no-stream waits for the whole reply."),
    listen_while_speaking: bool = typer.Option(True, help="Transcribe the caller while they speak and end turns by their words; --no-listen-while-speaking transcribes each utterance after a fixed 500 ms silence."),
    complete_silence_ms: int = typer.Option(250, help="Silence that ends a turn whose words make a finished sentence."),
    incomplete_silence_ms: int = typer.Option(800, help="Silence that ends any turn."),
    asr: str = typer.Option("base", help="Whisper model for the pipeline arm: base, tiny.en, or a CTranslate2 folder."),
    tts: str = typer.Option("flite", help="Agent TTS engine: flite (fast) or kokoro (better, about real time on 2 cores)."),
    audio_model: str | None = typer.Option(None, help="Speech-LLM checkpoint for the audio arm (default: the one "
                                             "shipped for the default LLM; 'none': no audio arm). A CTC checkpoint "
                                             "runs as an ear before the pipeline's own LLM."),
    recordings: Path | None = typer.Option(None, help="Folder for stereo call recordings (default: next to --db)."),
    no_recordings: bool = typer.Option(False, "--no-recordings", help="Do not record call audio."),
    allow_origin: list[str] = typer.Option([], help="Browser Origin allowed to open calls, e.g. https://voice.example.com (repeatable; '*' allows any). Without it only this server's own page on localhost may."),
    max_calls: int = typer.Option(4, min=1, help="Calls served at once (authenticated starts); more are closed with code 1013."),
    max_unauthenticated: int = typer.Option(4, min=1, help="Connections at once that still owe their token in the first message (no Authorization header); more are closed with code 1013."),
    auth_timeout: float = typer.Option(3.0, help="Seconds a connection without an Authorization header has to send its start message with the token."),
    max_message_kb: int = typer.Option(64, min=1, help="Largest websocket message in KiB (larger: close 1009)."),
    idle_timeout: float = typer.Option(20.0, help="Seconds without any message from the caller before the call is closed."),
    max_call_s: float = typer.Option(600.0, help="Longest call in seconds."),
    max_turns: int = typer.Option(8, min=1, help="Agent turns after which the agent ends the call."),
    realtime_factor: float = typer.Option(1.0, help="Play agent audio this many times faster than real time (testing)."),
    no_barge_in: bool = typer.Option(False, "--no-barge-in", help="Let the agent finish even when the caller talks over it."),
    outcome: str = typer.Option("auto", help="Outcome detection: auto (attitude labeler when its heads are installed, plus rules), rules, embedded."),
    log_level: str = typer.Option("INFO", help="Logging level."),
) -> None:
    """Answer voice calls over websockets (native and Twilio), A/B between the pipeline and audio arms."""
    from mads_text.llm import LLMUnavailable
    from mads_text.scenario import ScenarioError

    from .ab import SplitError
    from .app import ServeOptions, build_server
    from .arms.base import ArmUnavailable
    from .store import StoreError

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    if not token and not no_auth:
        fail("give --token (or MADS_SERVE_TOKEN), or --no-auth for a local experiment")
    if prompt and prompt.startswith("@"):
        try:
            prompt = Path(prompt[1:]).read_text(encoding="utf-8")
        except OSError as e:
            fail(f"--prompt {prompt}: {e}")
    opts = ServeOptions(
        scenario=scenario, host=host, port=port, token=None if no_auth else token, db=db, split=split,
        experiment=experiment, backend=backend, model=model, base_url=base_url, prompt_mode=prompt_mode, prompt_k=prompt,
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, allow_mismatch=allow_mismatch,
        use_caller_name=caller_name_in_prompt, llm_threads=llm_threads, speculative=speculative,
        stream=stream, listen_while_speaking=listen_while_speaking, complete_silence_ms=complete_silence_ms,
        incomplete_silence_ms=incomplete_silence_ms, asr=asr, tts=tts, audio_model=audio_model, recordings=recordings,
        no_recordings=no_recordings, allow_origins=list(allow_origin), max_calls=max_calls,
        max_unauthenticated=max_unauthenticated, unauthenticated_timeout_s=auth_timeout,
        max_message_bytes=max_message_kb * 1024, idle_timeout_s=idle_timeout, max_call_s=max_call_s,
        max_turns=max_turns, realtime_factor=realtime_factor, barge_in=not no_barge_in, outcome=outcome,
    )  # fmt: skip

    async def run() -> None:
        srv = build_server(opts)
        await srv.start()
        unavailable = "; ".join(f"{a}: {why}" for a, why in srv.unavailable.items())
        print(
            f"mads serve: ws://{host}:{srv.port}/v1/call (native), ws://{host}:{srv.port}/v1/twilio (Twilio), "
            f"http://{host}:{srv.port}/ (web page); split {srv.cfg.split}; db {db}"
            + (f"; unavailable arms: {unavailable}" if unavailable else ""),
            flush=True,
        )
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await srv.close()

    try:
        asyncio.run(run())
    except (ScenarioError, SplitError, ArmUnavailable, LLMUnavailable, StoreError, ValueError) as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e}")


def call_cmd(
    url: str = typer.Option("ws://127.0.0.1:8765/v1/call", help="Native endpoint of a running server."),
    token: str | None = typer.Option(None, envvar="MADS_SERVE_TOKEN", help="Bearer token of the server."),
    calls: int = typer.Option(20, min=1, help="Simulated calls to place."),
    concurrency: int = typer.Option(2, min=1, help="Calls in flight at once."),
    scenario: str = typer.Option("insurance", help="Scenario the personas are drawn for (must match the server's)."),
    group: str = typer.Option("sign", help="Persona group: base, sign, mbti, busi."),
    seed: int = typer.Option(7, help="Persona sampling seed."),
    backend: str = typer.Option("embedded", help="LLM backend of the User Agents."),
    model: str | None = typer.Option(None, help="User Agent model (embedded preset qwen1.5b or smollm2, or a path)."),
    base_url: str | None = typer.Option(None, help="OpenAI-compatible endpoint for --backend openai."),
    asr: str = typer.Option("tiny.en", help="Whisper model the callers listen with."),
    tts: str = typer.Option("flite", help="TTS engine of the caller voices: flite or kokoro."),
    max_turns: int = typer.Option(3, min=1, help="Caller turns before the caller hangs up."),
    realtime_factor: float = typer.Option(1.0, help="Stream caller audio this many times faster than real time."),
    out: Path | None = typer.Option(None, help="JSON Lines of what each caller heard and said (appended)."),
    db: Path | None = typer.Option(None, help="Read the A/B report from this call store (default: ask the server's /v1/report)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the A/B report here."),
    include_requested: bool = typer.Option(False, help="Count calls whose arm the caller chose in the report (left out by default)."),
) -> None:
    """Place simulated calls: MADS personas voiced with their own voices, listening through ASR; then print the A/B report."""
    from mads_text.llm import LLMUnavailable
    from mads_text.scenario import ScenarioError

    from .caller import CallerOptions, run_callers

    logging.basicConfig(level=logging.WARNING)
    opts = CallerOptions(
        url=url, token=token, calls=calls, concurrency=concurrency, scenario=scenario, group=group, seed=seed,
        backend=backend, model=model, base_url=base_url, asr=asr, tts=tts, max_turns=max_turns,
        realtime_factor=realtime_factor, out=out, db=db, json_out=json_out, include_requested=include_requested,
    )  # fmt: skip
    try:
        summary, report = asyncio.run(run_callers(opts))
    except (ScenarioError, LLMUnavailable, ValueError) as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot reach {url}: {e}")
    from .report import format_report

    typer.echo(summary)
    if report is not None:
        typer.echo(format_report(report))
        if json_out:
            typer.echo(f"report written to {json_out}")


def ab_report_cmd(
    db: Path = typer.Option(..., help="Call store written by mads serve."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report as JSON here."),
    include_requested: bool = typer.Option(False, help="Also count calls whose arm the caller chose (left out by default: the split did not assign them)."),
) -> None:
    """Per-arm conversion, intention, turns and latency with 95% intervals and a two-proportion test."""
    from .report import ab_report, format_report
    from .store import CallStore, StoreError

    try:
        store = CallStore(db, readonly=True)
        rep = ab_report(store, include_requested=include_requested)
    except StoreError as e:
        fail(str(e))
    except Exception as e:  # noqa: BLE001 - sqlite errors on a file that is not a call store
        fail(f"{db}: cannot read the call store: {e}")
    typer.echo(format_report(rep))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(rep, indent=2) + "\n")
        typer.echo(f"written {json_out}")


def register(app: typer.Typer, train: typer.Typer, eval_: typer.Typer) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app.command("serve")(serve_cmd)
    app.command("call")(call_cmd)
    app.command("ab-report")(ab_report_cmd)

