"""What every result records: kit git hash (and dirty flag), package versions, device, seeds, wall time, peak memory."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

PACKAGES = ["torch", "transformers", "peft", "lm_eval", "bitsandbytes", "safetensors", "numpy", "papermill",
            "jupyter-book", "altair"]
ROOT = Path(__file__).resolve().parent.parent


def git_state() -> dict:
    """``{"commit": hash or None, "dirty": bool}`` of the kit's checkout (None outside a git clone)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--", "arena"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info() -> dict:
    import torch

    info = {"platform": platform.platform(), "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info |= {"device": "cuda", "gpu": torch.cuda.get_device_name(0)}
    else:
        info |= {"device": "cpu", "gpu": None}
    return info


def peak_memory_mb() -> dict:
    """Peak resident memory of this process (MB) since the last ``reset_peak_memory`` (Linux's VmHWM; elsewhere the
    process's lifetime peak) and, on CUDA, peak GPU memory allocated to tensors and reserved by torch's caching
    allocator (the larger, closer to what the card must hold; the CUDA context adds ~0.5 GB more)."""
    import torch

    out = {"peak_rss_mb": _high_water_mark_mb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["peak_gpu_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    return out


def reset_peak_memory() -> None:
    """Start a new peak: a worker trains several methods in turn, and each method's peak must be its own. Linux resets
    the resident high-water mark when "5" is written to /proc/self/clear_refs; CUDA keeps its own counters."""
    import torch

    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:  # not Linux, or not allowed: the peak stays the process's lifetime peak
        pass
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _high_water_mark_mb() -> float | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def provenance() -> dict:
    return {"git": git_state(), "versions": versions(), "device": device_info(), "time": time.strftime("%FT%T%z")}
