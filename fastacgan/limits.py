"""What a container or a batch job lets this process use, from its cgroup (v1 or v2) and its ancestors, where a
limit set on a parent binds as well: the memory it may still take (`host_memory_available`: the resident
loader's budget and a compressed archive's keep to half of it) and the CPU time (`cpu_limit`: a Docker
`--cpus`, a Kubernetes CPU limit), which the CPU count the process sees does not show.

On a CPU limit, fewer threads than cores is faster: PyTorch starts one thread per core it may run on, and a
cgroup's quota is spent by all of them at once, after which every thread waits for the next period (100 ms). On
this project's 2-core machine, in a cgroup of 1 CPU, the default digits run trained at 485 images/s with torch's 2
threads and 570 with 1; where a 32-core node gives a container 2 CPUs, torch starts 16. `fit_threads` sets
torch's threads (and `workers.usable_cpus` the decoding workers) to the limit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import torch

PROC, CGROUPS = Path("/proc"), Path("/sys/fs/cgroup")


def _cgroup_folders(controller: str, proc: Path, cgroups: Path) -> Iterator[tuple[int, Path]]:
    """(cgroup version, folder) for this process's cgroup in the unified hierarchy (v2) and in the v1 hierarchy of
    `controller`, each from the process's own cgroup up to the hierarchy's root. (Inside a container the path that
    /proc names may not exist under the container's own mount: its parents, up to the root, are then its limits.)"""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            version, root = 2, cgroups
        elif controller in controllers.split(","):
            version, root = 1, cgroups / controller
        else:
            continue
        folder = root / path.lstrip("/")
        for d in (folder, *folder.parents):
            yield version, d
            if d == root:
                break


def host_memory_available(proc: Path = PROC, cgroups: Path = CGROUPS) -> int | None:
    """Bytes of memory this process may still take, or None where that cannot be read (macOS): /proc/meminfo's
    MemAvailable and, under a memory limit (a container's, a Slurm job's --mem: its cgroup's or an ancestor's), the
    limit less what the cgroup holds beyond its reclaimable file cache (as `docker stats` counts it)."""
    found = []
    try:
        with open(proc / "meminfo") as f:
            found += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    files = {2: ("memory.max", "memory.current", "inactive_file"),
             1: ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")}  # fmt: skip
    for version, d in _cgroup_folders("memory", proc, cgroups):
        left = _cgroup_left(d, *files[version])
        if left is not None:
            found.append(left)
    return min(found) if found else None


def memory_budget() -> int:
    """Bytes a compressed archive's images may take in memory: half of what this process may still take (within
    its container's or job's memory limit: host_memory_available), else half of the machine's memory."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system that says
        physical = 1 << 63
    return min(physical, host_memory_available() or physical) // 2


def _cgroup_left(d: Path, limit_file: str, usage_file: str, inactive_key: str) -> int | None:
    """What is left under cgroup folder d's memory limit, or None (no limit, or nothing to read)."""
    try:
        limit, usage = (d / limit_file).read_text().strip(), int((d / usage_file).read_text())
    except (OSError, ValueError):
        return None
    if not limit.isdigit() or int(limit) >= 2**60:  # v2's "max"; v1's unlimited is 2**63 rounded to a page
        return None
    try:
        stat = dict(line.split() for line in (d / "memory.stat").read_text().splitlines())
        inactive = int(stat.get(inactive_key, 0))
    except (OSError, ValueError):
        inactive = 0
    return int(limit) - (usage - inactive)


def cpu_limit(proc: Path = PROC, cgroups: Path = CGROUPS) -> float | None:
    """The CPUs' worth of time per period that this process's cgroup (or an ancestor's) may use: 2.0 for `docker
    run --cpus 2`, a Kubernetes limit of 1500m 1.5; None without a limit (or where it cannot be read)."""
    found = []
    for version, d in _cgroup_folders("cpu", proc, cgroups):
        try:
            if version == 2:
                quota, period = (d / "cpu.max").read_text().split()[:2]
            else:
                quota = (d / "cpu.cfs_quota_us").read_text().strip()
                period = (d / "cpu.cfs_period_us").read_text().strip()
            if quota not in ("max", "-1") and int(period) > 0:
                found.append(int(quota) / int(period))
        except (OSError, ValueError):
            continue
    return min(found) if found else None


def _whole(limit: float) -> int:
    """A CPU limit as a number of threads: rounded up (1.5 CPUs: 2), at least 1."""
    return max(1, math.ceil(limit - 1e-9))


def cpus_within_limit(cores: int) -> int:
    """`cores` (those the process may run on), at most the cgroup's CPU limit rounded up."""
    limit = cpu_limit()
    return cores if limit is None else min(cores, _whole(limit))


def fit_threads(log) -> None:
    """Torch's intra-op threads down to the cgroup's CPU limit, where it has more (not where OMP_NUM_THREADS or
    MKL_NUM_THREADS chose them), with a line saying so."""
    threads, limit = torch.get_num_threads(), cpu_limit()
    if limit is None or os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return
    fit = _whole(limit)
    if threads > fit:
        torch.set_num_threads(fit)
        log(f"note: this process may use {limit:g} CPU(s) (its cgroup's CPU limit: a container's --cpus), fewer "
            f"than torch's {threads} threads, which would wait on each other: set to {fit} (OMP_NUM_THREADS sets "
            "them)")  # fmt: skip
