"""The bytes a dataset file stores and the crash-safe block files they travel in.

:class:`ChunkCodec` encodes a sample's fields into chunk bytes that HDF5's filter pipeline
decodes (so the writer only copies bytes); a block of consecutive samples is saved to
``FILE.h5.parts/<start>-<stop>.npz`` atomically (it exists whole or not at all) and read back,
checked, when a run resumes.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
from isal import isal_zlib

from ..io import atomic_write
from .schema import Meta, filter_options


def block_of(start: int, indices: range, block_size: int) -> tuple[int, int] | None:
    """The block of :func:`blocks_of` that begins at ``start``, or ``None`` if none does."""
    if start not in indices or (start != indices.start and start % block_size):
        return None
    return start, min(indices.stop, (start // block_size + 1) * block_size)


#: gzip levels up to this one are compressed by ISA-L (its levels 1-3), higher ones by zlib.
ISAL_MAX_LEVEL = 3


class ChunkCodec:
    """Encodes a float32 chunk into the bytes HDF5 stores for it under a file's filter, so that
    workers compress and the file is written with ``write_direct_chunk``.

    ``gzip``: the HDF5 shuffle filter (byte ``k`` of every value, for ``k`` = 0..3) then a zlib
    (deflate) stream, which HDF5's deflate filter and every other zlib reader decode. Levels
    1-3 are compressed by Intel's ISA-L (``isal``; its levels 1-3), levels 4-9 by zlib (HDF5's
    own encoder, byte for byte): at level 1 zlib cost more than the fast Poisson solves
    themselves, ISA-L compresses to nearly the same size in a fraction of the time
    (``benchmarks/bench_generate.py`` measures both).
    ``none``: the raw bytes. Any other filter (``lzf``): HDF5 itself compresses the chunk in an
    in-memory file and the stored bytes are read back. Each chunk is ``(filter mask, bytes)``.
    """

    def __init__(self, compression: str = "gzip", level: int = 1) -> None:
        self.compression = compression
        self.level = level
        self.options = filter_options(compression, level)
        self._scratch: dict[tuple[int, ...], h5py.Dataset] = {}
        self._file: h5py.File | None = None

    def encode(self, chunk: np.ndarray) -> tuple[int, bytes]:
        chunk = np.ascontiguousarray(chunk, dtype=np.float32)
        if self.compression == "gzip":
            shuffled = chunk.view(np.uint8).reshape(-1, 4).T.tobytes()
            if self.level <= ISAL_MAX_LEVEL:
                return 0, isal_zlib.compress(shuffled, self.level)
            return 0, zlib.compress(shuffled, self.level)
        if self.compression == "none":
            return 0, chunk.tobytes()
        ds = self._scratch.get(chunk.shape)
        if ds is None:
            if self._file is None:  # rdcc_nbytes=0: every write goes through the filters at once
                self._file = h5py.File(f"chunks-{id(self)}", "w", driver="core",
                                       backing_store=False, rdcc_nbytes=0)
            ds = self._file.create_dataset(f"c{len(self._scratch)}", shape=chunk.shape,
                                           dtype=np.float32, chunks=chunk.shape, **self.options)
            self._scratch[chunk.shape] = ds
        ds[...] = chunk
        mask, data = ds.id.read_direct_chunk((0,) * chunk.ndim)
        return int(mask), bytes(data)

    def encode_sample(self, meta: Meta, fields: Mapping[str, np.ndarray],
                      names: Sequence[str] | None = None) -> dict[str, list]:
        """The chunks of one sample: per field, one chunk (or one per snapshot of a trajectory);
        all fields of ``meta`` or those in ``names``."""
        out = {}
        for name in meta.input_fields + meta.output_fields if names is None else names:
            arr = np.asarray(fields[name])
            if name in meta.temporal_fields:
                out[name] = [self.encode(a) for a in arr]
            else:
                out[name] = [self.encode(arr)]
        return out

    def decode(self, mask: int, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """The float32 chunk of :meth:`encode`'s output (gzip and none; used by ``merge``)."""
        if self.compression == "none" or mask:
            return np.frombuffer(data, np.float32).reshape(shape)
        if self.compression == "gzip":
            raw = np.frombuffer(zlib.decompress(data), np.uint8)
            return raw.reshape(4, -1).T.copy().view(np.float32).reshape(shape)
        raise ValueError(f"cannot decode {self.compression} chunks")


#: A block of samples as written: ``(index, data)``, the filter mask and byte size of each chunk
#: (int64, shape ``(chunks, 2)``) and their concatenated bytes (uint8), the chunks in the order
#: they are written: sample by sample, each sample's fields in channel order, each field's
#: snapshots in time order.
Block = tuple[np.ndarray, np.ndarray]


def chunks_per_sample(meta: Meta, name: str) -> int:
    return len(meta.times) if name in meta.temporal_fields and meta.times is not None else 1


def pack(per_sample: Sequence[Mapping[str, list]], names: Sequence[str]) -> Block:
    chunks = [c for s in per_sample for name in names for c in s[name]]
    index = np.array([(m, len(d)) for m, d in chunks], np.int64).reshape(len(chunks), 2)
    return index, np.frombuffer(b"".join(d for _, d in chunks), np.uint8)


def block_path(parts: Path, start: int, stop: int) -> Path:
    return parts / f"{start:010d}-{stop:010d}.npz"


def save_block(path: Path, block: Block) -> None:
    def write(tmp: Path) -> None:
        # What np.savez writes (an uncompressed zip of .npy members: the chunks are compressed
        # already), without the copy that np.savez makes of each array on its way to the zip.
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, arr in (("index", block[0]), ("data", block[1])):
                with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array_header_1_0(
                        fh, np.lib.format.header_data_from_array_1_0(arr))
                    fh.write(memoryview(np.ascontiguousarray(arr)).cast("B"))

    # Not durable: a killed process loses nothing that reached the page cache, and a block cut
    # short by a power failure fails load_block on resume and is recomputed. The hidden
    # ".tmp" name is what scan_parts clears after a kill.
    atomic_write(path, write, temp=path.with_name(f".{path.name}.{os.getpid()}.tmp"),
                 durable=False)


def load_block(path: Path, meta: Meta, n: int) -> Block | None:
    """The block of ``n`` samples in ``path``, or ``None`` if it is torn, garbled or another's
    (the zip's CRCs are checked as it is read)."""
    count = n * sum(chunks_per_sample(meta, name)
                    for name in meta.input_fields + meta.output_fields)
    try:
        with np.load(path) as z:
            if sorted(z.files) != ["data", "index"]:
                return None
            index, data = z["index"], z["data"]
    except Exception:  # truncated or garbled zip: recompute the block
        return None
    if (index.shape != (count, 2) or index.dtype != np.int64 or data.ndim != 1
            or data.dtype != np.uint8 or (index < 0).any() or (index[:, 0] >= 2**32).any()
            or int(index[:, 1].sum()) != data.size):
        return None
    return index, data


def scan_parts(parts: Path, meta: Meta, owned: range, block_size: int) -> tuple[int, int]:
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
            if (block_of(a, owned, block_size) == (a, b)
                    and load_block(Path(entry.path), meta, b - a) is not None):
                n_samples += b - a
                n_valid += 1
            else:
                os.unlink(entry.path)
    return n_samples, n_valid
