"""The interactive page in headless Chromium: its size, first paint and the time to open a block.

    python benchmarks/bench_page.py [--out DIR]

For each model (tv:resnet152, tv:vit_b_16, a 32-layer Llama built from a config) it writes the
page with ``archscope report``, opens it in Debian's Chromium (headless, a fresh profile), and
prints: the page's size against the 3 MiB goal; first paint (navigation start to the diagram
drawn) against 2 s; and opening the largest block, then its run of repeated blocks, against
300 ms each (the layout of the new view and the DOM swap, measured in the page). Run it alone:
this machine has two cores.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from archscope.report.page import page  # noqa: E402

# What to open, in order: a call id, "run" (the first run of repeated blocks drawn) or "member"
# (the first block of the run just opened).
MODELS = [
    ("tv:resnet152", {}, ["layer3#0", "run"]),
    ("tv:vit_b_16", {}, ["encoder#0", "encoder.layers#0", "run"]),
    ("hf:llama", dict(num_hidden_layers=32, hidden_size=512, intermediate_size=1376, num_attention_heads=8,
                      num_key_value_heads=8, vocab_size=32000), ["run", "member"]),
]
GOALS = {"size": 3 * 2**20, "paint": 2.0, "open": 0.3}
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


FIRST_GROUP = ("(document.querySelector('#canvas g.node[data-key^=\"group:\"]') || "
               "{getAttribute: () => null}).getAttribute('data-key')")


def _timed_open(tab, key: str) -> float:
    return tab.evaluate(f"""() => {{ const t = performance.now(); window.archscope.open({key!r});
                           return performance.now() - t; }}""") / 1e3


def measure(browser, path: str, steps, runs: int = 3):
    """Medians of: first paint, and the time of each opening in ``steps``."""
    paints, opens = [], [[] for _ in steps]
    for _ in range(runs):
        tab = browser.new_page()
        tab.goto("file://" + path)
        tab.wait_for_function("window.archscope && window.archscope.ready", timeout=60_000)
        paints.append(tab.evaluate("window.archscope.readyAt") / 1e3)
        last = None
        for i, step in enumerate(steps):
            if step == "run":
                key = tab.evaluate(FIRST_GROUP)
            elif step == "member":
                key = last[len("group:"):]
            else:
                key = step
            opens[i].append(_timed_open(tab, key))
            last = key
        tab.close()
    return statistics.median(paints), [statistics.median(o) for o in opens]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="where the pages go (default: a temporary folder)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Debian's chromium: apt-get install chromium")
    out = args.out or tempfile.mkdtemp(prefix="archscope-pages-")
    os.makedirs(out, exist_ok=True)
    print(f"{'model':<14} {'page':>9} {'/3 MiB':>7} {'build s':>8} {'paint s':>8} {'/2 s':>6}  opening, in turn "
          "(seconds, /0.3 s)")
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(tempfile.mkdtemp(prefix="archscope-profile-"),
                                                       executable_path=chromium, args=ARGS,
                                                       viewport={"width": 1400, "height": 1000})
        for name, kwargs, steps in MODELS:
            path = os.path.join(out, name.replace(":", "-") + ".html")
            started = time.perf_counter()
            page(name, path, **kwargs)
            built = time.perf_counter() - started
            size = os.path.getsize(path)
            paint, opened = measure(browser, path, steps)
            turns = "  ".join(f"{step} {t:.3f} ({t / GOALS['open']:.2f})" for step, t in zip(steps, opened))
            print(f"{name:<14} {size / 2**20:>7.2f}Mi {size / GOALS['size']:>7.2f} {built:>8.1f} {paint:>8.3f} "
                  f"{paint / GOALS['paint']:>6.2f}  {turns}")
        browser.close()
    print(f"pages in {out}; ratios below 1.00 meet the goal (medians of 3 loads)")


if __name__ == "__main__":
    main()
