"""Shared timing and reporting for the benchmarks (timings as ratios against a baseline run alongside).

Every benchmark compares against a named baseline measured in the same run, reports medians
over repeats after a warm-up, the machine, and peak memory, and writes one JSON file to
``benchmarks/results/`` plus a one-line summary on stdout.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median, min and max wall time in seconds of ``fn()`` over ``repeats`` calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "repeats": repeats}


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, dict[str, float]]:
    """Time each candidate once per round, alternating, so that machine-load drift hits all
    alike; one warm-up call each first. Returns median/min/max seconds per candidate."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v),
                "repeats": rounds} for k, v in times.items()}


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "processor": platform.processor() or platform.machine(),
    }
    try:
        import numpy as np
        import scipy

        info["numpy"] = np.__version__
        info["scipy"] = scipy.__version__
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover
        pass
    return info


def write_result(name: str, payload: dict[str, Any], summary: str) -> Path:
    """Write ``benchmarks/results/<name>.json`` (with machine info) and print the summary line."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "machine": machine(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S"), **payload}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"{name}: {summary}  [{path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}]")
    return path


def rss_now_mib() -> float:
    """Resident set size of this process now, in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def vm_hwm_mib() -> float:
    """Peak RSS of this process image. Unlike ru_maxrss, which a child inherits from the
    parent at fork and keeps across exec, VmHWM starts afresh in the new process."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return peak_rss_mib()


def step_memory(step: Callable[[], Any], repeats: int) -> dict[str, float]:
    """Peak memory of ``repeats`` calls of ``step`` in this (fresh, single-candidate) process:
    total, after set-up (now), and the increase ``working_mib`` that the calls cause."""
    base = rss_now_mib()
    for _ in range(repeats):
        step()
    peak = vm_hwm_mib()
    return {"peak_rss_mib": peak, "after_setup_mib": base, "working_mib": peak - base}
