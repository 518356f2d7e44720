"""Small shared helpers: atomic file writes, seeding, device choice, output names, worker
processes."""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing
import os
import random
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqkit.errors import VQKitError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; give it the mode an ordinary open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def fsync_dir(path: Path) -> None:
    """Make a rename inside folder ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then CPU; an explicit device must exist here.

    Raises
    ------
    VQKitError
        A device this machine does not have (e.g. ``cuda`` on a CPU-only machine).
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VQKitError(f"device {name!r}: not a device name (auto, cpu, cuda, cuda:N, mps)") \
            from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no GPU visible"
            raise VQKitError(f"device {name!r}: no CUDA device here (torch {torch.__version__}, "
                             f"{build}); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise VQKitError(f"device {name!r}: only {torch.cuda.device_count()} CUDA "
                             f"device(s) here")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None)
                                     and torch.backends.mps.is_available()):
        raise VQKitError(f"device {name!r}: MPS is not available here; use --device cpu or auto")
    return device


def unique_stems(paths: Sequence[str | Path]) -> list[str]:
    """Output-name stems for input files: each file's stem, made unique in input order by
    ``-2``, ``-3``... (``a/x.png, b/x.png`` -> ``x, x-2``), as ``vqkit reconstruct`` and
    ``vqkit encode`` name their outputs."""
    seen: dict[str, int] = {}
    stems = []
    for p in paths:
        stem = Path(p).stem
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        stems.append(stem if n == 1 else f"{stem}-{n}")
    return stems


def format_number(v: Any) -> str:
    """A number as vqkit shows it everywhere (CLI summary, plots, report): ints with thousands
    separators, floats to 4-5 significant digits."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            return f"{v:.3e}"
        return f"{v:.5g}" if abs(v) >= 1 else f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(format_number(x) for x in v) if len(v) <= 16 else f"[{len(v)} values]"
    return str(v)


def worker_context():
    """The multiprocessing context for worker pools: fork on Linux (workers start in
    milliseconds with numpy and torch already imported), the platform's default elsewhere
    (spawn on Windows and macOS re-imports them in each worker)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods and sys.platform == "linux"
                                       else None)


def run_parallel(fn: Callable[[Any], Any], tasks: list, workers: int) -> list:
    """``[fn(t) for t in tasks]``, in worker processes when there are several."""
    if workers <= 1 or len(tasks) <= 1:
        return [fn(t) for t in tasks]
    with cf.ProcessPoolExecutor(max_workers=min(workers, len(tasks)),
                                mp_context=worker_context()) as pool:
        return list(pool.map(fn, tasks))
