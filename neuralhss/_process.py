"""Process lifetimes shared by the package's worker pools."""

from __future__ import annotations

import os
import sys
import threading
import time


def die_with_parent(parent: int) -> None:
    """Make this (worker) process exit when process ``parent`` dies.

    A pool worker whose parent was killed (``kill -9``, or a plain SIGTERM that skips the
    pool's shutdown) would otherwise keep computing jobs whose results nobody receives, holding
    cores and files. On Linux the kernel sends SIGKILL on the parent's death (``prctl``);
    elsewhere a daemon thread polls for the re-parenting that follows it. Meant as a
    ``ProcessPoolExecutor`` initializer: ``initializer=die_with_parent,
    initargs=(os.getpid(),)``.
    """
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
