"""Dataset generation: sharded, parallel, resumable, crash-safe HDF5 writing.

How a file comes to be (``FILE.h5``):

1. Samples are computed in blocks of consecutive indices by a pool of worker processes (with
   one worker: in the main process, while a helper thread stores the block before). Each
   sample is encoded as soon as it is computed into the bytes its HDF5 chunks store
   (:class:`ChunkCodec`: shuffle + deflate, which HDF5's gzip filter reads), and each finished
   block is saved to ``FILE.h5.parts/<start>-<stop>.npz`` by writing a temporary file and
   renaming it, so a block file either exists whole or not at all.
2. Meanwhile the main process writes ``FILE.h5.partial`` in sample order, each block as soon
   as the blocks before it are written (``write_direct_chunk``: no compression in the main
   process), and flushes what it wrote to the disk every :data:`SYNC_BYTES`, so that this
   disk time overlaps the computing; at most ``workers + 1`` blocks are computed or waiting
   at any time. When the last block is written the file is synced and renamed to
   ``FILE.h5``; then the parts folder is removed.

Killing the process at any moment (even ``kill -9``) therefore never leaves a corrupt
``FILE.h5``: re-running the same command finds the finished blocks and computes only the rest.
Sample ``i`` is drawn from ``SeedSequence(seed, spawn_key=(i,))`` and computed with one BLAS/FFT
thread, and the file is always written with the same calls in the same order, so the output is
bit-identical for any number of workers (for a given filter), and ``merge`` of shards equals a
single run byte for byte.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from .._process import die_with_parent
from ..io import atomic_write
from .blocks import (
    Block,
    ChunkCodec,
    block_path,
    chunks_per_sample,
    load_block,
    pack,
    save_block,
    scan_parts,
)
from .problems import Problem, get_problem
from .resources import check_resources, estimate
from .schema import (
    Meta,
    compression_of,
    create_layout,
    field_paths,
    filter_options,
    read_meta,
    shard_range,
)

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
    and small enough to give about 32 blocks, so that workers stay balanced. Every block costs a
    file written and read back, which for cheap samples (Poisson 64²) is comparable to their
    solves, so blocks are not made smaller than that balance needs
    (``benchmarks/bench_generate.py`` measures the overhead). It does not depend on the number
    of workers, so a run can be resumed with another ``--workers``."""
    by_size = 2**18 // max(n_points, 1)
    by_count = -(-n_samples // 32)
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


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index``: ``SeedSequence(seed).spawn(n)[index]``, in O(1)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


#: This process's threadpoolctl controller and the number of modules loaded when it was made.
_POOLS: tuple[Any, int] | None = None


@contextmanager
def _one_thread() -> Iterator[None]:
    """One BLAS/OpenMP/FFT thread, so that the bits of a reduction do not depend on the core
    count. Finding the thread pools walks the loaded libraries (about 1.4 ms), so the
    controller is kept and only renewed when modules (and maybe libraries) were loaded since."""
    global _POOLS
    import scipy.fft
    from threadpoolctl import ThreadpoolController

    if _POOLS is None or _POOLS[1] != len(sys.modules):
        _POOLS = (ThreadpoolController(), len(sys.modules))
    with _POOLS[0].limit(limits=1), scipy.fft.set_workers(1):
        yield


def compute_samples(problem: Problem, params: Mapping[str, Any], seed: int,
                    start: int, stop: int) -> dict[str, np.ndarray]:
    """Compute samples ``start..stop-1``: float32 arrays ``(stop-start, *field shape)`` per field."""
    out = {s.name: np.empty((stop - start, *problem.field_shape(s, params)), np.float32)
           for s in problem.field_specs}
    for i, sample in _iter_samples(problem, params, seed, start, stop):
        for name in sample:
            out[name][i - start] = sample[name]
        del sample  # not alive while the next sample is solved
    return out


def _iter_samples(problem: Problem, params: Mapping[str, Any], seed: int, start: int,
                  stop: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(i, fields of sample i)`` for ``i`` in ``start..stop-1``, each computed with one thread
    and checked to be finite. The generator drops its reference to a sample before solving the
    next, so a consumer that drops its own holds one sample at a time, not two."""
    with _one_thread():
        for i in range(start, stop):
            sample = problem.sample(params, sample_rng(seed, i))
            bad = [name for name in sample if not np.isfinite(sample[name]).all()]
            if bad:
                raise RuntimeError(f"{problem.name}: sample {i} has non-finite {bad[0]!r} "
                                   f"(params {dict(params)}); this is a solver bug, please report it")
            yield i, sample
            del sample


def compute_block(problem: Problem, params: Mapping[str, Any], seed: int, start: int,
                  stop: int, meta: Meta, codec: ChunkCodec) -> Block:
    """Compute samples ``start..stop-1`` and encode each as soon as it is computed: the block
    in memory is one buffer of its compressed chunks, allocated once at the block's float32
    size (compressed chunks are rarely larger; it grows if they are), plus one sample."""
    return encode_block(_fields_only(_iter_samples(problem, params, seed, start, stop)),
                        stop - start, meta, codec)


def _fields_only(it: Iterator[tuple[int, dict[str, np.ndarray]]]
                 ) -> Iterator[dict[str, np.ndarray]]:
    # A generator expression would keep the last sample alive while fetching the next.
    for item in it:
        sample = item[1]
        del item
        yield sample
        del sample


def encode_block(samples: Iterable[Mapping[str, np.ndarray]], n: int, meta: Meta,
                 codec: ChunkCodec) -> Block:
    """The :data:`Block` of ``n`` consecutive samples (their fields, float32 or float64: the
    chunks store float32), encoded one after the other into one buffer. The buffer is reserved
    at the block's float32 size (compressed chunks are rarely larger; it grows if they are) but
    uninitialised, so its memory is only taken as the chunks fill it."""
    names = meta.input_fields + meta.output_fields
    index: list[tuple[int, int]] = []
    n_chunks = n * sum(chunks_per_sample(meta, name) for name in names)
    data = np.empty(n * sum(4 * math.prod(meta.field_shape(name)) for name in names)
                    + 64 * n_chunks, np.uint8)
    end = 0
    for sample in samples:
        for name in names:
            for mask, chunk in codec.encode_sample(meta, {name: sample[name]}, (name,))[name]:
                index.append((mask, len(chunk)))
                if end + len(chunk) > data.size:
                    grown = np.empty(max(2 * data.size, end + len(chunk)), np.uint8)
                    grown[:end] = data[:end]
                    data = grown
                data[end:end + len(chunk)] = np.frombuffer(chunk, np.uint8)
                end += len(chunk)
                del chunk
        del sample  # freed before the next sample is computed (or taken from a list)
    return np.array(index, np.int64).reshape(len(index), 2), data[:end]


def _run_settings(problem_name: str, params: dict, seed: int, parts: str
                  ) -> tuple[Meta, ChunkCodec]:
    """The layout and codec of the run whose blocks go to ``parts``: the filter is read from
    the run's manifest (kept per process until the manifest changes)."""
    man = Path(parts) / MANIFEST
    st = man.stat()
    key = (parts, st.st_ino, st.st_mtime_ns)
    if _SETTINGS.get("key") != key:
        compression = json.loads(man.read_text()).get("compression", DEFAULT_COMPRESSION)
        prob = get_problem(problem_name)
        _SETTINGS.update(key=key, meta=_meta_for(prob, params, seed, 1, None),
                         codec=ChunkCodec(*compression))
    return _SETTINGS["meta"], _SETTINGS["codec"]


#: The settings :func:`_run_settings` last read in this process.
_SETTINGS: dict[str, Any] = {}
#: Filter of generated files unless asked otherwise: (name, gzip level).
DEFAULT_COMPRESSION = ("gzip", 1)


def _compute(problem_name: str, params: dict, seed: int, start: int, stop: int,
             parts: str) -> Block:
    """Compute and encode one block (with the run's layout and filter)."""
    meta, codec = _run_settings(problem_name, params, seed, parts)
    return compute_block(get_problem(problem_name), params, seed, start, stop, meta, codec)


def _compute_raw(problem_name: str, params: dict, seed: int, start: int,
                 stop: int) -> list[dict[str, np.ndarray]]:
    """Compute one block, not encoded: each sample's fields as float32 (what the chunks
    store), for :func:`encode_block` in the writer thread."""
    out = []
    for item in _iter_samples(get_problem(problem_name), params, seed, start, stop):
        out.append({k: np.asarray(v, np.float32) for k, v in item[1].items()})
        del item  # the float64 fields are not kept while the next sample is solved
    return out


def _worker(problem_name: str, params: dict, seed: int, start: int, stop: int,
            parts: str) -> tuple[int, int, Block | None]:
    """Compute, encode and save one block; return it for the writer (``None``: in a pool
    worker, the writer reads the block's file)."""
    block = _compute(problem_name, params, seed, start, stop, parts)
    save_block(block_path(Path(parts), start, stop), block)
    # A pool worker sends no data back: the writer reads the block file (one copy in the
    # writer's memory, where a pickled block would be two, and none in the worker's).
    return start, stop, None if _IN_POOL else block


#: Whether this process is a worker of a pool (set by :func:`_worker_init`).
_IN_POOL = False


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


#: Bytes a generating writer lets accumulate before flushing them to the disk (``_Writer``).
SYNC_BYTES = 32 << 20


class _Writer:
    """Writes a schema-v1 file block by block in sample order, chunks as they are stored
    (``write_direct_chunk``), to ``path.partial``; :meth:`close` renames it to ``path``.

    Every writer (``generate`` with any number of workers, resumed or not, ``merge``,
    ``write_hdf5``) makes the same HDF5 calls for the same samples: the layout, then the chunks
    of each held sample in index order, then ``/done`` for each run of consecutive held
    samples when it ends. So the bytes of the file are a function of its contents alone.
    """

    def __init__(self, path: Path, meta: Meta, compression: tuple[str, int],
                 progress: bool = False, desc: str = "writing", sync_blocks: bool = False) -> None:
        self.path = path
        self.meta = meta
        self.tmp = path.with_name(path.name + ".partial")
        if self.tmp.exists():
            self.tmp.unlink()  # left by a killed write of ours; its samples are still in the source
        self.file = h5py.File(self.tmp, "w")
        # sync_blocks: flush the chunks to the disk once SYNC_BYTES have been written since the
        # last flush (through a second descriptor of the same file), so that the final sync in
        # close() has only the tail and the file's metadata left, instead of the whole file:
        # generate() writes while the next blocks are computed, so this disk time overlaps the
        # solves. Each flush costs a few milliseconds however little it writes, hence the
        # threshold rather than one per block.
        self._fd = os.open(self.tmp, os.O_RDWR) if sync_blocks else None
        self._unsynced = 0
        try:
            create_layout(self.file, meta, compression_level=compression[1],
                          compression=compression[0])
            self.names = meta.input_fields + meta.output_fields
            self.datasets = {p.split("/", 1)[1]: self.file[p].id for p in field_paths(meta)}
            self.temporal = {n: n in meta.temporal_fields for n in self.names}
            self.zeros = (0,) * meta.grid.dim
            self.layout = [(self.datasets[n], self.temporal[n], chunks_per_sample(meta, n))
                           for n in self.names]
        except BaseException:
            self.abort()
            raise
        self.run: tuple[int, int] | None = None  # the run of held samples not yet marked done
        self.bar = tqdm(total=meta.n_samples, desc=desc, unit="sample", disable=not progress,
                        leave=False)

    def write_block(self, start: int, stop: int, block: Block) -> None:
        """Write samples ``start..stop-1`` (after every sample written before)."""
        if self.run is not None and self.run[1] != start:
            self._mark_done()
        if self.run is None:
            self.run = (start, stop)
        self.run = (self.run[0], stop)
        # Sample by sample, whatever the block size: the chunks land in the file in the order
        # they are written, so this order must not depend on how the samples were grouped.
        index, data = block
        view = memoryview(np.ascontiguousarray(data)).cast("B")
        ends = np.cumsum(index[:, 1]).tolist()
        masks = index[:, 0].tolist()
        k = begin = 0
        for i in range(start, stop):
            for dsid, temporal, per in self.layout:
                for t in range(per):
                    offset = ((i, t) if temporal else (i,)) + self.zeros
                    dsid.write_direct_chunk(offset, view[begin:ends[k]], masks[k])
                    begin = ends[k]
                    k += 1
        self._unsynced += len(view)
        if self._fd is not None and self._unsynced >= SYNC_BYTES:
            getattr(os, "fdatasync", os.fsync)(self._fd)
            self._unsynced = 0
        self.bar.update(stop - start)

    def _mark_done(self) -> None:
        a, b = self.run
        self.file["done"][a:b] = True
        self.run = None

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Finish the file and rename it to ``path`` (synced first)."""
        try:
            if self.run is not None:
                self._mark_done()
            self.file.close()
            self._close_fd()
            self.bar.close()
            atomic_write(self.path, lambda t: None, temp=self.tmp)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Close and remove ``path.partial``."""
        try:
            self._close_fd()
            self.file.close()
        finally:
            self.tmp.unlink(missing_ok=True)
            if hasattr(self, "bar"):
                self.bar.close()


def write_hdf5(path: Path, meta: Meta, get_sample: Callable[[int], Mapping[str, np.ndarray] | None],
               progress: bool = False, desc: str = "writing",
               compression: tuple[str, int] = DEFAULT_COMPRESSION) -> None:
    """Write a schema-v1 file through ``path.partial`` and an atomic, durable rename.

    ``get_sample(i)`` returns the fields of sample ``i`` or ``None`` when the file does not
    hold it (shard files). Samples are written in index order, which makes the bytes of the
    file a function of its contents alone. A failed write removes ``path.partial``.
    ``compression``: ``(filter, gzip level)``, a filter of :data:`~.schema.COMPRESSIONS`.
    """
    codec = ChunkCodec(*compression)
    writer = _Writer(path, meta, compression, progress, desc)
    try:
        for i in range(meta.n_samples):
            sample = get_sample(i)
            if sample is not None:
                writer.write_block(i, i + 1, pack([codec.encode_sample(meta, sample)],
                                                   writer.names))
    except BaseException:
        writer.abort()
        raise
    writer.close()


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


def _stated(identity: dict[str, Any]) -> dict[str, Any]:
    """A stored identity (file or manifest) with the parameters added to its problem since it
    was written filled in with the values it was made with (``Problem.added``)."""
    try:
        prob = get_problem(identity["problem"])
    except (KeyError, ValueError):  # another problem's file: compared, and refused, as it is
        return identity
    return {**identity, "params": prob.with_added(identity.get("params", {}))}


def _existing_is_same(path: Path, meta: Meta, filters: tuple[str, int]) -> bool:
    """True when ``path`` is already the finished file, written with ``filters``;
    FileExistsError when it is another (other parameters or another compression)."""
    try:
        with h5py.File(path, "r") as f:
            old = read_meta(f)
            complete = bool(f["done"][...][shard_range(old.n_samples, old.shard).start:
                                           shard_range(old.n_samples, old.shard).stop].all())
            stored = compression_of(f[field_paths(old)[0]])
    except (OSError, ValueError, KeyError) as exc:
        raise FileExistsError(f"{path} exists and is not a neuralhss dataset ({exc}); "
                              "choose another output path") from None
    now = {**meta.identity(), "shard": meta.shard}
    was = {**_stated(old.identity()), "shard": old.shard}
    if now != was:
        raise FileExistsError(f"{path} exists with other parameters ({_differences(was, now)}); "
                              "choose another output path or delete the file")
    if not complete:
        raise FileExistsError(f"{path} exists but is incomplete; it was not written by "
                              "neuralhss generate (which renames only finished files)")
    if stored != filters:
        def name(c: tuple[str, int]) -> str:
            return f"gzip level {c[1]}" if c[0] == "gzip" else c[0]
        keep = f"compression={stored[0]!r}" + (f", compression_level={stored[1]}"
                                                if stored[0] == "gzip" else "")
        raise FileExistsError(f"{path} already holds these samples, compressed with {name(stored)} "
                              f"rather than {name(filters)}; pass {keep} (CLI: --compression) to "
                              "keep it, or delete the file to write it again")
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
    compression: str = "gzip",
    compression_level: int = 1,
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
    compression : {"gzip", "lzf", "none"}, default "gzip"
        Chunk filter (:data:`~.schema.COMPRESSIONS`): gzip + shuffle is read by every HDF5
        tool; lzf + shuffle (an h5py filter) and none write faster and larger files.
    compression_level : int, default 1
        gzip level (1-9); the output is bit-identical for a given filter and level.

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
    compression_level = _check_int("compression_level", compression_level, 1, 9,
                                   "an integer from 1 to 9")
    filter_options(compression, compression_level)  # a ValueError names the filters
    filters = (compression, compression_level if compression == "gzip" else 1)
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

    if path.exists() and _existing_is_same(path, meta, filters):
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
    if filters != DEFAULT_COMPRESSION:  # the default keeps the manifests of earlier versions
        manifest["compression"] = list(filters)
    with _exclusive(parts / ".lock"):
        man_path = parts / MANIFEST
        if man_path.exists():
            old = _stated(json.loads(man_path.read_text()))
            if old != manifest:
                raise FileExistsError(
                    f"{parts} holds an interrupted run with other parameters "
                    f"({_differences(old, manifest)}); re-run with those parameters to resume, "
                    "or delete the folder to start over")
        else:
            text = json.dumps(manifest, sort_keys=True, indent=1)
            atomic_write(man_path, lambda tmp: tmp.write_text(text))
        n_resumed, n_done_blocks = scan_parts(parts, meta, owned, bsize)
        n_todo = len(owned) - n_resumed
        # Listed lazily: memory stays O(blocks in flight) for any number of samples.
        todo = ((a, b) for a, b in iter_blocks(owned, bsize)
                if not block_path(parts, a, b).exists())
        workers = min(workers, max(1, n_blocks(owned, bsize) - n_done_blocks))
        bar = tqdm(total=len(owned), initial=n_resumed, unit="sample", disable=not progress,
                   desc=f"{prob.name} {'x'.join(map(str, meta.grid.shape))}", smoothing=0.1)
        # The file is written while the blocks are computed, each as soon as the blocks before
        # it are written; the block files stay until the end, for a resume.
        try:
            writer = _Writer(path, meta, filters, sync_blocks=True)
            try:
                sink = _InOrder(writer, parts, meta, owned, bsize)
                _run_blocks(prob.name, params, seed, todo, parts, workers, bar, sink)
                sink.finish()
            except BaseException:
                writer.abort()
                raise
            finally:
                bar.close()
            writer.close()
        except (OSError, RuntimeError) as exc:  # h5py raises either for a failed write
            code = _disk_full(exc)
            if code is None:
                raise
            kept = sum(1 for _ in parts.glob("*.npz"))
            raise OSError(code, f"{path}: {os.strerror(code).lower()} while writing (the disk is "
                          "full, a quota or the file-size limit `ulimit -f` was reached); "
                          f"{kept} finished block file(s) are kept in {parts.name}: free space "
                          "or raise the limit and re-run the same command to resume") from exc
        seconds = time.perf_counter() - t0
    shutil.rmtree(parts)
    return GenerateResult(path, n_todo, n_resumed, len(owned), seconds)


def _disk_full(exc: BaseException) -> int | None:
    """The errno if ``exc`` (or what caused it) is a full disk, a quota or a file-size limit.

    h5py reports these inside its message ("errno = 28, error message = ...") rather than in
    ``OSError.errno``, so both are looked at."""
    codes = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in codes:
            return exc.errno
        found = re.search(r"errno = (\d+)", str(exc))
        if found and int(found[1]) in codes:
            return int(found[1])
        exc = exc.__cause__ or exc.__context__
    return None


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
    global _IN_POOL
    _IN_POOL = True
    if lock_fd is not None:
        try:
            os.close(lock_fd)  # flock is shared by every copy of the descriptor
        except OSError:
            pass
    die_with_parent(parent)


class _InOrder:
    """Hands finished blocks to a :class:`_Writer` in sample order: a block that finishes
    before those in front of it waits in memory, and a block found complete on disk (resumed)
    is read back when its turn comes."""

    def __init__(self, writer: _Writer, parts: Path, meta: Meta, owned: range,
                 block_size: int) -> None:
        self.writer, self.parts, self.meta = writer, parts, meta
        self.order = iter_blocks(owned, block_size)
        self.next = next(self.order, None)
        self.buffer: dict[int, tuple[int, Block]] = {}
        self.in_flight: set[int] = set()

    def backlog(self) -> int:
        """Blocks submitted and not yet written and held in memory: in a worker or waiting
        here (a pool worker's finished block waits in its file, not in memory)."""
        return len(self.in_flight) + len(self.buffer)

    def submitted(self, start: int) -> None:
        self.in_flight.add(start)

    def add(self, start: int, stop: int, block: Block | None) -> None:
        """A finished block (``None``: read it from its file when its turn comes)."""
        self.in_flight.discard(start)
        if block is not None:
            self.buffer[start] = (stop, block)
        self._drain()

    def finish(self) -> None:
        self._drain()
        if self.next is not None or self.buffer:  # pragma: no cover - a bug, not a user error
            raise RuntimeError(f"block {self.next} of {self.parts} was never computed")

    def _drain(self) -> None:
        while self.next is not None:
            a, b = self.next
            if a in self.buffer:
                block = self.buffer.pop(a)[1]
            elif a in self.in_flight:
                return
            else:
                path = block_path(self.parts, a, b)
                if not path.exists():
                    return  # not computed yet
                block = load_block(path, self.meta, b - a)
                if block is None:
                    raise RuntimeError(f"{path} was damaged during the run; run the command "
                                       "again to recompute it")
            self.writer.write_block(a, b, block)
            del block  # freed before the next block is loaded
            self.next = next(self.order, None)


def _run_blocks_here(problem: str, params: dict, seed: int, todo: Iterator[tuple[int, int]],
                     parts: Path, bar: tqdm, sink: _InOrder | None) -> None:
    """One worker: compute the blocks in this process while one helper thread encodes the block
    before, saves it and writes it to the file, so that compression and file writes overlap
    the next block's solves (the deflate, the I/O calls and much of NumPy/SciPy's work run
    without the GIL). The thread works through the blocks in order and encodes exactly as a
    worker process would, so the file's bytes are those of any other run. Two blocks at most
    are in memory: the one computed and the one stored (raw float32 samples, the size of the
    encoding buffer)."""

    meta, codec = _run_settings(problem, params, seed, str(parts))

    def store(a: int, b: int, samples: list[dict[str, np.ndarray]]) -> None:
        samples.reverse()  # popped in order: each sample is freed once encoded
        block = encode_block((samples.pop() for _ in range(b - a)), b - a, meta, codec)
        save_block(block_path(parts, a, b), block)
        if sink is not None:
            sink.add(a, b, block)

    with ThreadPoolExecutor(1, thread_name_prefix="neuralhss-writer") as io:
        pending = None
        try:
            for a, b in todo:
                block = _compute_raw(problem, params, seed, a, b)
                if pending is not None:
                    pending.result()  # the block before is stored: at most one waits
                if sink is not None:
                    sink.submitted(a)
                pending = io.submit(store, a, b, block)
                del block  # the thread holds it until it is written
                bar.update(b - a)
            if pending is not None:
                pending.result()
        except BaseException:
            # Let the thread finish its block before the caller closes or removes the file.
            if pending is not None:
                wait([pending])
            raise


def _run_blocks(problem: str, params: dict, seed: int, todo: Iterable[tuple[int, int]],
                parts: Path, workers: int, bar: tqdm, sink: _InOrder | None = None) -> None:
    """Compute the blocks of ``todo`` with ``workers`` processes (1: in this one) and hand each
    to ``sink`` as it finishes. At most ``workers + 1`` blocks are submitted and not yet
    written at any time, which bounds the memory to ``workers + 1`` blocks."""
    todo = iter(todo)
    if workers == 1:
        _run_blocks_here(problem, params, seed, todo, parts, bar, sink)
        return
    ctx = _mp_context()
    # Only forked workers inherit the lock's descriptor; in a spawned one the number is another.
    lock_fd = _LOCK_FD if ctx.get_start_method() == "fork" else None
    window = workers + 1
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(os.getpid(), lock_fd)) as pool:
        pending: set = set()

        def refill() -> None:
            # One block more than workers keeps every worker busy while the writer catches up;
            # submitting all blocks at once would hold one future per block, O(samples).
            while ((sink.backlog() if sink is not None else len(pending)) < window
                   and (block := next(todo, None)) is not None):
                pending.add(pool.submit(_worker, problem, params, seed, *block, str(parts)))
                if sink is not None:
                    sink.submitted(block[0])

        try:
            refill()
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(finished, key=lambda f: f.result()[0]):
                    a, b, block = fut.result()
                    bar.update(b - a)
                    if sink is not None:
                        sink.add(a, b, block)
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
        names = [p.split("/", 1)[1] for p in paths]
        # The merged file takes the filter of the first shard; chunks of shards with the same
        # filter are copied as stored (read_direct_chunk), others are decoded and re-encoded.
        filters = compression_of(files[0][paths[0]])
        codec = ChunkCodec(*filters)
        raw = [all(compression_of(f[p]) == filters for p in paths) for f in files]
        zeros = (0,) * ref.grid.dim

        def sample_chunks(i: int) -> dict[str, list]:
            f = files[owner[i]]
            if not raw[owner[i]]:
                return codec.encode_sample(ref, {n: f[p][i] for n, p in zip(names, paths,
                                                                           strict=True)})
            out_ = {}
            for n, p in zip(names, paths, strict=True):
                dsid = f[p].id
                if n in ref.temporal_fields:
                    out_[n] = [dsid.read_direct_chunk((i, t, *zeros))
                               for t in range(f[p].shape[1])]
                else:
                    out_[n] = [dsid.read_direct_chunk((i, *zeros))]
            return out_

        meta = Meta(**{**ref.__dict__, "shard": None})
        meta.field_attrs = {p.split("/", 1)[1]: {k: str(v) for k, v in files[0][p].attrs.items()
                                                 if k in ("description", "units")}
                            for p in paths}
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = _Writer(out, meta, filters, progress, desc="merging")
        try:
            for i in range(meta.n_samples):
                writer.write_block(i, i + 1, pack([sample_chunks(i)], names))
        except BaseException:
            writer.abort()
            raise
        writer.close()
    finally:
        for f in files:
            f.close()
    return out
