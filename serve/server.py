"""The websocket server around the protocol cores and calls.

One process serves: the native call endpoint ``/v1/call``, the Twilio Media
Streams endpoint ``/v1/twilio``, the web page (``/``, ``/app.js``,
``/dashboard.js``, ``/worklet.js``), ``/healthz``, and behind the token the A/B
report ``/v1/report``, the dashboard's data ``/v1/dashboard`` and call
recordings ``/v1/calls/<id>/recording``.

Checks before the upgrade (``process_request``): the path, the Origin
allow-list (403; an explicit list, never derived from the request's own Host
header, which the page that sends it controls), and the bearer token when an
Authorization header is sent (401 when wrong). Browsers and Twilio cannot set
that header on a websocket, so a connection without it must put the token in
its first message; until it has, it holds no call slot and counts against a
small limit of its own with a short deadline, so sockets that never
authenticate cannot keep callers out. A call slot (``max_calls``, close 1013
when full) is taken only by an authenticated ``start``. Every protocol error
is answered with an error event and a policy close (1008) that touches no
other call. Oversized messages are refused by the websockets library itself
with close code 1009 before they are read.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import importlib.resources
import json
import logging
import re
import secrets
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from mads_audio.vad import SileroVAD
from mads_text.common.records import Turn
from mads_text.scenario import Scenario

from .ab import assign
from .arms.base import Arm, CallContext
from .arms.parity import ArmMismatch, differences
from .call import Call, CallConfig
from .dashboard import dashboard, recording_path
from .frames import ErrorFrame, Frame, StartFrame
from .outcome import OutcomeDetector
from .protocol import NativeProtocol, ProtocolError, TwilioProtocol
from .protocol.core import POLICY_VIOLATION, TRY_AGAIN_LATER, shown
from .recording import StereoRecorder
from .report import ab_report
from .store import CallStore

log = logging.getLogger("mads.serve")

NATIVE_PATH = "/v1/call"
TWILIO_PATH = "/v1/twilio"
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
          "/worklet.js": ("worklet.js", "text/javascript; charset=utf-8")}  # fmt: skip
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
PAGE_CSP = "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'"


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None  # None only with an explicit no-auth choice
    split: dict[str, float] = field(default_factory=lambda: {"pipeline": 1.0})
    experiment: str = "default"
    allow_origins: list[str] = field(default_factory=list)
    allow_arm_request: bool = True
    allow_mismatch: bool = False  # serve both arms although they differ in backbone, prompt or decoding
    max_calls: int = 4
    max_message_bytes: int = 64 * 1024
    start_timeout_s: float = 10.0  # connections that authenticated with the Authorization header
    max_unauthenticated: int = 4  # connections still owing their token in the first message
    unauthenticated_timeout_s: float = 3.0
    recordings: Path | None = None
    call: CallConfig = field(default_factory=CallConfig)


def _response(status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> Response:
    st = http.HTTPStatus(status)
    headers = Headers(
        [
            ("Date", formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    for k, v in (extra or {}).items():
        headers[k] = v
    return Response(st.value, st.phrase, headers, body)


def _text(status: int, text: str) -> Response:
    return _response(status, (text + "\n").encode(), "text/plain; charset=utf-8")


def _json(status: int, obj: Any) -> Response:
    return _response(status, json.dumps(obj, indent=1, default=str).encode(), "application/json")


class VoiceServer:
    def __init__(
        self,
        config: ServerConfig,
        scenario: Scenario,
        arms: dict[str, Arm],
        store: CallStore,
        *,
        unavailable: dict[str, str] | None = None,
        vad: SileroVAD | None = None,
        outcome: OutcomeDetector | None = None,
    ):
        self.cfg = config
        self.outcome = outcome or OutcomeDetector("rules")
        self.scenario = scenario
        self.arms = arms
        self.unavailable = dict(unavailable or {})
        self.store = store
        self.vad = vad or SileroVAD.shared()
        missing = [a for a, s in config.split.items() if s > 0 and a not in arms]
        if missing:
            reasons = "; ".join(f"{a}: {self.unavailable.get(a, 'not configured')}" for a in missing)
            raise ValueError(f"the split sends calls to arms that cannot run ({reasons})")
        if "pipeline" in arms and "audio" in arms:
            self._check_parity()
        self._origins = {o.rstrip("/").lower() for o in config.allow_origins}
        self.active = 0  # calls in progress: authenticated starts
        self.unauthenticated = 0  # connections that still owe their token
        self.calls: dict[str, Call] = {}
        self._server = None
        self.port = config.port
        recovered = store.recover(self.outcome.detect)
        if recovered:
            log.warning("closed %d call(s) a previous server left active (end_reason server_lost)", recovered)

    def _check_parity(self) -> None:
        """An A/B is to compare the ears: refuse arms that also differ in backbone, prompt or decoding, unless allowed
        (the report then says how they differ, from the descriptions stored with the calls)."""
        diffs = differences(self.arms["pipeline"].describe(), self.arms["audio"].describe())
        if not diffs:
            return
        listed = "\n  ".join(diffs)
        if not self.cfg.allow_mismatch:
            raise ArmMismatch(
                f"the two arms differ in more than the ear:\n  {listed}\n"
                "give both the same LLM (--model, the checkpoint's LLM), prompt (--prompt-mode chat, no "
                "--caller-name-in-prompt) and decoding (--temperature 0 leaves out the samplers' differences), "
                "or pass --allow-mismatch to run the A/B anyway; its report then states these differences"
            )
        log.warning("A/B with arms that differ (--allow-mismatch):\n  %s", listed)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        # every call keeps several blocking jobs in worker threads (ASR segments queued on the model's lock, an
        # LLM stream, TTS, outcome rules): the default pool of cores + 4 threads would make calls wait on each other
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(8 + 4 * self.cfg.max_calls, "mads-serve"))
        for arm in self.arms.values():
            await arm.load()
        # a labeler loads its model on first use: not in the middle of the first call
        await asyncio.to_thread(self.outcome.detect, [Turn(role="user", text="Hello, who is this?")])
        self._server = await serve(
            self._handle,
            self.cfg.host,
            self.cfg.port,
            process_request=self._process_request,
            max_size=self.cfg.max_message_bytes,
            max_queue=64,
            server_header="mads-serve",
        )
        socks = self._server.sockets
        if socks:
            self.port = socks[0].getsockname()[1]

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        for call in list(self.calls.values()):
            await call.finish("server_shutdown", "server", close_code=1001)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- HTTP side ---------------------------------------------------------------------

    def _bearer(self, request: Request) -> str | None:
        auth = request.headers.get("Authorization")
        if auth is None:
            return None
        scheme, _, tok = auth.partition(" ")
        return tok.strip() if scheme.lower() == "bearer" else ""

    def _token_ok(self, tok: str | None) -> bool:
        if self.cfg.token is None:
            return True
        return tok is not None and hmac.compare_digest(tok.encode(), self.cfg.token.encode())

    def _origin_ok(self, request: Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser: phones, Twilio, scripts
        if "*" in self._origins or origin.rstrip("/").lower() in self._origins:
            return True
        return self._is_local_page(origin)

    def _is_local_page(self, origin: str) -> bool:
        """The web page served by this process on a loopback address: the one origin allowed by default."""
        try:
            u = urllib.parse.urlsplit(origin)
            port = u.port or {"http": 80, "https": 443}.get(u.scheme)
        except ValueError:
            return False
        return u.scheme in ("http", "https") and u.hostname in LOOPBACK_HOSTS and port == self.port

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urllib.parse.urlsplit(request.path).path
        if path in STATIC and "upgrade" not in request.headers.get("Connection", "").lower():
            name, ctype = STATIC[path]
            body = (importlib.resources.files("serve") / "web" / name).read_bytes()
            return _response(200, body, ctype, {"Content-Security-Policy": PAGE_CSP})
        if path == "/healthz":
            return _json(200, {"ok": True, "active_calls": self.active, "max_calls": self.cfg.max_calls,
                               "unauthenticated": self.unauthenticated,
                               "arms": sorted(self.arms), "split": self.cfg.split, "outcome": self.outcome.note})  # fmt: skip
        if path.startswith(("/v1/report", "/v1/dashboard", "/v1/calls/")):
            if not self._token_ok(self._bearer(request)):
                return _text(401, "unauthorized: send Authorization: Bearer <token>")
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
            # calls whose arm the caller chose are left out of the A/B unless asked for, as in `mads ab-report`
            include_requested = query.get("include_requested", ["0"])[-1].lower() in ("1", "true", "yes")
            return await self._operator_view(path, include_requested)
        if path not in (NATIVE_PATH, TWILIO_PATH):
            return _text(404, f"not found: {path}")
        if not self._origin_ok(request):
            return _text(403, f"origin not allowed: {request.headers.get('Origin')}")
        tok = self._bearer(request)
        if tok is not None and not self._token_ok(tok):
            return _text(401, "unauthorized: wrong bearer token")
        # the handler reads this: without a header the token must come in the first message
        connection.mads_authed = tok is not None or self.cfg.token is None  # type: ignore[attr-defined]
        return None

    async def _operator_view(self, path: str, include_requested: bool = False) -> Response:
        """The report, the dashboard and call recordings: operators only (the token is checked already)."""
        if path == "/v1/report":
            return _json(200, await asyncio.to_thread(ab_report, self.store, include_requested=include_requested))
        if path == "/v1/dashboard":
            return _json(200, await asyncio.to_thread(dashboard, self.store, include_requested=include_requested))
        m = re.fullmatch(r"/v1/calls/([\w.-]{1,64})/recording", path)
        rec = await asyncio.to_thread(recording_path, self.store, m.group(1)) if m else None
        if rec is None:
            return _text(404, f"no recording at {path}")
        return _response(200, await asyncio.to_thread(rec.read_bytes), "audio/wav")

    # --- websocket side ------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        authed = bool(getattr(conn, "mads_authed", False))
        path = urllib.parse.urlsplit(conn.request.path).path if conn.request else NATIVE_PATH
        kind = "twilio" if path == TWILIO_PATH else "native"
        expected = None if authed else self.cfg.token
        proto = TwilioProtocol(expected) if kind == "twilio" else NativeProtocol(expected)
        try:
            start = await self._authenticated_start(conn, proto, authed)
            if start is None:
                return
            if self.active >= self.cfg.max_calls:
                await self._reject(conn, proto, ProtocolError(
                    "server_full", f"{self.active} calls in progress; try again later", TRY_AGAIN_LATER))
                return
            self.active += 1
            try:
                await self._session(conn, proto, kind, start)
            finally:
                self.active -= 1
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("connection handler failed")
            try:
                await conn.close(1011, "internal error")
            except Exception:  # noqa: BLE001, S110
                pass

    async def _authenticated_start(self, conn: ServerConnection, proto, authed: bool) -> StartFrame | None:
        """The connection's valid start message, or None once it has been refused and closed."""
        if not authed and self.unauthenticated >= self.cfg.max_unauthenticated:
            await self._reject(conn, proto, ProtocolError(
                "too_many_unauthenticated", "too many connections are waiting to authenticate; try again later",
                TRY_AGAIN_LATER))  # fmt: skip
            return None
        timeout = self.cfg.start_timeout_s if authed else self.cfg.unauthenticated_timeout_s
        if not authed:
            self.unauthenticated += 1
        try:
            return await self._await_start(conn, proto, timeout)
        except ProtocolError as e:
            await self._reject(conn, proto, e)
            return None
        finally:
            if not authed:
                self.unauthenticated -= 1

    @staticmethod
    async def _send_frames(conn: ServerConnection, proto, frames: list[Frame]) -> None:
        for f in frames:
            for m in proto.send(f):
                try:
                    await conn.send(m)
                except ConnectionClosed:
                    return

    async def _reject(self, conn: ServerConnection, proto, err: ProtocolError) -> None:
        # Twilio has no error message: there the close code and reason carry it
        await self._send_frames(conn, proto, [ErrorFrame(err.code, err.message, err.close_code)])
        await conn.close(err.close_code, f"{err.code}: {err.message}"[:120])

    async def _await_start(self, conn: ServerConnection, proto, timeout_s: float) -> StartFrame:
        deadline = time.monotonic() + timeout_s
        late = ProtocolError("start_timeout", f"no start message within {timeout_s:g} s")
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise late
            try:
                msg = await asyncio.wait_for(conn.recv(), timeout=left)
            except TimeoutError:
                raise late from None
            for f in proto.receive(msg):
                if isinstance(f, StartFrame):
                    return f

    def _choose_arm(self, start: StartFrame, call_id: str) -> tuple[str, str]:
        if start.arm:
            if not self.cfg.allow_arm_request:
                raise ProtocolError("arm_request_refused", "this server assigns arms itself; leave out 'arm'")
            if start.arm not in ("pipeline", "audio"):
                raise ProtocolError("unknown_arm", f"unknown arm '{shown(start.arm)}'; arms are pipeline and audio")
            if start.arm not in self.arms:
                why = self.unavailable.get(start.arm, "not configured on this server")
                raise ProtocolError("arm_unavailable", f"arm '{start.arm}' is unavailable: {why}")
            return start.arm, "requested"
        key = str(start.caller.get("id") or start.caller.get("from") or call_id)
        return assign(self.cfg.split, self.cfg.experiment, key), "split"

    async def _session(self, conn: ServerConnection, proto, kind: str, start: StartFrame) -> None:
        try:
            if start.scenario and start.scenario != self.scenario.name:
                raise ProtocolError("bad_scenario", f"this server runs scenario '{self.scenario.name}', not '{shown(start.scenario)}'")
            call_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(4)
            arm_name, assignment = self._choose_arm(start, call_id)
        except ProtocolError as e:
            await self._reject(conn, proto, e)
            return
        send_lock = asyncio.Lock()

        async def send(frame: Frame) -> None:
            msgs = proto.send(frame)
            if msgs:
                async with send_lock:
                    for m in msgs:
                        await conn.send(m)

        rec_path = None
        recorder = None
        if self.cfg.recordings is not None:
            rec_path = self.cfg.recordings / f"{call_id}.wav"
            recorder = StereoRecorder(rec_path)
        caller = dict(start.caller)
        if start.stream_id:
            caller.setdefault("stream_sid", start.stream_id)
        self.store.create_call(
            call_id, arm=arm_name, assignment=assignment, protocol=kind, scenario=self.scenario.name, caller=caller,
            recording=str(rec_path) if rec_path else None, server={"arm": self.arms[arm_name].describe()},
        )  # fmt: skip
        ctx = CallContext(call_id=call_id, scenario=self.scenario, caller=caller, arm=arm_name)
        call = Call(ctx, self.arms[arm_name], self.store, send, config=self.cfg.call, recorder=recorder, vad=self.vad,
                    outcome=self.outcome)
        self.calls[call_id] = call
        log.info("call %s: %s arm (%s), %s protocol", call_id, arm_name, assignment, kind)
        try:
            await call.start()
            reader = asyncio.create_task(self._read(conn, proto, call), name=f"reader-{call_id}")
            await call.done.wait()
            reader.cancel()
            try:
                await reader
            except (asyncio.CancelledError, Exception):  # noqa: BLE001, S110
                pass
            end = call.end_frame
            await conn.close(end.close_code if end else 1000, (end.reason if end else "ended")[:120])
        finally:
            if not call.done.is_set():
                await call.finish("internal_error", "server", close_code=1011)
            self.calls.pop(call_id, None)

    async def _read(self, conn: ServerConnection, proto, call: Call) -> None:
        try:
            async for msg in conn:
                try:
                    frames = proto.receive(msg)
                except ProtocolError as e:
                    await call.fail(e.code, e.message, e.close_code)
                    return
                for f in frames:
                    await call.on_frame(f)
                if call.done.is_set():
                    return
            await call.finish("caller_closed", "caller")
        except ConnectionClosed as e:
            reason = "caller_gone"
            if e.sent is not None and e.sent.code == 1009:
                reason = "message_too_big"
            await call.finish(reason, "caller", close_code=e.sent.code if e.sent else 1000)
        except Exception as e:
            log.exception("call %s: reader failed", call.ctx.call_id)
            await call.finish(f"internal_error:{type(e).__name__}", "server", close_code=1011)


__all__ = ["NATIVE_PATH", "POLICY_VIOLATION", "TWILIO_PATH", "ServerConfig", "VoiceServer"]
