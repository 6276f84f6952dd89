"""archscope against the other counters, on the same prebuilt CPU models, in one run.

    python benchmarks/bench_peers.py [--repeats 5] [--models resnet50,vit_b_16,...]

For each model every tool gets the same prebuilt CPU model (a fresh deep copy each, as thop
adds buffers to the modules it profiles) and its input; the table prints each tool's MACs as a
ratio of the reference (torchvision's published GMACs for the three torchvision models, the
hand formula for the LSTM and the Transformer encoder), then its best and median time: after one
untimed warm-up each, the tools take turns, one run each per round in a rotating order, so load
from elsewhere on the machine falls on all of them alike. A peer that is not
installed is skipped (pip install fvcore thop ptflops calflops). archscope runs its default
path: a small model without convolutions and with its weights on CPU runs there, any other on the
meta device through stand-ins; ``--meta`` forces meta for all. Each row's last line gives
archscope's speed against the fastest peer, and against the fastest peer whose MACs are within 2%
of the reference, both on the best rounds (the least disturbed by the machine).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

LSTM = dict(input=64, hidden=128, layers=2, steps=50)
ENCODER = dict(d=128, heads=4, ff=512, layers=2, tokens=64)


def lstm_macs() -> int:
    h, x, t = LSTM["hidden"], LSTM["input"], LSTM["steps"]
    return t * (4 * h * (x + h) + 4 * h * (h + h))  # per step: 4 gates x (W_ih x + W_hh h), each layer


def encoder_macs() -> int:
    d, ff, n = ENCODER["d"], ENCODER["ff"], ENCODER["tokens"]
    return ENCODER["layers"] * (4 * n * d * d + 2 * n * n * d + 2 * n * d * ff)  # qkv+out, q·kᵀ and ·v, FFN


def models():
    """name → (a builder of the prebuilt eval model, its input, reference MACs, where that comes from)."""
    from torchvision import models as tv

    def published(builder, weights):
        return lambda: builder(weights=None).eval(), round(weights.meta["_ops"] * 1e9)

    out = {}
    for name, builder, weights in [("resnet50", tv.resnet50, tv.ResNet50_Weights.IMAGENET1K_V1),
                                   ("vit_b_16", tv.vit_b_16, tv.ViT_B_16_Weights.IMAGENET1K_V1),
                                   ("mobilenet_v3_large", tv.mobilenet_v3_large,
                                    tv.MobileNet_V3_Large_Weights.IMAGENET1K_V1)]:
        build, ref = published(builder, weights)
        out[name] = (build, torch.zeros(1, 3, 224, 224), ref, "torchvision's published GMACs")
    out["lstm_2x128"] = (lambda: nn.LSTM(LSTM["input"], LSTM["hidden"], LSTM["layers"]).eval(),
                         torch.zeros(LSTM["steps"], 1, LSTM["input"]), lstm_macs(), "hand formula")
    layer = lambda: nn.TransformerEncoderLayer(ENCODER["d"], ENCODER["heads"], ENCODER["ff"],  # noqa: E731
                                               batch_first=True)
    out["encoder_2x128"] = (lambda: nn.TransformerEncoder(layer(), ENCODER["layers"]).eval(),
                            torch.zeros(1, ENCODER["tokens"], ENCODER["d"]), encoder_macs(), "hand formula")
    return out


# --------------------------------------------------------------------------- each tool: model, input → MACs


RIGHT = 0.02  # a peer within 2% of the reference counts as right
ARCHSCOPE_DEVICE = None  # --meta: force the meta device (the path small CPU models took before)


def archscope_macs(model, x):
    from archscope.analysis.api import trace

    return trace(model, input_size=tuple(x.shape), device=ARCHSCOPE_DEVICE).totals.macs


def torchinfo_macs(model, x):
    import torchinfo

    return torchinfo.summary(model, input_size=tuple(x.shape), verbose=0).total_mult_adds


def fvcore_macs(model, x):
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis.total()  # fvcore's "flops" are MACs


def thop_macs(model, x):
    from thop import profile

    return profile(model, inputs=(x,), verbose=False)[0]


def ptflops_macs(model, x):
    from ptflops import get_model_complexity_info

    macs, _ = get_model_complexity_info(model, tuple(x.shape[1:]), as_strings=False, print_per_layer_stat=False,
                                        verbose=False, input_constructor=lambda _: x)
    return macs


def calflops_macs(model, x):
    from calflops import calculate_flops

    _, macs, _ = calculate_flops(model, input_shape=tuple(x.shape), output_as_string=False, print_results=False)
    return macs


def flopcountermode_macs(model, x):
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as mode:
        model(x)
    return mode.get_total_flops() // 2


TOOLS = {"archscope": archscope_macs, "torchinfo": torchinfo_macs, "fvcore": fvcore_macs, "thop": thop_macs,
         "ptflops": ptflops_macs, "calflops": calflops_macs, "FlopCounterMode": flopcountermode_macs}
IMPORTS = {"archscope": "archscope", "torchinfo": "torchinfo", "fvcore": "fvcore", "thop": "thop",
           "ptflops": "ptflops", "calflops": "calflops", "FlopCounterMode": "torch"}


def installed(tool: str) -> bool:
    import importlib

    try:
        importlib.import_module(IMPORTS[tool])
        return True
    except Exception:  # noqa: BLE001 - calflops fails to import without transformers
        return False


def run_once(tool, build, x):
    """(MACs, seconds) of one run on a fresh deep copy (the copy is not timed), the tool's chatter muted."""
    import contextlib
    import io
    import warnings

    model = copy.deepcopy(build)
    start = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        macs = TOOLS[tool](model, x)
    return int(macs), time.perf_counter() - start


def measure_all(tools, build, x, repeats: int) -> dict:
    """tool → (MACs, best seconds, median seconds), or the exception a tool raised.

    One untimed warm-up run each (imports and lazy set-up), then `repeats` rounds in which every
    tool runs once, in an order that rotates each round: a burst of load from elsewhere on the
    machine lands on all tools alike instead of on whichever ran its repeats at that moment.
    """
    times: dict = {tool: [] for tool in tools}
    macs: dict = {}
    for tool in tools:
        try:
            macs[tool] = run_once(tool, build, x)[0]
        except Exception as error:  # noqa: BLE001 - a peer that cannot count this model
            macs[tool] = error
    working = [tool for tool in tools if not isinstance(macs[tool], Exception)]
    for round_ in range(repeats):
        shift = round_ % len(working) if working else 0
        for tool in working[shift:] + working[:shift]:
            count, seconds = run_once(tool, build, x)
            if count != macs[tool]:
                raise SystemExit(f"{tool} counted {count:,} then {macs[tool]:,} MACs on the same model")
            times[tool].append(seconds)
    return {tool: macs[tool] if tool not in working else (macs[tool], min(times[tool]),
                                                          statistics.median(times[tool]))
            for tool in tools}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed rounds after one warm-up; the ratio uses each tool's best round")
    parser.add_argument("--models", default="resnet50,vit_b_16,mobilenet_v3_large,lstm_2x128,encoder_2x128")
    parser.add_argument("--meta", action="store_true", help="archscope on the meta device even for small CPU models")
    args = parser.parse_args()
    global ARCHSCOPE_DEVICE
    ARCHSCOPE_DEVICE = "meta" if args.meta else None
    tools = [t for t in TOOLS if installed(t)]
    missing = [t for t in TOOLS if t not in tools]
    table = models()
    print(f"MACs as a ratio of the reference, then best and median of {args.repeats} interleaved rounds (ms), on a "
          f"prebuilt CPU model ({torch.get_num_threads()} threads, torch {torch.__version__})")
    print(f"{'model':<20}" + "".join(f"{t:>24}" for t in tools))
    for name in args.models.split(","):
        build, x, reference, source = table[name]
        results = measure_all(tools, build(), x, args.repeats)
        cells = []
        for tool in tools:
            if isinstance(results[tool], Exception):
                cells.append(f"{'failed: ' + type(results[tool]).__name__:>22}")
            else:
                macs, best, median = results[tool]
                cells.append(f"{macs / reference:>6.2f} {best * 1e3:>7.1f} /{median * 1e3:>7.1f}")
        print(f"{name:<20}" + "".join(f"{c:>24}" for c in cells))
        timed = {tool: r for tool, r in results.items() if not isinstance(r, Exception)}
        peers = {tool: r for tool, r in timed.items() if tool != "archscope"}
        if "archscope" in timed and peers:
            ours = timed["archscope"][1]
            # A peer that answers wrong is fast at something else: the fastest one within 2% is named too.
            right = [best for macs, best, _ in peers.values() if abs(macs / reference - 1) <= RIGHT]
            against_right = f"{min(right) / ours:.2f}x" if right else "none is right"
            print(f"{'':<20}reference {reference:,} MACs ({source}); archscope's speed (best rounds) against the "
                  f"fastest peer: {min(best for _, best, _ in peers.values()) / ours:.2f}x; against the fastest "
                  f"right one (within 2%): {against_right}")
    if missing:
        print(f"not installed, skipped: {', '.join(missing)}")


if __name__ == "__main__":
    main()
