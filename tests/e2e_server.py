"""Start and stop `streamlit run dashboard/app.py` for the browser tests (and by hand when debugging),
and the page actions the browser tests and `benchmarks/ui_latency.py` share (a stroke, a layer pick).

The server runs in its own process group on a free loopback port, its output goes to a log file, and
`stop()` ends the whole group (Streamlit, and anything it started), so no server outlives a test.

    python -m tests.e2e_server        # starts one, prints its address, Ctrl-C stops it
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"  # Debian's (tests/install_browser.sh); Playwright's own browsers are never installed
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SLOW_MS = 240_000  # one wait: first run (TensorFlow import, model load) or a full comparison with XRAI
CANVAS = "canvas.upper-canvas"  # the drawing surface of streamlit-drawable-canvas (Fabric.js's upper canvas)


@contextmanager
def running_app(root: Path = ROOT) -> Iterator[StreamlitServer]:
    """A started app for a module's browser tests (`with running_app() as server: yield server`)."""
    app = StreamlitServer(root=root, startup_timeout=180)
    app.start()
    try:
        yield app
    finally:
        app.stop()


@contextmanager
def browser_tab(url: str, viewport: tuple[int, int] = (1280, 800), timeout_ms: int = SLOW_MS) -> Iterator:
    """A headless Chromium tab at `viewport` opened on `url`; the browser is closed afterwards."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run `sh tests/install_browser.sh`"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            tab = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}).new_page()
            tab.set_default_timeout(timeout_ms)
            tab.goto(url, wait_until="domcontentloaded")
            yield tab
        finally:
            browser.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StreamlitServer:
    """One `streamlit run dashboard/app.py` subprocess; use as a context manager or call start/stop."""

    def __init__(self, root: Path = ROOT, port: int | None = None, startup_timeout: float = 180.0) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.gettempdir()) / f"segexplain-e2e-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "streamlit", "run", "dashboard/app.py",
            "--server.headless", "true",
            "--server.port", str(self.port),
            "--server.address", "127.0.0.1",
            "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
        ]

    def start(self) -> StreamlitServer:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self._log = log
        self.process = subprocess.Popen(
            self.command(), cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,  # own process group: stop() kills all of it
        )
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        health = f"{self.url}/_stcore/health"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(health, timeout=2) as response:
                    if response.status == 200 and response.read().strip() == b"ok":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{health} did not answer within {self.startup_timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        log = getattr(self, "_log", None)
        if log is not None and not log.closed:
            log.close()

    def __enter__(self) -> StreamlitServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def draw_stroke(page, x_frac: float, y_frac: float, steps: int, dx: float, dy: float = 0.0) -> None:
    """A stroke on the drawing canvas from (x_frac, y_frac), `steps` moves of (dx, dy) (fractions of its size).

    Returns right after mouse-up, the action whose effect the tests wait for and the benchmark times."""
    begin_stroke(page, x_frac, y_frac, steps, dx, dy)
    page.mouse.up()


def begin_stroke(page, x_frac: float, y_frac: float, steps: int, dx: float, dy: float = 0.0) -> None:
    """Everything of `draw_stroke` but the mouse-up, so that tests can release several tabs at one moment."""
    canvas = page.locator(CANVAS).first
    canvas.wait_for(state="visible")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None and box["width"] >= 300, box
    x0, y0 = box["x"] + x_frac * box["width"], box["y"] + y_frac * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    for step in range(1, steps + 1):
        page.mouse.move(x0 + step * dx * box["width"], y0 + step * dy * box["height"])


def choose_layer(page, layer: str) -> None:
    """Pick `layer` in the page's layer selector (found by its label, not the stage selector above it)."""
    choose(page, "Layer", layer)


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label` (a hidden label counts)."""
    label_element = page.locator("[data-testid=stWidgetLabel]", has_text=re.compile(rf"^{re.escape(label)}$"))
    select = page.locator("[data-testid=stSelectbox]").filter(has=label_element).first
    select.scroll_into_view_if_needed()
    select.click()
    page.keyboard.type(option)  # the list is virtualised: filter it so the option is rendered
    choice = page.get_by_role("option", name=re.compile(rf"^{re.escape(option)}\b")).first
    choice.wait_for()
    choice.click()


def click_canvas(page, points: list[tuple[float, float]], double: bool = False) -> None:
    """Clicks on the drawing canvas at (x, y) fractions of its size; the last one a double-click if asked."""
    canvas = page.locator(CANVAS).first
    box = canvas.bounding_box()
    assert box is not None, "no drawing canvas on the page"
    for i, (x, y) in enumerate(points):
        position = (box["x"] + x * box["width"], box["y"] + y * box["height"])
        if double and i == len(points) - 1:
            page.mouse.dblclick(*position)
        else:
            page.mouse.click(*position)


if __name__ == "__main__":
    # Ctrl-C or `kill <pid>` end the server too (a background job would otherwise ignore SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = StreamlitServer(root=Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
    with server:
        print(f"{server.url}  (log: {server.log_path}); Ctrl-C to stop", flush=True)
        try:
            while server.process is not None and server.process.poll() is None:
                time.sleep(1)
        except (KeyboardInterrupt, SystemExit):
            pass
