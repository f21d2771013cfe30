"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

Every file the package writes that another process (or a resumed run) may read goes through
:func:`atomic_write`: the content is written to a temporary file in the same folder (a rename
is atomic only within one file system), made durable, then renamed over the target with
:func:`os.replace`. A failed write removes its temporary file; a killed one leaves it behind
under a name its owner recognises and clears on the next run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "fsync_file"]


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a closed file's data to the disk.

    Parameters
    ----------
    path : path-like
        The file; it is opened for writing because some platforms refuse to sync a read-only
        handle.
    """
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *,
                 temp: str | os.PathLike | None = None, durable: bool = True) -> Path:
    """Write ``path`` through a temporary file and an atomic rename.

    Parameters
    ----------
    path : path-like
        The file to (re)place.
    write : callable
        ``write(temp)`` writes the whole content to the path it is given and closes it.
    temp : path-like, optional
        The temporary file, in the folder of ``path``; ``PATH.tmp`` by default. Callers that
        clean up after a kill pass the name they look for.
    durable : bool
        Sync the temporary file before the rename, so that the new content survives a power
        failure as well as a killed process. Callers whose file is checked and recomputed
        when torn may skip the cost.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp") if temp is None else Path(temp)
    if tmp.parent != path.parent:
        raise ValueError(f"temporary file {tmp} is not in the folder of {path}: the rename "
                         "would not be atomic")
    try:
        write(tmp)
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
