"""Screenshot of an archscope page's diagram in headless Chromium (Debian's; Playwright never downloads one).

    python docs/screenshot.py PAGE.html OUT.png [--open KEY]... [--search TEXT] [--hover KEY] [--color BY]

KEY is what the page calls a node: a call id (``layer3#0``) or a run (``group:layer3.1#0``).
"""
import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("page")
    parser.add_argument("out")
    parser.add_argument("--open", action="append", default=[])
    parser.add_argument("--search")
    parser.add_argument("--hover")
    parser.add_argument("--color")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", args=ARGS,
                                                       viewport={"width": 1280, "height": 1300})
        page = browser.new_page()
        page.goto(Path(args.page).resolve().as_uri())
        page.wait_for_function("window.archscope && window.archscope.ready", timeout=60_000)
        for key in args.open:
            page.evaluate(f"window.archscope.open({key!r})")
        page.click("#fit")
        if args.color:
            page.select_option("#color-by", args.color)
        if args.search:
            page.fill("#search", args.search)
            page.press("#search", "Enter")
            page.wait_for_selector("#canvas g.node.hit")
        if args.hover:
            page.hover(f'#canvas g.node[data-key="{args.hover}"]')
        page.evaluate("document.querySelector('.toolbar').scrollIntoView()")
        page.evaluate("window.scrollBy(0, -50)")
        page.screenshot(path=args.out)
        browser.close()


if __name__ == "__main__":
    main()
