"""archscope against torchvision's published figures, for every classification model with weights.

    python benchmarks/tv_conformance.py        # prints a Markdown table (the README's)

Params must equal weights.meta["num_params"] and GMACs (FLOPs / 2, on meta at the weights' crop
size) must round to weights.meta["_ops"]. tests/test_external.py asserts the same per model.
"""
from __future__ import annotations

import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))


def main():
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    warnings.simplefilter("ignore")
    from archscope.analysis import trace

    from models import BUILD_ARGS, classification_models, published

    print("| torchvision model | input | params | published | GMACs | published | match |")
    print("|---|---|---:|---:|---:|---:|---|")
    matched = 0
    names = classification_models()
    for name in names:
        options = BUILD_ARGS.get(name, {})
        t = trace(f"tv:{name}", **options)
        num_params, gmacs = published(name, t.input_shape[-1])
        ours = round(t.totals.macs / 1e9, 3)
        ok = t.totals.params == num_params and abs(ours - gmacs) <= 0.0011
        matched += ok
        label = name + "".join(f" ({k}={v})" for k, v in options.items())
        print(f"| {label} | {t.input_shape[-1]} | {t.totals.params:,} | {num_params:,} | {ours:.3f} | {gmacs:.3f} "
              f"| {'yes' if ok else 'NO'} |")
    print(f"\n{matched}/{len(names)} match")


if __name__ == "__main__":
    main()
