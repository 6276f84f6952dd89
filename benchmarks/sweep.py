"""Trace every torchvision model (and every timm model, when timm is installed) on meta at its
default input; print how many traced, the failures grouped by reason, and the time per model.

    python benchmarks/sweep.py                 # torchvision only
    python benchmarks/sweep.py --timm          # also timm (about 1,400 models: tens of minutes on 2 cores)
    python benchmarks/sweep.py --timm --pattern 'resnet*'
    python benchmarks/sweep.py --hf              # also 50 common transformers types, default configs
    python benchmarks/sweep.py --hf --pattern '*' # every transformers model type (800+: about an hour)
"""
from __future__ import annotations

import argparse
import collections
import statistics
import time
import warnings

# Common transformers model types, each built from its default config (the sizes the paper gave).
HF_COMMON = ("albert bart bert big_bird blenderbot bloom clip codegen convnext deberta deberta-v2 deit "
             "distilbert electra falcon gemma gemma2 gpt2 gpt_neo gpt_neox gptj granitemoe hubert llama "
             "longformer m2m_100 marian mbart mistral mixtral mobilebert mpt mt5 olmoe opt pegasus phi phi3 "
             "qwen2 qwen2_moe qwen3 roberta segformer starcoder2 swin t5 vit wav2vec2 whisper xlm-roberta").split()


def sweep(source: str, pattern: str, only=None):
    from archscope.analysis import trace
    from archscope.errors import first_line
    from archscope.models import resolve

    names = [n for n in resolve.library_names(source, pattern) if only is None or n in only]
    times, fallbacks, failures = [], [], collections.defaultdict(list)
    for i, name in enumerate(names):
        start = time.perf_counter()
        try:
            t = trace(f"{source}:{name}")
            if t.device != "meta" or (t.note and "built on CPU" in t.note):
                fallbacks.append(name)
        except Exception as error:  # noqa: BLE001 - a sweep reports, it does not stop
            reason = first_line(error)
            failures[f"{type(error).__name__}: {reason[:120]}"].append(name)
        times.append(time.perf_counter() - start)
        if (i + 1) % 100 == 0:
            print(f"  ... {i + 1}/{len(names)}", flush=True)
    traced = len(names) - sum(len(v) for v in failures.values())
    print(f"{source}: {traced}/{len(names)} traced ({100 * traced / max(len(names), 1):.1f}%), "
          f"{len(fallbacks)} needed CPU (build or run); time per model: median "
          f"{statistics.median(times) * 1000:.0f} ms, max {max(times):.1f} s, total {sum(times):.0f} s")
    for reason, which in sorted(failures.items(), key=lambda kv: -len(kv[1])):
        print(f"  {len(which):4d} × {reason}\n         {', '.join(which[:8])}{' …' if len(which) > 8 else ''}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timm", action="store_true", help="also sweep timm's models")
    parser.add_argument("--hf", action="store_true", help="also sweep transformers' model types")
    parser.add_argument("--pattern", default=None, help="names to sweep (default: all; for --hf, 50 common types)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if not args.hf or args.timm:
        sweep("tv", args.pattern or "*")
    if args.timm:
        sweep("timm", args.pattern or "*")
    if args.hf:
        sweep("hf", args.pattern or "*", only=None if args.pattern else set(HF_COMMON))


if __name__ == "__main__":
    main()
