"""Scale-out through torchrun: one process per device, DistributedDataParallel.

Under ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK in the environment) each process joins a
process group (NCCL on CUDA, gloo on CPU), holds the whole device-resident dataset, and takes a
disjoint shard of every global batch drawn from the same seeded permutation. Only rank 0
prints and writes. Collectives time out after 30 s, so a rank that died or hung stops the
others with an error instead of a hang (torchrun also stops the group when one process fails).
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import List

import torch

TIMEOUT = datetime.timedelta(seconds=30)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    return Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))


def start(dist: Dist, device: torch.device) -> torch.device:
    """Join the process group; the device of this rank (cuda:LOCAL_RANK on GPUs)."""
    if not dist.active:
        return device
    import torch.distributed as td

    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    if not td.is_initialized():
        td.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return device


def stop() -> None:
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        td.destroy_process_group()


def reduce(t: torch.Tensor, dist: Dist, op: str = "sum") -> torch.Tensor:
    """The sum, max or min over ranks, as a copy: the local value is left alone. ``t`` must be on
    the training device (NCCL reduces CUDA tensors only)."""
    if not dist.active:
        return t
    import torch.distributed as td

    out = t.clone()
    td.all_reduce(out, op={"sum": td.ReduceOp.SUM, "max": td.ReduceOp.MAX, "min": td.ReduceOp.MIN}[op])
    return out


def shard(idx: torch.Tensor, dist: Dist) -> torch.Tensor:
    """This rank's part of a global batch: every world-th index, from its rank on."""
    return idx[dist.rank::dist.world] if dist.active else idx


def torchrun_command(nproc: int, argv: List[str]) -> List[str]:
    """``archscope train ... --nproc N`` → ``python -m torch.distributed.run --standalone
    --nproc-per-node N -m archscope train ...`` (the same arguments, without ``--nproc``)."""
    import sys

    argv = list(argv)
    i = next(i for i, a in enumerate(argv) if a == "--nproc" or a.startswith("--nproc="))
    del argv[i: i + (1 if "=" in argv[i] else 2)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "archscope", *argv]


def launch(nproc: int, argv: List[str], console) -> int:
    """Run this training under torchrun with ``nproc`` processes; its exit code."""

    from archscope.errors import UsageError

    if nproc < 1:
        raise UsageError("--nproc must be >= 1")
    if "WORLD_SIZE" in os.environ:
        raise UsageError("--nproc launches torchrun itself: leave it out when running under torchrun")
    command = torchrun_command(nproc, argv)
    console.print(f"launching: torchrun --standalone --nproc-per-node={nproc} {' '.join(command[6:])}",
                  highlight=False, markup=False)
    code = _run_quietly(command)
    if code not in (0, 130):
        console.print(f"error: training processes failed (torchrun exited with code {code}: a process raised, "
                      f"was killed or lost its peers); {_resume_hint(argv)}", style="red", highlight=False,
                      markup=False)
    return code


def _run_quietly(command: List[str]) -> int:
    """Run torchrun with its output passed through as it comes, except torchrun's own report of a
    failed group: a Python traceback of the launcher (``ChildFailedError``) and its failure table,
    which say again, in 40 lines, what the failed rank already said in one. The workers' own lines
    (archscope's one-line errors) pass unchanged."""
    import subprocess
    import sys

    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1)
    hiding = False
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("Traceback (most recent call last)") or LAUNCHER_REPORT in line:
            hiding = True  # the launcher's report of the failure runs to the end of its output
        if not hiding:
            sys.stderr.write(line)
            sys.stderr.flush()
    return process.wait()


LAUNCHER_REPORT = "torch.distributed.elastic.multiprocessing.errors"


def _resume_hint(argv: List[str]) -> str:
    """How to go on from the run's last checkpoint, from the arguments the run was given."""
    model = argv[argv.index("train") + 1] if "train" in argv and argv.index("train") + 1 < len(argv) else "MODEL"
    out = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--out"),
               next((a.split("=", 1)[1] for a in argv if a.startswith("--out=")), None))
    folder = out or "runs/<this run>"
    return f"the last checkpoint resumes with: archscope train {model} --resume {folder}/last.pt"
