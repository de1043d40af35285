"""The report in a real headless Chromium: no console errors, every chart drawn, a screenshot.

Chromium is the Debian package (``/usr/bin/chromium``); the session fixture installs it
with apt-get when it is missing (root only; the first install takes about a minute) and
skips with the reason when that is impossible. Playwright drives it over CDP; no browser
is downloaded. The report is served by a local ``http.server`` on 127.0.0.1 and every
request the page makes is checked to stay on that server (the page needs no network).

``FORECASTER_SAVE_SCREENSHOT=docs/report.png pytest tests/integration/test_report_browser.py``
also writes the full-page screenshot there (relative to the repository root); with
``FORECASTER_SCREENSHOT_STORE=PATH`` as well, the screenshot is of that store's report
(docs/report.png: ``forecaster demo`` then ``forecaster scenario compare
examples/scenarios/*.yaml --save``), checked the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from features.store import Store
from forecaster.report import collect_report_inputs, render_report
from tests.forecaster.test_report import copy_store, full_demo_store, small_demo_store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every chart container holds a drawn Plotly SVG with at least one trace.
_ALL_DRAWN = """() => {
  const charts = [...document.querySelectorAll('div.chart')];
  return charts.length > 0 && charts.every(
    c => c.querySelector('.main-svg') && c.querySelectorAll('g.trace').length > 0);
}"""


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", "-o", "DPkg::Lock::Timeout=600", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def ensure_chromium() -> tuple[Path | None, str]:
    """Install the Debian ``chromium`` package when missing.

    Returns the executable (None when impossible) and what happened.
    """
    if CHROMIUM.exists():
        return CHROMIUM, "already installed"
    if shutil.which("apt-get") is None:
        return None, "chromium is missing and apt-get is not available to install it"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return None, "chromium is missing and installing it needs root (apt-get install chromium)"
    t0 = time.perf_counter()
    res = _apt("install", "-y", "--no-install-recommends", "chromium")
    if res.returncode != 0:
        # Package lists may be stale or absent on a fresh machine.
        upd = _apt("update")
        if upd.returncode != 0:
            return None, f"apt-get update failed: {upd.stderr.strip()[-400:]}"
        res = _apt("install", "-y", "--no-install-recommends", "chromium")
    if res.returncode != 0 or not CHROMIUM.exists():
        return None, f"apt-get install chromium failed: {res.stderr.strip()[-400:]}"
    return CHROMIUM, f"installed with apt-get in {time.perf_counter() - t0:.0f} s"


@pytest.fixture(scope="session")
def chromium() -> Path:
    path, how = ensure_chromium()
    if path is None:
        pytest.skip(how)
    print(f"chromium: {how}")
    return path


@pytest.fixture(scope="session")
def browser(chromium: Path) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server over ``tmp_path``: (base URL, folder)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _open(browser: object, url: str) -> tuple[object, list[str], list[str]]:
    """Load ``url``; return the page, console/page errors and requests off the server."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    errors: list[str] = []
    foreign: list[str] = []
    base = url.rsplit("/", 1)[0]
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on(
        "request",
        lambda r: None if r.url.startswith((base, "data:", "about:")) else foreign.append(r.url),
    )
    resp = page.goto(url, wait_until="load", timeout=120_000)
    assert resp is not None and resp.ok, f"GET {url} -> {resp and resp.status}"
    page.wait_for_function(_ALL_DRAWN, timeout=120_000)
    return page, errors, foreign


def test_full_report_renders_in_chromium(
    browser: object, served: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    url, folder = served
    store = full_demo_store(tmp_path_factory.getbasetemp() / "r8demo")
    with Store(store, read_only=True) as st:
        inputs = collect_report_inputs(st)
    assert inputs.missing == {}
    html = render_report(inputs, folder / "report.html").read_text()
    expected = html.count('<div class="chart"')
    assert expected >= 10
    page, errors, foreign = _open(browser, f"{url}/report.html")
    try:
        assert errors == []
        assert foreign == []
        drawn = page.eval_on_selector_all(  # type: ignore[attr-defined]
            "div.chart",
            "cs => cs.map(c => [c.dataset.chart, !!c.querySelector('.main-svg'), "
            "c.querySelectorAll('g.trace').length])",
        )
        assert len(drawn) == expected
        assert all(svg and traces > 0 for _, svg, traces in drawn), drawn
        # The anomaly markers carry their root cause as hover text.
        assert page.evaluate(  # type: ignore[attr-defined]
            "() => document.getElementById('chart-anomalies').data"
            ".some(t => (t.hovertext || []).some(h => h.includes('team=')))"
        )
        shot = folder / "report.png"
        page.screenshot(path=str(shot), full_page=True)  # type: ignore[attr-defined]
        assert shot.stat().st_size > 50_000
        if not os.environ.get("FORECASTER_SCREENSHOT_STORE"):
            _save_screenshot(shot)
    finally:
        page.close()  # type: ignore[attr-defined]


def _save_screenshot(shot: Path) -> None:
    target = os.environ.get("FORECASTER_SAVE_SCREENSHOT")
    if target:
        dest = Path(target) if Path(target).is_absolute() else ROOT / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest)


@pytest.mark.skipif(
    not (
        os.environ.get("FORECASTER_SCREENSHOT_STORE")
        and os.environ.get("FORECASTER_SAVE_SCREENSHOT")
    ),
    reason="regenerates docs/report.png only when FORECASTER_SCREENSHOT_STORE and "
    "FORECASTER_SAVE_SCREENSHOT are set",
)
def test_screenshot_of_a_store(browser: object, served: tuple[str, Path]) -> None:
    url, folder = served
    src = Path(os.environ["FORECASTER_SCREENSHOT_STORE"])
    with Store(copy_store(src, folder / "store"), read_only=True) as st:
        inputs = collect_report_inputs(st)
    render_report(inputs, folder / "report.html")
    page, errors, foreign = _open(browser, f"{url}/report.html")
    try:
        assert errors == [] and foreign == []
        shot = folder / "report.png"
        page.screenshot(path=str(shot), full_page=True)  # type: ignore[attr-defined]
        _save_screenshot(shot)
    finally:
        page.close()  # type: ignore[attr-defined]


def test_report_without_results_renders_in_chromium(
    browser: object, served: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    url, folder = served
    src = small_demo_store(tmp_path_factory.getbasetemp() / "r8demo" / "src")
    path = copy_store(src, folder / "bare")
    with Store(path, read_only=True) as st:
        inputs = collect_report_inputs(st)
    assert "forecast" in inputs.missing
    render_report(inputs, folder / "bare.html")
    page, errors, foreign = _open(browser, f"{url}/bare.html")
    try:
        assert errors == [] and foreign == []
        notices = page.eval_on_selector_all(  # type: ignore[attr-defined]
            "div.missing", "ns => ns.map(n => n.dataset.missing)"
        )
        assert {"forecast", "anomalies", "savings", "scenario_monthly"} <= set(notices)
    finally:
        page.close()  # type: ignore[attr-defined]
