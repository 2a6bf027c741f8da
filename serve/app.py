"""Building a server from options: models, arms, split, store. Used by ``mads serve``, tests and bench."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from mads_audio.asr import WhisperASR
from mads_text.llm import make_backend
from mads_text.scenario import load_scenario

from .ab import parse_split
from .arms.base import Arm, ArmUnavailable
from .call import CallConfig
from .listen import Endpointing
from .server import ServerConfig, VoiceServer
from .store import CallStore
from .tts import TTS, agent_voice

log = logging.getLogger("mads.serve")


@dataclass
class ServeOptions:
    scenario: str = "insurance"
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    db: Path = Path("calls.sqlite")
    split: str | None = None
    experiment: str = "default"
    backend: str = "embedded"
    model: str | None = None
    base_url: str | None = None
    prompt_mode: str = "auto"
    prompt_k: str | None = None  # Dialog Agent instruction or evolved SOP for both arms; the scenario's when None
    max_tokens: int = 60
    temperature: float = 0.7  # decoding of both arms
    top_p: float = 1.0
    allow_mismatch: bool = False  # run both arms although they differ in backbone, prompt or decoding
    use_caller_name: bool = False
    llm_threads: int = 2  # measured on 2 cores: 2 threads answer sooner than 1, most at 2 calls (docs/serve.md)
    speculative: str | None = None  # llama.cpp n-gram speculative decoding (embedded backend)
    stream: bool = True  # stream the reply and voice its first clause at once
    listen_while_speaking: bool = True  # transcribe during the caller's speech and end turns by their words
    complete_silence_ms: int = 250
    incomplete_silence_ms: int = 800
    asr: str = "base"
    asr_threads: int = 1
    tts: str = "flite"
    audio_model: str | None = None
    recordings: Path | None = None
    no_recordings: bool = False
    allow_origins: list[str] = field(default_factory=list)
    allow_arm_request: bool = True
    max_calls: int = 4
    max_unauthenticated: int = 4
    unauthenticated_timeout_s: float = 3.0
    max_message_bytes: int = 64 * 1024
    idle_timeout_s: float = 20.0
    max_call_s: float = 600.0
    max_turns: int = 8
    realtime_factor: float = 1.0
    barge_in: bool = True
    outcome: str = "auto"


def recordings_dir(db: Path) -> Path:
    return db.parent / f"{db.stem}.recordings"


def build_server(o: ServeOptions) -> VoiceServer:
    from .arms.audio import AudioArm
    from .arms.ear import EarArm, default_audio_model, is_ctc_checkpoint
    from .arms.pipeline import PipelineArm

    scenario = load_scenario(o.scenario)
    tts = TTS(o.tts, threads=1)
    voice = agent_voice(scenario.name, scenario.agent.voice, o.tts)
    asr = WhisperASR.shared(o.asr, threads=o.asr_threads)
    extra = {"threads": o.llm_threads, "speculative": o.speculative} if o.backend == "embedded" else {}
    backend = make_backend(o.backend, o.model, base_url=o.base_url, parallel=max(1, min(o.max_calls, 4)), **extra)
    mode = o.prompt_mode
    if mode == "auto":
        mode = "transcript" if o.backend in ("embedded", "transformers") else "chat"
    # one prompt source and one decoding configuration for both arms: they are to differ only in the ear
    same = {"prompt_k": o.prompt_k, "max_tokens": o.max_tokens, "temperature": o.temperature, "top_p": o.top_p}
    arms: dict[str, Arm] = {
        "pipeline": PipelineArm(scenario, backend, asr, tts, voice, prompt_mode=mode, use_caller_name=o.use_caller_name,
                                 stream=o.stream, max_calls=o.max_calls, **same)  # fmt: skip
    }
    unavailable: dict[str, str] = {}
    # no --audio-model: the checkpoint shipped for the default backbone; "none": no audio arm
    audio_model = None if (o.audio_model or "").lower() == "none" else (o.audio_model or default_audio_model())
    try:
        if audio_model and is_ctc_checkpoint(audio_model):  # the ear, then the pipeline's own LLM on llama.cpp
            arms["audio"] = EarArm(arms["pipeline"], audio_model)
        else:
            arms["audio"] = AudioArm(scenario, audio_model, tts, voice, asr, **same)
    except ArmUnavailable as e:
        unavailable["audio"] = str(e)
    if o.split:
        split = parse_split(o.split)
        if split.get("audio", 0) > 0 and "audio" not in arms:
            raise ArmUnavailable(f"--split {o.split} sends calls to the audio arm, which cannot run: {unavailable['audio']}")
    else:
        split = parse_split("audio=0.5") if "audio" in arms else parse_split(None)
    cfg = ServerConfig(
        host=o.host,
        port=o.port,
        token=o.token,
        split=split,
        experiment=o.experiment,
        allow_origins=list(o.allow_origins),
        allow_arm_request=o.allow_arm_request,
        allow_mismatch=o.allow_mismatch,
        max_calls=o.max_calls,
        max_unauthenticated=o.max_unauthenticated,
        unauthenticated_timeout_s=o.unauthenticated_timeout_s,
        max_message_bytes=o.max_message_bytes,
        recordings=None if o.no_recordings else (o.recordings or recordings_dir(o.db)),
        call=CallConfig(
            realtime_factor=o.realtime_factor,
            idle_timeout_s=o.idle_timeout_s,
            max_call_s=o.max_call_s,
            max_agent_turns=o.max_turns,
            barge_in=o.barge_in,
            listen_while_speaking=o.listen_while_speaking,
            endpointing=Endpointing(complete_ms=o.complete_silence_ms, incomplete_ms=o.incomplete_silence_ms),
        ),
    )
    from .outcome import OutcomeDetector

    detector = OutcomeDetector(o.outcome)
    log.info("outcome detection: %s", detector.note)
    return VoiceServer(cfg, scenario, arms, CallStore(o.db), unavailable=unavailable, outcome=detector)
