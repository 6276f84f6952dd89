#!/usr/bin/env bash
# The README's pictures, made again: needs Graphviz (dot) and, for the page's screenshot, Chromium + playwright.
set -euo pipefail
cd "$(dirname "$0")/.."
archscope graph nin -o docs/nin.png
archscope graph tv:resnet50 --depth 2 -o docs/resnet50.png
archscope report tv:resnet50 -o /tmp/archscope-resnet50.html
python docs/screenshot.py /tmp/archscope-resnet50.html docs/report-resnet50.png --open "layer3#0" --hover "layer3.0#0"
archscope memory alexnet -b 1..8192 --hw l4 --plot docs/memory-sweep.png > /dev/null
