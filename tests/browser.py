"""A real browser for the dashboard's tests: Debian's chromium, headless,
driven by Playwright for Python (its wheel carries the driver; no browser is
ever downloaded: `playwright install` is never run).

Outside CI the browser tests are skipped when chromium (or playwright) is
missing; in CI (CI=true) that is a failure, never a silent skip. Screenshots
go to $ROTA_SCREENSHOTS when set (CI keeps them as artifacts), else to a
temporary directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

CHROMIUM = os.environ.get("ROTA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Quiet, private and offline: no first-run, sync, update or QUIC traffic.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_browser() -> None:
    """Skips (or, in CI, fails) the calling test module without a browser."""
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "playwright is not installed (pip install -e '.[test]')"
    if missing is None and not os.access(CHROMIUM, os.X_OK):
        missing = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"browser tests cannot run in CI: {missing}", pytrace=False)
        pytest.skip(missing, allow_module_level=True)


def screenshot_dir() -> Path:
    wanted = os.environ.get("ROTA_SCREENSHOTS")
    path = Path(wanted) if wanted else Path(tempfile.gettempdir()) / "rota-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Browser:
    """One chromium for a test module, a fresh context (its own
    sessionStorage, a fresh profile) per page."""

    def __init__(self):
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self._profile = tempfile.mkdtemp(prefix="rota-chromium-")
        # A persistent context would tie every page to one profile; a
        # launched browser gives each context its own, in a fresh directory.
        self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True,
                                                env={**os.environ, "HOME": self._profile})
        self.shots = screenshot_dir()

    def page(self, base_url: str, token: Optional[str] = None) -> "Page":
        context = self.browser.new_context(base_url=base_url, viewport={"width": 1400, "height": 900})
        if token:
            # as if the operator had pasted it: the tab's sessionStorage
            context.add_init_script(f"sessionStorage.setItem('rota.token', {token!r});")
        return Page(context, self.shots)

    def close(self) -> None:
        self.browser.close()
        self._pw.stop()
        shutil.rmtree(self._profile, ignore_errors=True)


class Page:
    """A page and what it did: every request, native dialog and console line,
    and its script errors (an uncaught exception, or an error the page's
    scripts logged; not a 4xx the browser reports for a fetch)."""

    def __init__(self, context, shots: Path):
        self.context = context
        self.page = context.new_page()
        self.shots = shots
        self.requests: list = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.console: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._console)

    def _console(self, msg) -> None:
        self.console.append(f"{msg.type}: {msg.text}")
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.errors.append(msg.text)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def goto(self, path: str) -> None:
        self.page.goto(path)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def paths(self, since: int = 0) -> list[str]:
        """The paths (with query) of the requests made, from index `since`."""
        from urllib.parse import urlsplit

        out = []
        for r in self.requests[since:]:
            parts = urlsplit(r.url)
            out.append(f"{r.method} {parts.path}" + (f"?{parts.query}" if parts.query else ""))
        return out

    def close(self) -> None:
        self.context.close()


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30.0) -> object:
    """Polls `condition` until truthy; past `timeout` fails naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
