"""The page at GET / in a real browser: the system's chromium (Debian's `chromium` package), driven
headless through Playwright's Python API, chooses the example photo, moves the strength control,
and sees the blurred photo the server made for that strength, at the photo's size, displayed.

Skips where there is no chromium or no Playwright (Playwright's own browser downloads are never
used: .ci/run installs Debian's chromium where apt can).
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason='the serve extra: pip install "blurcli[serve]"')
sync_api = pytest.importorskip("playwright.sync_api", reason="no playwright (the test extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (apt-get install chromium)")

import uvicorn  # noqa: E402  (the serve extra, checked above)

from blurcli.listening import listen, url_of  # noqa: E402
from blurcli.segment import new_segmenter  # noqa: E402
from blurcli.serve import create_app, load_subjects  # noqa: E402

PHOTO = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """`blurcli serve`'s app on the shipped models, served by uvicorn on a thread of this process."""
    default, subjects = load_subjects(
        None, lambda weights, subject: new_segmenter(weights, "cpu", subject=subject)
    )
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(default, subjects=subjects), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield url_of(sock)
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture
def page(address: str) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        except sync_api.Error as error:
            pytest.skip(f"{CHROMIUM} does not start under Playwright: {str(error).splitlines()[0]}")
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{address}/")
            yield page
        finally:
            browser.close()


DISPLAYED = """async () => {
  const result = document.getElementById("result");
  const bytes = await (await fetch(result.src)).arrayBuffer();
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  const box = result.getBoundingClientRect();
  return {width: result.naturalWidth, height: result.naturalHeight, complete: result.complete,
          shown: box.width > 0 && box.height > 0, sha256: hex};
}"""


def test_the_page_blurs_a_chosen_photo_and_follows_the_strength_control(page: Any, address: str) -> None:
    page.wait_for_function("document.getElementById('subject').options.length > 0")
    page.set_input_files("#file", str(PHOTO))
    page.wait_for_selector("#result[data-state=done]")
    first = page.get_attribute("#result", "src")

    page.locator("#strength").focus()
    for _ in range(30):  # the slider moved by hand: 30 steps of 0.001 to the right
        page.keyboard.press("ArrowRight")
    strength = page.input_value("#strength")
    assert float(strength) == pytest.approx(0.042)
    page.wait_for_function(
        "(s) => { const r = document.getElementById('result'); "
        "return r.dataset.state === 'done' && r.dataset.strength === s; }",
        arg=strength,
    )
    shown = page.evaluate(DISPLAYED)
    assert page.get_attribute("#result", "src") != first
    assert (shown["width"], shown["height"], shown["complete"], shown["shown"]) == (512, 512, True, True)
    expected = page.request.post(
        f"{address}/blur?strength={strength}&kernel=gaussian&subject=person", data=PHOTO.read_bytes()
    )
    assert shown["sha256"] == hashlib.sha256(expected.body()).hexdigest()  # the server's blur, as sent
    assert page.get_attribute("#download", "download") == "astronaut_blurred.jpg"
    assert page.get_attribute("#download", "aria-disabled") == "false"
