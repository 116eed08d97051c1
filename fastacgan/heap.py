"""On a CPU: keep the memory that tensors free in the process's heap, for the next step to reuse.

PyTorch's CPU allocator takes every tensor from malloc and gives it back when the tensor dies. glibc's malloc
serves large blocks (from 128 KiB, its threshold creeping up to at most 32 MiB) with mmap and returns them with
munmap at once, and returns freed memory at the top of the heap past a trim threshold; so a training step, which
makes the same activations and gradients every step, has the kernel map and zero-fill their pages again each
time: 2,000-6,000 page faults per step for digits, cifar10 and isic64 (47,000 for isic128) and up to a fifth of
the step's time. Measured with benchmarks/cpu_race.py on this project's 2-core CPU (AMD EPYC, AVX512-BF16), a
bf16 step took 32-34 ms instead of 44 (digits, batch 64), 97 instead of 130 (cifar10, 64), 185 instead of 218
(isic64, 16), with the same peak memory (isic128: 13% more); `python -m fastacgan.evaluate` of the default run
17-18 s instead of 36-40 (14 million page faults fewer).

`keep_freed_memory()` sets two of malloc's options with mallopt (glibc only): blocks up to 1 GiB come from the
heap, and up to 1 GiB of free memory at its top stays mapped. It changes no result, only where memory comes from.
It is skipped where malloc is not glibc's (another libc, or jemalloc / tcmalloc / mimalloc preloaded, which cache
on their own) and where the user has tuned glibc's malloc through its environment variables. `python -m
fastacgan.train` calls it on a CPU (`--no-malloc-cache` to leave malloc as it is), as do `python -m
fastacgan.evaluate` and `python -m fastacgan.sample`.

`byte_size()` writes an amount of memory for the messages that name one (what a container or job lets the process
take: fastacgan.limits).
"""

from __future__ import annotations

import ctypes
import os
import platform

LIMIT = 1 << 30  # bytes: the largest block taken from the heap, and the free memory its top may keep
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")
_done: str | None = None  # what the first call did: once per process


def keep_freed_memory(environ: dict[str, str] | None = None) -> str:
    """Set glibc's malloc to keep freed memory for reuse (see the module's docstring), once per process.
    Returns what was done, for the run's log: "on", or "off (why)"."""
    global _done
    if _done is not None:
        return _done
    env = os.environ if environ is None else environ
    why = _why_not(env)
    if why is None:
        try:
            libc = ctypes.CDLL(None)  # the libc this process runs on
            # glibc versions that cap the mmap threshold at 32 MiB refuse 1 GiB (mallopt returns 0)
            mmap_set = libc.mallopt(_M_MMAP_THRESHOLD, LIMIT) or libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
            ok = mmap_set and libc.mallopt(_M_TRIM_THRESHOLD, LIMIT)
            why = None if ok else "mallopt refused the settings"
        except (OSError, AttributeError) as e:
            why = f"mallopt not available: {e}"
    _done = "on" if why is None else f"off ({why})"
    return _done


def is_set() -> bool:
    """Whether keep_freed_memory() has set the cache in this process (a process-wide setting: it stays)."""
    return _done == "on"


def _why_not(env) -> str | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "malloc is not glibc's"
    preloaded = [a for a in _OTHER_ALLOCATORS if a in env.get("LD_PRELOAD", "")]
    if preloaded:
        return f"{preloaded[0]} is preloaded"
    tuned = [v for v in _USER_SETTINGS if v in env]
    if "glibc.malloc" in env.get("GLIBC_TUNABLES", ""):
        tuned.append("GLIBC_TUNABLES")
    if tuned:
        return f"{tuned[0]} is set"
    return None


def byte_size(n: float) -> str:
    """An amount of memory as the messages give it: 4.00 GiB, 216 MiB, 32 KiB (binary units, as free -h, Docker's
    --shm-size and PyTorch's allocator count)."""
    if n >= 2**40:
        return f"{n / 2**40:.1f} TiB"
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    if n >= 2**20:
        return f"{n / 2**20:.0f} MiB"
    return f"{n / 2**10:.0f} KiB" if n >= 2**10 else f"{n:.0f} bytes"
