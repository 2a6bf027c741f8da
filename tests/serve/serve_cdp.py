"""Headless Chromium driven over the DevTools protocol (plain websockets, no selenium)."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

from websockets.asyncio.client import connect

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-port=0",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class Browser:
    def __init__(self, binary: str, fake_audio: Path):
        self.binary = binary
        self.fake_audio = fake_audio
        self.profile = Path(tempfile.mkdtemp(prefix="mads-chromium-"))
        self.proc: subprocess.Popen | None = None
        self.ws = None
        self.session: str | None = None
        self._ids = itertools.count(1)
        self.console: list[str] = []

    async def __aenter__(self) -> Self:
        args = [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                f"--use-file-for-fake-audio-capture={self.fake_audio}", "about:blank"]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
        port_file = self.profile / "DevToolsActivePort"
        t_end = time.monotonic() + 60
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            if time.monotonic() > t_end:
                raise TimeoutError("chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = await connect(f"ws://127.0.0.1:{port}{path}", max_size=2**24)
        target = await self.cmd("Target.createTarget", {"url": "about:blank"}, browser=True)
        att = await self.cmd("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, browser=True)
        self.session = att["sessionId"]
        await self.cmd("Runtime.enable")
        return self

    async def cmd(self, method: str, params: dict[str, Any] | None = None, browser: bool = False) -> dict[str, Any]:
        i = next(self._ids)
        msg: dict[str, Any] = {"id": i, "method": method, "params": params or {}}
        if not browser:
            msg["sessionId"] = self.session
        await self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.recv(), 60))
            if reply.get("method") == "Runtime.consoleAPICalled":
                args = reply["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            if reply.get("id") == i:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    async def navigate(self, url: str) -> None:
        await self.cmd("Page.navigate", {"url": url})

    async def eval(self, expression: str) -> Any:
        r = await self.cmd("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"page error: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    async def screenshot(self, path: Path, width: int = 1280) -> None:
        """The whole page, ``width`` CSS pixels wide, as a PNG."""
        import base64

        metrics = {"width": width, "height": 600, "deviceScaleFactor": 1, "mobile": False}
        await self.cmd("Emulation.setDeviceMetricsOverride", metrics)
        await asyncio.sleep(0.3)  # let the page lay out (and redraw its plots) at the new width
        height = int(await self.eval("Math.ceil(document.documentElement.scrollHeight)"))
        await self.cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})
        await asyncio.sleep(0.2)
        shot = await self.cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                         "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        Path(path).write_bytes(base64.b64decode(shot["data"]))

    async def __aexit__(self, *exc) -> None:
        if self.ws is not None:
            try:
                await self.cmd("Browser.close", browser=True)
            except Exception:  # noqa: BLE001, S110
                pass
            await self.ws.close()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


if __name__ == "__main__":
    # python tests/serve/serve_cdp.py URL OUT.png [JS condition to wait for]: a screenshot of a page, e.g. the dashboard
    import sys

    async def _main(url: str, out: str, ready: str) -> None:
        async with Browser(find_chromium(), Path("/dev/null")) as b:
            await b.navigate(url)
            t_end = time.monotonic() + 60
            while not await b.eval(f"Boolean({ready})"):
                if time.monotonic() > t_end:
                    raise TimeoutError(f"page not ready: {ready}")
                await asyncio.sleep(0.2)
            await b.eval("window.scrollTo(0, 0)")
            await b.screenshot(Path(out))

    asyncio.run(_main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "document.readyState === 'complete'"))

