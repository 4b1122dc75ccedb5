"""A real headless Chromium driven over the DevTools protocol, for the browser tests.

Chromium is started with ``--remote-debugging-pipe``: DevTools messages are JSON, ended by
a NUL byte, on file descriptors 3 (to the browser) and 4 (from it), so no WebDriver, no
websocket library and no port are needed. A page load records every uncaught exception
(``Runtime.exceptionThrown``), ``console.error`` call, error log entry (failed resource
loads among them) and every requested URL, so a test can fail on any of them.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# Debian's chromium as root in a container with no network (the flags the project's notes
# found necessary: no sandbox as root, no GPU, no background network traffic).
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageLoad:
    url: str
    errors: list[str] = field(default_factory=list)  # exceptions, console errors, error log entries
    requests: list[str] = field(default_factory=list)  # every URL the page asked for


def _high_fd(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Chromium:
    """One headless browser; ``open(url)`` loads a page in a fresh tab and reports what went wrong."""

    def __init__(self, binary: str, width: int = 1400, height: int = 1000, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="share-search-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The browser's ends move to fds >= 10 so that putting them on 3 and 4 cannot clobber them.
        to_browser_r, from_browser_w = (_high_fd(fd) for fd in (to_browser_r, from_browser_w))
        # bash (dash takes one-digit fds only) puts the pipe ends on fds 3 and 4 for the browser it execs.
        self.process = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}', binary,
             *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe", f"--window-size={width},{height}", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._messages: queue.Queue = queue.Queue()
        self._events: list[dict] = []
        self._next_id = 0
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self._stderr.extend(self.process.stderr), daemon=True).start()
        self.version = self.send("Browser.getVersion")["product"]

    # -- protocol
    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self._messages.put(None)
                return
            buffer += chunk
            while b"\0" in buffer:
                message, buffer = buffer.split(b"\0", 1)
                self._messages.put(json.loads(message))

    def _next(self, deadline: float) -> dict:
        try:
            message = self._messages.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"Chromium sent nothing for {self.timeout:g} s") from None
        if message is None:
            tail = b"".join(self._stderr)[-2000:].decode(errors="replace")
            raise RuntimeError(f"Chromium closed the DevTools pipe (exit code {self.process.poll()}); its stderr ends:\n{tail}")
        return message

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._next(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def _wait_for(self, method: str, session: str) -> None:
        deadline = time.monotonic() + self.timeout
        seen = 0
        while True:
            for event in self._events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return
            seen = len(self._events)
            self._events.append(self._next(deadline))

    # -- pages
    def open(self, url: str, settle_s: float = 0.5) -> "Tab":
        """Load ``url`` in a new tab, wait for its load event, then let scripts settle."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self._wait_for("Page.loadEventFired", session)
        time.sleep(settle_s)
        self.send("Runtime.evaluate", {"expression": "1"}, session=session)  # drains events sent meanwhile
        return Tab(self, target, session, url)

    def open_all(self, urls: list[str], settle_s: float) -> list["Tab"]:
        """``open`` each url in its own tab, then let them settle together: each tab gets at
        least ``settle_s`` after its load event, paid once instead of once per page."""
        tabs = [self.open(url, settle_s=0.0) for url in urls]
        time.sleep(settle_s)
        for tab in tabs:
            tab.evaluate("1")  # drains events sent meanwhile
        return tabs

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()
            self.process.wait(timeout=10)
        finally:
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)


class Tab:
    def __init__(self, browser: Chromium, target: str, session: str, url: str):
        self.browser, self.target, self.session, self.url = browser, target, session, url

    def load(self) -> PageLoad:
        """What the page did so far: errors of every kind and the URLs it requested."""
        out = PageLoad(self.url)
        for event in self.browser._events:
            if event.get("sessionId") != self.session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                d = params["exceptionDetails"]
                text = (d.get("exception") or {}).get("description") or d.get("text", "")
                out.errors.append(f"uncaught exception at {d.get('url', '')}:{d.get('lineNumber')}: {text}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                out.errors.append(f"console.{params['type']}: {args}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                out.errors.append(f"log error ({params['entry'].get('source')}): {params['entry']['text']} {params['entry'].get('url', '')}")
            elif method == "Network.requestWillBeSent":
                out.requests.append(params["request"]["url"])
        return out

    def evaluate(self, expression: str) -> Any:
        result = self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session=self.session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        """The visible part of the page as PNG bytes."""
        return base64.b64decode(self.browser.send("Page.captureScreenshot", {"format": "png"}, session=self.session)["data"])

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})


def require_chromium() -> str:
    """The chromium binary; outside CI a test without one skips with the reason, in CI it fails
    (the browser tests must run there)."""
    import os

    import pytest

    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but no chromium is installed (apt-get install chromium); the browser tests must run in CI")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return binary
