"""Screenshot of an archscope page in headless Chromium (Debian's; Playwright never downloads one).

    python docs/screenshot.py PAGE.html OUT.png [ROW_ID ...]   # rows to click open first
"""
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main(page_path: str, out: str, *rows: str) -> None:
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", args=ARGS,
                                                       viewport={"width": 1200, "height": 860})
        page = browser.new_page()
        page.goto(Path(page_path).resolve().as_uri())
        for row in rows:
            page.click(f'#layers tr[data-id="{row}"]')
        page.evaluate("document.querySelector('h2:nth-of-type(2)').scrollIntoView()")
        page.screenshot(path=out)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
