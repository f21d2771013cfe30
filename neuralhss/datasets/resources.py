"""Sizing a generation run before it starts: the disk and memory it needs, against what the
machine has (so that a run that cannot fit is refused with one line, creating nothing)."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .schema import Meta, shard_range


def human_bytes(n: float) -> str:
    """``1.5 GB``-style size (decimal units, as ``df -H`` prints them)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # pragma: no cover


#: Working memory of one sample being computed, in multiples of its float32 fields: the solvers
#: work in float64 (x2) with a few temporaries (spectra, right-hand sides, ...).
WORK_FACTOR = 8
#: Bytes of HDF5 bookkeeping per written chunk (B-tree entry, chunk header): an upper bound.
CHUNK_OVERHEAD = 64


@dataclass
class Estimate:
    """What a :func:`generate` run needs, computed from the parameters before it starts."""

    bytes_per_sample: int
    n_samples: int
    #: Size of the finished ``.h5`` file (uncompressed; gzip gains little on float noise).
    output_bytes: int
    #: Disk in use at the peak: every block in ``.parts`` plus the ``.h5.partial`` being written.
    peak_disk_bytes: int
    #: Memory of the workers and the writer: blocks being computed plus working memory.
    memory_bytes: int
    workers: int

    def summary(self) -> str:
        return (f"{self.n_samples} samples of {human_bytes(self.bytes_per_sample)}: about "
                f"{human_bytes(self.output_bytes)} on disk ({human_bytes(self.peak_disk_bytes)} "
                f"at the peak) and {human_bytes(self.memory_bytes)} of memory with "
                f"{self.workers} worker(s)")


def estimate(meta: Meta, block_size: int, workers: int) -> Estimate:
    """Disk and memory a run needs, from its metadata alone (nothing is computed)."""
    owned = shard_range(meta.n_samples, meta.shard)
    fields = meta.input_fields + meta.output_fields
    per_sample = sum(4 * math.prod(meta.field_shape(n)) for n in fields)
    output = len(owned) * (per_sample + CHUNK_OVERHEAD * len(fields)) + meta.n_samples  # + /done
    block = min(block_size, len(owned)) * per_sample
    # At most workers + 1 blocks are computed or waiting to be written at any time (each at
    # most its float32 size; compressed once computed), plus one sample's working memory per
    # worker.
    memory = workers * (block + WORK_FACTOR * per_sample) + block
    return Estimate(per_sample, len(owned), output, output + len(owned) * per_sample, memory,
                    workers)


def available_memory() -> int | None:
    """Memory available to a new process (``MemAvailable``), or ``None`` if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def free_disk(path: Path) -> int:
    """Free bytes of the file system that ``path`` (or its nearest existing parent) is on."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _folder_bytes(folder: Path) -> int:
    """Total size of the files directly in ``folder`` (0 if it does not exist); O(1) memory."""
    total = 0
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        pass
    return total


def check_resources(est: Estimate, path: Path, parts: Path) -> None:
    """Refuse a run that cannot fit on the disk of ``path`` or in memory (one-line ValueError)."""
    # Blocks already in the parts folder (a resumed run) are counted in the peak but use no
    # new space.
    need = est.peak_disk_bytes - _folder_bytes(parts)
    free = free_disk(path.parent)
    if need > free:
        raise ValueError(f"{path}: {est.n_samples} samples need about {human_bytes(need)} of disk "
                         f"({human_bytes(est.output_bytes)} file plus the blocks it is written "
                         f"from) but {human_bytes(free)} are free; generate fewer samples, a "
                         "smaller resolution, or write elsewhere")
    mem = available_memory()
    if mem is not None and est.memory_bytes > mem:
        raise ValueError(f"{path}: {est.workers} worker(s) need about "
                         f"{human_bytes(est.memory_bytes)} of memory (samples of "
                         f"{human_bytes(est.bytes_per_sample)}) but {human_bytes(mem)} are "
                         "available; use a smaller resolution, --block-size or --workers")
