"""Dataset generation: sharded, parallel, resumable, crash-safe HDF5 writing.

How a file comes to be (``FILE.h5``):

1. Samples are computed in blocks of consecutive indices by a pool of worker processes. Each
   finished block is saved to ``FILE.h5.parts/<start>-<stop>.npz`` by writing a temporary file
   and renaming it, so a block file either exists whole or not at all.
2. When every block exists, the HDF5 file is written to ``FILE.h5.partial`` sample by sample
   in index order and renamed to ``FILE.h5``; then the parts folder is removed.

Killing the process at any moment (even ``kill -9``) therefore never leaves a corrupt
``FILE.h5``: re-running the same command finds the finished blocks and computes only the rest.
Sample ``i`` is drawn from ``SeedSequence(seed, spawn_key=(i,))`` and computed with one BLAS/FFT
thread, and the file is always written in the same order, so the output is bit-identical
for any number of workers, and ``merge`` of shards equals a single run byte for byte.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from ..io import atomic_write
from .problems import Problem, get_problem
from .schema import Meta, create_layout, field_paths, read_meta, shard_range

MANIFEST = "manifest.json"


def package_version() -> str:
    from .. import __version__

    return __version__


def parse_shard(shard: str | Sequence[int] | None) -> tuple[int, int] | None:
    """``"I/N"`` or ``(I, N)`` → ``(I, N)`` with ``0 <= I < N``; ``None`` stays ``None``."""
    if shard is None:
        return None
    try:
        i, n = (int(v) for v in (shard.split("/") if isinstance(shard, str) else shard))
    except (ValueError, TypeError):
        raise ValueError(f"shard={shard!r} must look like 'I/N' (e.g. 0/4)") from None
    if not 0 <= i < n:
        raise ValueError(f"shard {i}/{n} is out of range; use I/N with 0 <= I < N")
    return i, n


#: Largest value an HDF5 int64 attribute (seed, n_samples) can hold.
INT64_MAX = 2**63 - 1


def _check_int(name: str, value: Any, low: int, high: int | None, what: str) -> int:
    """``value`` as an int in ``[low, high]``, or a ValueError naming ``name`` and the rule."""
    try:
        ok = not isinstance(value, bool) and int(value) == value
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or value < low or (high is not None and value > high):
        limit = f" at most {high}" if high is not None and ok and value > high else ""
        raise ValueError(f"{name}={value!r} must be {what}{limit}")
    return int(value)


def default_block_size(n_points: int, n_samples: int) -> int:
    """Samples per block: at most 2**18 grid points (1 MiB of float32 per field), at most 256,
    and small enough to give about 64 blocks, so that workers stay balanced. It does not depend
    on the number of workers, so a run can be resumed with another ``--workers``."""
    by_size = 2**18 // max(n_points, 1)
    by_count = -(-n_samples // 64)
    return int(max(1, min(256, by_size, by_count)))


def iter_blocks(indices: range, block_size: int) -> Iterator[tuple[int, int]]:
    """The blocks of :func:`blocks_of`, one at a time (memory O(1) for any sample count)."""
    start = indices.start
    while start < indices.stop:
        stop = min(indices.stop, (start // block_size + 1) * block_size)
        yield start, stop
        start = stop


def blocks_of(indices: range, block_size: int) -> list[tuple[int, int]]:
    """Split a contiguous range into blocks aligned to multiples of ``block_size``."""
    return list(iter_blocks(indices, block_size))


def n_blocks(indices: range, block_size: int) -> int:
    """``len(blocks_of(indices, block_size))`` without listing them."""
    if not indices:
        return 0
    return (indices.stop - 1) // block_size - indices.start // block_size + 1


def _block_of(start: int, indices: range, block_size: int) -> tuple[int, int] | None:
    """The block of :func:`blocks_of` that begins at ``start``, or ``None`` if none does."""
    if start not in indices or (start != indices.start and start % block_size):
        return None
    return start, min(indices.stop, (start // block_size + 1) * block_size)


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
    # Each worker holds its block and one sample's working memory; the writer holds one block.
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


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index``: ``SeedSequence(seed).spawn(n)[index]``, in O(1)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def compute_samples(problem: Problem, params: Mapping[str, Any], seed: int,
                    start: int, stop: int) -> dict[str, np.ndarray]:
    """Compute samples ``start..stop-1``: float32 arrays ``(stop-start, *field shape)`` per field."""
    import scipy.fft
    from threadpoolctl import threadpool_limits

    out = {s.name: np.empty((stop - start, *problem.field_shape(s, params)), np.float32)
           for s in problem.field_specs}
    # One thread per process: the bits of a reduction must not depend on the core count.
    with threadpool_limits(limits=1), scipy.fft.set_workers(1):
        for i in range(start, stop):
            sample = problem.sample(params, sample_rng(seed, i))
            for name, arr in sample.items():
                if not np.isfinite(arr).all():
                    raise RuntimeError(f"{problem.name}: sample {i} has non-finite {name!r} "
                                       f"(params {dict(params)}); this is a solver bug, please report it")
                out[name][i - start] = arr
    return out


def _block_path(parts: Path, start: int, stop: int) -> Path:
    return parts / f"{start:010d}-{stop:010d}.npz"


def _save_block(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    # Not durable: a killed process loses nothing that reached the page cache, and a block cut
    # short by a power failure fails _block_is_valid on resume and is recomputed. The hidden
    # ".tmp" name is what _scan_parts clears after a kill.
    atomic_write(path, write, temp=path.with_name(f".{path.name}.{os.getpid()}.tmp"),
                 durable=False)


def _block_is_valid(path: Path, shapes: Mapping[str, tuple[int, ...]]) -> bool:
    """Whether a block file holds every field with the expected shape and is readable."""
    try:
        with np.load(path) as z:
            return set(z.files) == set(shapes) and all(z[n].shape == s for n, s in shapes.items())
    except Exception:  # truncated or garbled zip: recompute the block
        return False


def _scan_parts(parts: Path, meta: Meta, owned: range, block_size: int) -> tuple[int, int]:
    """Keep the valid blocks of ``parts``, delete everything else we wrote there.

    Returns ``(samples, blocks)`` held by the valid blocks. Walks the folder, not the list of
    all blocks, so memory is O(1) however many samples the run has.
    """
    n_samples = n_valid = 0
    with os.scandir(parts) as it:
        for entry in it:
            name = entry.name
            if name.startswith(".") and name.endswith(".tmp"):
                os.unlink(entry.path)  # a block write cut short by a kill or a full disk
                continue
            if not name.endswith(".npz"):
                continue
            try:
                a, b = (int(v) for v in name[:-4].split("-"))
            except ValueError:
                continue
            shapes = {n: (b - a, *meta.field_shape(n))
                      for n in meta.input_fields + meta.output_fields}
            if _block_of(a, owned, block_size) == (a, b) and _block_is_valid(Path(entry.path), shapes):
                n_samples += b - a
                n_valid += 1
            else:
                os.unlink(entry.path)
    return n_samples, n_valid


def _worker(problem_name: str, params: dict, seed: int, start: int, stop: int,
            parts: str) -> tuple[int, int]:
    arrays = compute_samples(get_problem(problem_name), params, seed, start, stop)
    _save_block(_block_path(Path(parts), start, stop), arrays)
    return start, stop


#: File descriptor of the lock held by :func:`_exclusive` in this process (``None``: none).
_LOCK_FD: int | None = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an advisory lock so that two processes never work on the same output.

    ``flock`` is released by the kernel when every descriptor of the lock file is closed, so a
    lock never outlives its holder: workers close their inherited copy at start
    (:func:`_worker_init`) and die with the parent. The holder's pid is written into the file
    to name it in the refusal.
    """
    global _LOCK_FD
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            text = fh.read().strip()
            pid = int(text) if text.isdigit() else None
            who = f"process {pid}" if pid is not None else "another process"
            if pid is not None and not _pid_alive(pid):
                who = f"a leftover worker of the dead process {pid}"
            raise RuntimeError(f"{who} is writing {lock_path.parent}; wait for it to finish "
                               "or stop it") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        _LOCK_FD = fh.fileno()
        try:
            yield
        finally:
            _LOCK_FD = None
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_hdf5(path: Path, meta: Meta, get_sample: Callable[[int], Mapping[str, np.ndarray] | None],
               progress: bool = False, desc: str = "writing") -> None:
    """Write a schema-v1 file through ``path.partial`` and an atomic, durable rename.

    ``get_sample(i)`` returns the fields of sample ``i`` or ``None`` when the file does not
    hold it (shard files). Samples are written in index order, which makes the bytes of the
    file a function of its contents alone. A failed write removes ``path.partial``.
    """
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        tmp.unlink()  # left by a killed write of ours; its samples are still in the source
    atomic_write(path, lambda t: _write_layout(t, meta, get_sample, progress, desc), temp=tmp)


def _write_layout(tmp: Path, meta: Meta, get_sample: Callable[[int], Mapping[str, np.ndarray] | None],
                  progress: bool, desc: str) -> None:
    with h5py.File(tmp, "w") as f:
        create_layout(f, meta)
        datasets = [(p.split("/", 1)[1], f[p]) for p in field_paths(meta)]
        # /done is written one run of consecutive samples at a time, not from an array of
        # n_samples flags: memory stays O(1) in the number of samples.
        run_start = None
        for i in tqdm(range(meta.n_samples), desc=desc, unit="sample", disable=not progress,
                      leave=False):
            sample = get_sample(i)
            if sample is None:
                if run_start is not None:
                    f["done"][run_start:i] = True
                    run_start = None
                continue
            for name, ds in datasets:
                ds[i] = sample[name]
            run_start = i if run_start is None else run_start
        if run_start is not None:
            f["done"][run_start:meta.n_samples] = True


@dataclass
class GenerateResult:
    """What :func:`generate` did."""

    path: Path
    n_computed: int
    n_resumed: int
    n_owned: int
    seconds: float
    already_complete: bool = False

    @property
    def samples_per_second(self) -> float:
        return self.n_computed / self.seconds if self.seconds > 0 else float("nan")


def _meta_for(problem: Problem, params: dict, seed: int, n_samples: int,
              shard: tuple[int, int] | None) -> Meta:
    return Meta(
        problem=problem.name, params=params, seed=seed, n_samples=n_samples,
        grid=problem.grid(params), input_fields=[s.name for s in problem.inputs],
        output_fields=[s.name for s in problem.outputs], shard=shard,
        package_version=package_version(),
        field_attrs={s.name: {"description": s.description, "units": s.units}
                     for s in problem.field_specs},
        times=None if (t := problem.times(params)) is None else t.tolist(),
        temporal_fields=[s.name for s in problem.field_specs if s.temporal],
    )


def _flatten(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update({f"{k}.{kk}": vv for kk, vv in _flatten(v).items()})
        else:
            out[k] = v
    return out


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``"key: old (file) vs new (now)"`` for the keys that differ, nested keys dotted."""
    a, b = _flatten(old), _flatten(new)
    return ", ".join(f"{k}: {a.get(k)!r} (file) vs {b.get(k)!r} (now)"
                     for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def _existing_is_same(path: Path, meta: Meta) -> bool:
    """True when ``path`` is already the finished file; FileExistsError when it is another."""
    try:
        with h5py.File(path, "r") as f:
            old = read_meta(f)
            complete = bool(f["done"][...][shard_range(old.n_samples, old.shard).start:
                                           shard_range(old.n_samples, old.shard).stop].all())
    except (OSError, ValueError, KeyError) as exc:
        raise FileExistsError(f"{path} exists and is not a neuralhss dataset ({exc}); "
                              "choose another output path") from None
    now = {**meta.identity(), "shard": meta.shard}
    was = {**old.identity(), "shard": old.shard}
    if now != was:
        raise FileExistsError(f"{path} exists with other parameters ({_differences(was, now)}); "
                              "choose another output path or delete the file")
    if not complete:
        raise FileExistsError(f"{path} exists but is incomplete; it was not written by "
                              "neuralhss generate (which renames only finished files)")
    return True


def generate(
    problem: str,
    out: str | os.PathLike,
    *,
    n_samples: int,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    workers: int = 1,
    shard: str | Sequence[int] | None = None,
    progress: bool = True,
    block_size: int | None = None,
) -> GenerateResult:
    """Generate (or resume, or confirm) a dataset file.

    Parameters
    ----------
    problem : str
        Registered problem name (``neuralhss.datasets.problem_names()``).
    out : path
        Output ``.h5`` file. If it exists with the same parameters and complete, nothing is
        done; with other parameters, ``FileExistsError``.
    n_samples : int
        Total number of samples of the dataset (all shards together).
    seed : int, default 0
        Root seed; sample ``i`` uses ``SeedSequence(seed, spawn_key=(i,))``.
    params : mapping, optional
        Problem parameters (``dim``, ``resolution``, field parameters...); defaults filled in.
    workers : int, default 1
        Worker processes. The output does not depend on it.
    shard : "I/N" or (I, N), optional
        Compute only shard ``I`` of ``N`` (a contiguous range of samples); the file holds all
        ``n_samples`` slots with ``/done`` marking its own. Combine shards with :func:`merge`.
    progress : bool, default True
        Show a progress bar (samples/s).
    block_size : int, optional
        Samples per crash-safe block (default: about 2**18 grid points per block).

    Returns
    -------
    GenerateResult
    """
    prob = get_problem(problem)
    params = prob.resolve(params)
    # Every number is checked before anything is created: a bad value must not leave a
    # .parts folder whose manifest then demands the same bad value to resume.
    n_samples = _check_int("n_samples", n_samples, 1, INT64_MAX, "a positive integer")
    seed = _check_int("seed", seed, 0, INT64_MAX, "a non-negative integer")  # an int64 attribute
    workers = _check_int("workers", workers, 1, None, "a positive integer")
    if block_size is not None:
        block_size = _check_int("block_size", block_size, 1, None, "a positive integer "
                                "(omit it for the default)")
    shard_t = parse_shard(shard)
    if shard_t is not None and shard_t[1] > n_samples:
        raise ValueError(f"{shard_t[1]} shards for {n_samples} samples leaves shards empty; "
                         "use at most n_samples shards")
    meta = _meta_for(prob, params, seed, n_samples, shard_t)
    path = Path(out)
    if path.suffix not in (".h5", ".hdf5"):
        raise ValueError(f"output {path} should end in .h5 or .hdf5")
    parts = path.with_name(path.name + ".parts")
    owned = shard_range(n_samples, shard_t)
    t0 = time.perf_counter()

    if path.exists() and _existing_is_same(path, meta):
        if parts.exists():
            shutil.rmtree(parts)  # the rename happened; only the clean-up was interrupted
        return GenerateResult(path, 0, len(owned), len(owned), 0.0, already_complete=True)

    points = max(math.prod(meta.field_shape(n)) for n in meta.input_fields + meta.output_fields)
    bsize = block_size if block_size is not None else default_block_size(points, n_samples)
    # More workers than blocks would only be started to sit idle.
    workers = min(workers, n_blocks(owned, bsize))
    est = estimate(meta, bsize, workers)
    check_resources(est, path, parts)  # before anything is created
    if progress:
        print(f"{path.name}: {est.summary()}", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {**meta.identity(), "shard": list(shard_t) if shard_t else None,
                "block_size": bsize}
    with _exclusive(parts / ".lock"):
        man_path = parts / MANIFEST
        if man_path.exists():
            old = json.loads(man_path.read_text())
            if old != manifest:
                raise FileExistsError(
                    f"{parts} holds an interrupted run with other parameters "
                    f"({_differences(old, manifest)}); re-run with those parameters to resume, "
                    "or delete the folder to start over")
        else:
            text = json.dumps(manifest, sort_keys=True, indent=1)
            atomic_write(man_path, lambda tmp: tmp.write_text(text))
        n_resumed, n_done_blocks = _scan_parts(parts, meta, owned, bsize)
        n_todo = len(owned) - n_resumed
        # Listed lazily: memory stays O(blocks in flight) for any number of samples.
        todo = ((a, b) for a, b in iter_blocks(owned, bsize)
                if not _block_path(parts, a, b).exists())
        workers = min(workers, max(1, n_blocks(owned, bsize) - n_done_blocks))
        bar = tqdm(total=len(owned), initial=n_resumed, unit="sample", disable=not progress,
                   desc=f"{prob.name} {'x'.join(map(str, meta.grid.shape))}", smoothing=0.1)
        try:
            _run_blocks(prob.name, params, seed, todo, parts, workers, bar)
        finally:
            bar.close()
        compute_seconds = time.perf_counter() - t0
        cache: dict[str, Any] = {"block": None, "data": None}

        def get_sample(i: int) -> dict[str, np.ndarray] | None:
            if i not in owned:
                return None
            start = max(i // bsize * bsize, owned.start)
            if cache["block"] != start:
                with np.load(_block_path(parts, *_block_of(start, owned, bsize))) as z:
                    cache["data"] = {k: z[k] for k in z.files}
                cache["block"] = start
            return {k: v[i - start] for k, v in cache["data"].items()}

        write_hdf5(path, meta, get_sample, progress=progress)
    shutil.rmtree(parts)
    return GenerateResult(path, n_todo, n_resumed, len(owned), compute_seconds)


def _mp_context():
    """``fork`` on Linux: workers start at once and, unlike ``spawn``, do not re-run the
    caller's script (which would recurse in a script without an ``if __name__ == "__main__"``
    guard). Workers only use NumPy/SciPy with one thread each, so the usual hazard of forking a
    process that holds thread pools does not arise. ``spawn`` elsewhere."""
    if sys.platform.startswith("linux") and "fork" in get_all_start_methods():
        return get_context("fork")
    return get_context("spawn")


def _worker_init(parent: int, lock_fd: int | None) -> None:
    """Start of a worker process: die with the parent, and do not hold its lock.

    A worker outliving a ``kill -9`` of its parent would keep computing for nobody and, through
    the lock file descriptor inherited by ``fork``, keep the output locked against a re-run.
    """
    if lock_fd is not None:
        try:
            os.close(lock_fd)  # flock is shared by every copy of the descriptor
        except OSError:
            pass
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
        return
    import threading

    def watch() -> None:  # elsewhere: poll for the parent, which re-parents us when it dies
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _run_blocks(problem: str, params: dict, seed: int, todo: Iterable[tuple[int, int]],
                parts: Path, workers: int, bar: tqdm) -> None:
    todo = iter(todo)
    if workers == 1:
        for a, b in todo:
            _worker(problem, params, seed, a, b, str(parts))
            bar.update(b - a)
        return
    ctx = _mp_context()
    # Only forked workers inherit the lock's descriptor; in a spawned one the number is another.
    lock_fd = _LOCK_FD if ctx.get_start_method() == "fork" else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(os.getpid(), lock_fd)) as pool:
        pending: set = set()

        def refill() -> None:
            # Two blocks per worker in flight keep every worker busy; submitting all blocks at
            # once would hold one future per block, O(samples).
            while len(pending) < 2 * workers and (block := next(todo, None)) is not None:
                pending.add(pool.submit(_worker, problem, params, seed, *block, str(parts)))

        try:
            refill()
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    a, b = fut.result()
                    bar.update(b - a)
                refill()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise


def merge(shards: Sequence[str | os.PathLike], out: str | os.PathLike,
          progress: bool = True) -> Path:
    """Combine shard files (``generate(..., shard="I/N")``) into one complete file.

    The result is byte-identical to generating the whole dataset in one run. Shards must come
    from the same problem, parameters, seed and sample count and together hold every sample.

    Raises
    ------
    FileExistsError
        If ``out`` exists.
    FileNotFoundError
        If a shard does not exist.
    ValueError
        If a shard is not an HDF5 file, shards disagree or samples are missing.
    """
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another output path or delete it")
    if not shards:
        raise ValueError("merge needs at least one shard file")
    files = []
    try:
        for s in shards:
            if not Path(s).exists():
                raise FileNotFoundError(f"shard {s} does not exist")
            try:
                files.append(h5py.File(s, "r"))
            except OSError as exc:
                raise ValueError(f"{s} is not a readable HDF5 file ({exc}); check it with "
                                 "`neuralhss check`") from None
    except BaseException:
        for f in files:
            f.close()
        raise
    try:
        metas = [read_meta(f) for f in files]
        ref = metas[0]
        for s, m in zip(shards, metas, strict=True):
            if m.identity() != ref.identity():
                raise ValueError(f"{s} does not belong with {shards[0]} "
                                 f"({_differences(ref.identity(), m.identity())})")
        owner = np.full(ref.n_samples, -1)
        for k, f in enumerate(files):
            done = f["done"][...]
            owner[(owner < 0) & done] = k
        missing = np.flatnonzero(owner < 0)
        if missing.size:
            raise ValueError(f"the shards lack {missing.size} sample(s) (first: "
                             f"{missing[:5].tolist()}); generate the missing shards first")
        paths = field_paths(ref)

        def get_sample(i: int) -> dict[str, np.ndarray]:
            f = files[owner[i]]
            return {p.split("/", 1)[1]: f[p][i] for p in paths}

        meta = Meta(**{**ref.__dict__, "shard": None})
        meta.field_attrs = {p.split("/", 1)[1]: {k: str(v) for k, v in files[0][p].attrs.items()
                                                 if k in ("description", "units")}
                            for p in paths}
        out.parent.mkdir(parents=True, exist_ok=True)
        write_hdf5(out, meta, get_sample, progress=progress, desc="merging")
    finally:
        for f in files:
            f.close()
    return out
