"""Real headless Chromium for tests of pages: charts, HTML reports, exported notebooks.

It drives Debian's ``chromium`` through its ``chromedriver`` with selenium, never downloads a browser or a
driver (selenium-manager is not used), and keeps the page off the network: host names resolve to
nothing, background and component-update traffic is off, and every request the page makes is recorded
from the DevTools performance log so a test can assert that none went out::

    from huntbook.testing.browser import Browser, chromium_available, BOKEH_IDLE

    if not chromium_available():
        pytest.skip(browser_skip_reason())
    with Browser() as browser:
        page = browser.open("chart.html", wait_for=BOKEH_IDLE)
        assert page.errors() == []                 # console errors, uncaught exceptions, CSP violations
        assert page.network_requests() == []       # nothing but file:, data:, blob:
        page.evaluate("return document.title")
        page.screenshot("test-artifacts/chart.png")

One :class:`Browser` (one Chromium process) serves many pages: open it once per test module. Each
:meth:`Browser.open` starts a fresh :class:`Page` record (its logs, errors and requests). Shadow DOM
(Bokeh renders into shadow roots) is searched with :meth:`Page.query_deep`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BOKEH_IDLE",
    "CHROMEDRIVER",
    "CHROMIUM",
    "Browser",
    "BrowserError",
    "Page",
    "browser_skip_reason",
    "chromium_available",
]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: JS condition: every Bokeh document on the page has rendered (its roots reported "idle").
BOKEH_IDLE = (
    "window.Bokeh !== undefined && Bokeh.documents.length > 0 && Bokeh.documents.every(d => d.is_idle)"
)

_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars",
)
# schemes a self-contained page may load without touching the network
_LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "chrome-error:", "devtools:")

# Runs before any script of every page: records uncaught errors, rejected promises and CSP violations.
_PROBE = """
(() => {
  const errors = [];
  Object.defineProperty(window, "__huntbook_probe", {value: errors, enumerable: false});
  const where = (e) => (e.filename ? ` (${e.filename}:${e.lineno}:${e.colno})` : "");
  window.addEventListener("error", (e) => {
    errors.push(`uncaught: ${e.message || (e.error && e.error.message) || e}${where(e)}`);
  }, true);
  window.addEventListener("unhandledrejection", (e) => {
    errors.push(`unhandled rejection: ${e.reason && e.reason.message ? e.reason.message : e.reason}`);
  });
  document.addEventListener("securitypolicyviolation", (e) => {
    errors.push(`csp violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
  });
})();
"""

# Collects the elements matching a selector in the document and in every (open) shadow root.
_DEEP_QUERY = """
const selector = arguments[0];
const found = [];
const visit = (root) => {
  for (const el of root.querySelectorAll(selector)) found.push(el);
  for (const el of root.querySelectorAll("*")) if (el.shadowRoot) visit(el.shadowRoot);
};
visit(document);
return found;
"""


class BrowserError(RuntimeError):
    """Chromium could not be started, or a page did not reach its condition in time."""


def browser_skip_reason() -> str | None:
    """Why browser tests cannot run here (``None`` when they can)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return (
            f"headless Chromium not installed ({', '.join(missing)} missing): "
            "apt-get install chromium chromium-driver (make browser)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install 'huntbook[test]'"
    return None


def chromium_available() -> bool:
    """True when Debian's chromium, chromedriver and selenium are all there."""
    return browser_skip_reason() is None


@dataclass
class Page:
    """One opened page: evaluate JS, wait for conditions, read errors, requests and screenshots."""

    browser: Browser
    url: str
    console: list[dict[str, Any]] = field(default_factory=list)
    _performance: list[dict[str, Any]] = field(default_factory=list)

    @property
    def driver(self) -> Any:
        """The selenium WebDriver (for ActionChains and anything else not wrapped here)."""
        return self.browser.driver

    def evaluate(self, script: str, *args: Any) -> Any:
        """Run JS in the page (a function body: ``return`` what you want back)."""
        return self.driver.execute_script(script, *args)

    def wait_for(self, condition: str, timeout: float = 30.0, poll: float = 0.01) -> float:
        """Wait until the JS expression ``condition`` is truthy; return the page's clock then
        (``performance.now()``, ms since navigation start). :class:`BrowserError` on timeout, with the
        page's errors so far."""
        deadline = time.monotonic() + timeout
        probe = f"return [Boolean({condition}), performance.now()]"
        while True:
            try:
                ok, now = self.evaluate(probe)
            except Exception as exc:  # a condition that throws is not met yet (e.g. Bokeh not loaded)
                ok, now = False, 0.0
                last = str(exc).splitlines()[0]
            else:
                last = ""
            if ok:
                return float(now)
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"{self.url}: {condition!r} not true after {timeout:g}s {last}; errors: {self.errors()}"
                )
            time.sleep(poll)

    def settle(self, frames: int = 3) -> None:
        """Let the page paint ``frames`` more animation frames (layouts that finish after a
        render-done signal, e.g. a table resizing the chart above it)."""
        self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1]; let n = arguments[0];"
            "const step = () => (n-- > 0 ? requestAnimationFrame(step) : done(true)); step();",
            frames,
        )

    def _drain(self) -> None:
        self.console.extend(self.driver.get_log("browser"))
        self._performance.extend(self.driver.get_log("performance"))

    def console_errors(self) -> list[str]:
        """Console messages of level SEVERE (JS errors, failed loads, CSP refusals)."""
        self._drain()
        return [entry["message"] for entry in self.console if entry.get("level") == "SEVERE"]

    def exceptions(self) -> list[str]:
        """Uncaught exceptions, unhandled promise rejections and CSP violations seen by the page."""
        return list(self.evaluate("return window.__huntbook_probe || []"))

    def errors(self) -> list[str]:
        """:meth:`console_errors` and :meth:`exceptions` together: empty for a healthy page."""
        return [*self.console_errors(), *self.exceptions()]

    def network_requests(self) -> list[str]:
        """URLs the page requested that are not local (``file:``, ``data:``, ``blob:`` ...)."""
        self._drain()
        urls = []
        for entry in self._performance:
            message = json.loads(entry["message"])["message"]
            if message.get("method") in ("Network.requestWillBeSent", "Network.webSocketCreated"):
                params = message.get("params", {})
                url = params.get("request", {}).get("url") or params.get("url", "")
                if not url.startswith(_LOCAL_SCHEMES):
                    urls.append(url)
        return urls

    def query_deep(self, selector: str) -> list[Any]:
        """Elements matching a CSS selector, in the document and inside every open shadow root."""
        return list(self.evaluate(_DEEP_QUERY, selector))

    def texts_deep(self, selector: str) -> list[str]:
        """The ``textContent`` of :meth:`query_deep`'s elements."""
        return [str(self.evaluate("return arguments[0].textContent", el)) for el in self.query_deep(selector)]

    def move_mouse(self, x: float, y: float) -> None:
        """Move the mouse to viewport coordinates (CSS pixels), as a user would (hover)."""
        from selenium.webdriver.common.actions.action_builder import ActionBuilder

        actions = ActionBuilder(self.driver)
        pointer: Any = actions.pointer_action
        pointer.move_to_location(round(x), round(y))
        actions.perform()

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
        """Press the mouse at ``start``, move to ``end`` in ``steps`` and release (viewport pixels)."""
        from selenium.webdriver.common.actions.action_builder import ActionBuilder

        actions = ActionBuilder(self.driver)
        pointer: Any = actions.pointer_action
        pointer.move_to_location(round(start[0]), round(start[1]))
        pointer.pointer_down()
        for i in range(1, steps + 1):
            x = start[0] + (end[0] - start[0]) * i / steps
            y = start[1] + (end[1] - start[1]) * i / steps
            pointer.move_to_location(round(x), round(y))
        pointer.pointer_up()
        actions.perform()

    def screenshot(self, path: str | os.PathLike[str], *, full_page: bool = True) -> Path:
        """Save a PNG of the page (the whole page, or the viewport) and return its path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.evaluate(
                "const e = document.documentElement;"
                "return [Math.max(e.scrollWidth, e.clientWidth), Math.max(e.scrollHeight, e.clientHeight)]"
            )
            params.update(
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
            )
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", params)
        target.write_bytes(base64.b64decode(shot["data"]))
        return target


class Browser:
    """A headless Chromium session (a context manager). ``width``/``height``: the window in CSS pixels."""

    def __init__(
        self,
        *,
        width: int = 1280,
        height: int = 900,
        chromium: str = CHROMIUM,
        chromedriver: str = CHROMEDRIVER,
        extra_flags: Sequence[str] = (),
    ) -> None:
        reason = browser_skip_reason() if (chromium, chromedriver) == (CHROMIUM, CHROMEDRIVER) else None
        if reason:
            raise BrowserError(reason)
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        self._profile = tempfile.mkdtemp(prefix="huntbook-chromium-")
        options = Options()
        options.binary_location = chromium
        for flag in (*_FLAGS, f"--window-size={width},{height}", f"--user-data-dir={self._profile}"):
            options.add_argument(flag)
        for flag in extra_flags:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        try:
            self.driver: Any = webdriver.Chrome(
                service=Service(executable_path=chromedriver), options=options
            )
        except Exception as exc:
            shutil.rmtree(self._profile, ignore_errors=True)
            raise BrowserError(f"could not start {chromium} through {chromedriver}: {exc}") from exc
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _PROBE})

    def open(
        self, target: str | os.PathLike[str], *, wait_for: str | None = None, timeout: float = 30.0
    ) -> Page:
        """Navigate to a local file (a path) or a URL, wait for ``wait_for`` (a JS expression) when given,
        and return the :class:`Page`. Logs of earlier pages are not carried over."""
        url = str(target)
        if "://" not in url and not url.startswith(("data:", "about:")):
            url = Path(target).resolve().as_uri()
        self.driver.get_log("browser")  # flush what belongs to the previous page
        self.driver.get_log("performance")
        self.driver.set_page_load_timeout(timeout)
        self.driver.get(url)
        page = Page(self, url)
        if wait_for:
            page.wait_for(wait_for, timeout=timeout)
        return page

    def close(self) -> None:
        """Quit Chromium and remove its temporary profile."""
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
