"""Repeated blocks cost about one block: a deep model against its 2-layer twin, memoised and not.

    python benchmarks/bench_memo.py [--repeats 5] [--layers 80] [--shell]

In process (transformers imported once beforehand, each model built and traced by ``trace``):
a Llama-2-70B-shaped ``hf:llama`` with ``--layers`` layers against the same config with 2 layers,
memoised (the default) and with ``memo=False``, and ("prebuilt") the same memoised run of each of
the two built once beforehand (transformers' own construction of 80 layers is not timed: only
archscope's forward and its bookkeeping, with the collector paused as ``trace`` pauses it). After
one untimed warm-up each, the deep and the shallow one take turns for ``--repeats`` rounds, so load
from elsewhere falls on both alike; it prints the best and median of each and the deep one's best
as a ratio of the shallow one's best (the goal: within 2x), and checks that both ways give the same
parameters and FLOPs (68,714,504,192 parameters at 80 layers). The same for ViT-B/16 against a
2-layer ViT, torchvision's own model.

``--shell`` also times ``archscope params hf:llama --arg num_hidden_layers=N ...`` in fresh
processes against ``python -c "import torch, transformers"`` (the goal: within that + 0.5 s), and
against the same plus ``from transformers import LlamaModel``, which any use of the model pays.
Run it alone: this machine has two cores.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LLAMA_70B = dict(hidden_size=8192, intermediate_size=28672, num_attention_heads=64, num_key_value_heads=8,
                 vocab_size=32000)


def _interleaved(runs: dict, repeats: int) -> dict:
    """name → (best, median) seconds of ``runs[name]()``: one untimed warm-up each (first-op costs are
    not the block's), then ``repeats`` rounds of one run each, alternating, so that load from elsewhere
    on the machine falls on the deep and the shallow model alike."""
    times = {name: [] for name in runs}
    for run in runs.values():
        run()
    for round_ in range(repeats):
        order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
        for name in order:
            started = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - started)
    return {name: (min(t), statistics.median(t)) for name, t in times.items()}


def _paused(fn, *args):
    """As ``trace`` runs its forward: with the cyclic collector waiting (archscope/gc_pause.py)."""
    from archscope.gc_pause import gc_paused

    with gc_paused():
        return fn(*args)


def _in_process(label: str, deep, shallow, repeats: int) -> None:
    from archscope.analysis.api import trace

    figures, counts = {}, {}
    for memo in (True, False):
        for name, (model, kwargs) in (("deep", deep), ("shallow", shallow)):
            t = trace(model, memo=memo, **kwargs)
            counts[(memo, name)] = (t.totals.params, t.totals.flops)
        figures[memo] = _interleaved({name: (lambda model=model, kwargs=kwargs, memo=memo:
                                             trace(model, memo=memo, **kwargs))
                                      for name, (model, kwargs) in (("deep", deep), ("shallow", shallow))}, repeats)
    if isinstance(deep[0], str):  # a name: also the model built once beforehand, so the build is not timed
        from archscope.analysis.counter import FlopCounter
        from archscope.analysis.run import RunOptions, attempt
        from archscope.models import load_model

        runs = {}
        for name, spec in (("deep", deep), ("shallow", shallow)):
            loaded = load_model(spec[0], device="meta", **spec[1])
            runs[name] = lambda loaded=loaded: _paused(attempt, loaded, loaded.default_input, RunOptions(), FlopCounter())
        figures[None] = _interleaved(runs, repeats)
    same = counts[(True, "deep")] == counts[(False, "deep")] and counts[(True, "shallow")] == counts[(False, "shallow")]
    print(f"{label}: {counts[(True, 'deep')][0]:,} parameters, {counts[(True, 'deep')][1]:,} FLOPs; "
          f"the same memoised and not: {'yes' if same else 'NO'}")
    print(f"  {'':<11} {'deep best / median':>22} {'shallow best / median':>24}   deep / shallow (best rounds)")
    for memo, times in figures.items():
        (deep_best, deep_median), (shallow_best, shallow_median) = times["deep"], times["shallow"]
        label = {True: "memoised", False: "memo=False", None: "prebuilt"}[memo]
        print(f"  {label:<11} {deep_best * 1e3:10.1f} / {deep_median * 1e3:6.1f} ms {shallow_best * 1e3:11.1f} / "
              f"{shallow_median * 1e3:6.1f} ms   {deep_best / shallow_best:5.1f}x (goal 2x)")


def _wall(cmd) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def _shell(layers: int, repeats: int) -> None:
    exe = shutil.which("archscope") or sys.exit("archscope is not installed: pip install -e .")
    args = [exe, "params", "hf:llama", "--arg", f"num_hidden_layers={layers}"]
    for k, v in LLAMA_70B.items():
        args += ["--arg", f"{k}={v}"]
    base, modeling, command = [], [], []
    for _ in range(repeats):  # interleaved, so all see the same machine
        base.append(_wall([sys.executable, "-c", "import torch, transformers"]))
        modeling.append(_wall([sys.executable, "-c", "import torch, transformers; from transformers import LlamaModel"]))
        command.append(_wall(args))
    b, m, c = statistics.median(base), statistics.median(modeling), statistics.median(command)
    print(f"from the shell, medians of {repeats}: import torch + transformers {b:.2f} s; archscope params hf:llama "
          f"({layers} layers) {c:.2f} s: {c - b:+.2f} s past it (goal +0.5 s)")
    print(f"  of which transformers' own first import of a model class (LlamaModel: {m - b:+.2f} s, its modeling code "
          f"imports video_utils): past that, {c - m:+.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layers", type=int, default=80)
    parser.add_argument("--shell", action="store_true", help="also time the CLI in fresh processes")
    args = parser.parse_args()
    import torch
    import torchvision.models as tv
    import transformers  # noqa: F401 - imported before any timing

    torch.set_num_threads(2)
    _in_process(f"hf:llama, Llama-2-70B's shape, {args.layers} layers against 2",
                ("hf:llama", dict(LLAMA_70B, num_hidden_layers=args.layers)),
                ("hf:llama", dict(LLAMA_70B, num_hidden_layers=2)), args.repeats)
    with torch.device("meta"):  # ViT-B/16's own class, at 12 layers and at 2
        vit, vit2 = (tv.vision_transformer.VisionTransformer(224, 16, layers, 12, 768, 3072) for layers in (12, 2))
    image = dict(input_size=(1, 3, 224, 224))
    _in_process("torchvision ViT-B/16, 12 layers against 2", (vit, image), (vit2, image), args.repeats)
    if args.shell:
        _shell(args.layers, args.repeats)


if __name__ == "__main__":
    main()
