"""Draw docs/serve_page.jpg: the page `blurcli serve` answers at GET /, in Debian's chromium
(headless, through Playwright), with the example portrait chosen and blurred.

    pip install ".[serve,test]"; apt-get install chromium
    python benchmarks/figures/serve.py [--out docs/serve_page.jpg]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for benchmarks.common

from benchmarks.common import DOCS, EXAMPLE, argument_parser
from tests.serve_process import start_serve


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--out", type=Path, default=DOCS / "serve_page.jpg")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium here (apt-get install chromium)")
    server = start_serve()
    try:
        with sync_playwright() as playwright, tempfile.TemporaryDirectory() as scratch:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(f"{server.address}/")
            page.wait_for_function("document.getElementById('subject').options.length > 0")
            page.set_input_files("#file", str(EXAMPLE))
            page.wait_for_selector("#result[data-state=done]")
            shot = Path(scratch) / "page.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
            image = cv2.imread(str(shot))
            cv2.imwrite(str(args.out), image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    finally:
        server.stop()
    print(f"{args.out}: {image.shape[1]}x{image.shape[0]}")


if __name__ == "__main__":
    main()
