"""A run owns its folder: one run per ``--out``, locked while it trains, checked writable first.

- ``--out`` naming a file, or a folder that cannot be written, is refused before any data is
  loaded; a folder holding another run (its ``last.pt`` or ``metrics.jsonl``) is refused unless
  ``--resume`` continues exactly that run (the same run id);
- ``.lock`` holds the pid and host of the process training there; a live one is refused, a
  stale one (the process is gone) is taken over;
- a run that fails before it has written anything leaves no folder behind.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Optional

from archscope.errors import TrainingError, UsageError

LOCK = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _existing_run_id(folder: Path) -> Optional[str]:
    """The run id recorded in a folder (from its metrics), or '' if it holds an older run without one."""
    metrics = folder / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                return json.loads(line).get("run_id", "")
            except ValueError:
                return ""
    if (folder / "last.pt").exists():
        return ""
    return None


class RunDir:
    """Claimed with ``claim()``; ``release(failed)`` drops the lock and, after a failure that
    wrote nothing, the folder it created."""

    def __init__(self, path: str, run_id: str, resuming: bool):
        self.path = Path(path)
        self.run_id = run_id
        self.resuming = resuming
        self.created = False
        self.locked = False

    def claim(self) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise UsageError(f"--out {path} is a file, not a folder: name a folder for the run")
        if path.is_dir():
            other = _existing_run_id(path)
            if other is not None and not (self.resuming and other in (self.run_id, "")):
                raise UsageError(f"--out {path} already holds another run{f' ({other})' if other else ''}: "
                                 f"choose another --out, or continue that run with --resume {path / 'last.pt'}")
        else:
            try:
                path.mkdir(parents=True)
            except OSError as error:
                raise TrainingError(f"cannot create --out {path}: {error.strerror or error}") from None
            self.created = True
        self._lock()
        probe = path / ".write-test"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as error:
            self.release(failed=True)
            raise TrainingError(f"--out {path} is not writable ({error.strerror or error}): choose another --out") from None

    def _lock(self) -> None:
        lock = self.path / LOCK
        me = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": self.run_id}
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    holder = json.loads(lock.read_text())
                except (OSError, ValueError):
                    holder = {}
                pid, host = holder.get("pid"), holder.get("host")
                if isinstance(pid, int) and (host != me["host"] or _alive(pid)):
                    raise UsageError(f"--out {self.path} is in use by another archscope run (pid {pid} on {host}): "
                                     f"wait for it, or choose another --out") from None
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            except OSError as error:
                if self.created:
                    shutil.rmtree(self.path, ignore_errors=True)
                raise TrainingError(f"--out {self.path} is not writable ({error.strerror or error}): "
                                    f"choose another --out") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.locked = True
            return

    def release(self, failed: bool = False) -> None:
        if self.locked:
            (self.path / LOCK).unlink(missing_ok=True)
            self.locked = False
        if failed and self.created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()
