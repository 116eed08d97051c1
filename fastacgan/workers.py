"""The decoding worker processes: how they start (fork on Linux), what they do with stop signals, how their
batches cross to this process (shared memory or pipes), how many there are (--workers -1: one per usable core) and
what the death of one most likely means. decode.py and loaders.py run them."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import sys
import time

import numpy as np
import torch

from .heap import byte_size
from .limits import cpus_within_limit


def worker_context(workers: int) -> str | None:
    """DataLoader's multiprocessing_context for the decoding workers: fork on Linux, where Python 3.14 made
    forkserver the default. Forked workers share the listing and a compressed archive's bytes with the main process
    (forkserver would pickle a copy of them into every worker) and start without importing torch again; they use
    no threads and no GPU. Elsewhere (macOS: spawn) the platform's own, and none without workers."""
    if workers > 0 and not _kill_workers_left_at_exit.registered:
        atexit.register(_kill_workers_left_at_exit)  # after multiprocessing's own, so it runs before it
        _kill_workers_left_at_exit.registered = True
    if workers > 0 and sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return None


def _kill_workers_left_at_exit() -> None:
    """At exit, multiprocessing stops daemonic child processes with SIGTERM and waits for them. The decoding workers
    ignore SIGTERM (leave_stop_signals_to_the_parent), so one whose DataLoader was never shut down (an uncaught
    exception's traceback keeps it alive) made the process print its traceback and then wait forever: a job that
    never ends. Here, first, the daemonic children get SIGTERM as multiprocessing would send it, and those still
    there a second later (the workers) SIGKILL: at exit they have nothing left to do. (A command that returns from
    main() has shut its DataLoaders down already: this acts only after an uncaught exception.)"""
    left = [p for p in multiprocessing.active_children() if p.daemon]
    if left and hasattr(signal, "SIGCHLD"):  # the DataLoader's handler would take their end for a failure
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for p in left:
        p.terminate()
    deadline = time.monotonic() + 1.0
    for p in left:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()


_kill_workers_left_at_exit.registered = False


def _through_the_dataloader(e: BaseException) -> bool:
    tb, where = e.__traceback__, os.path.join("torch", "utils", "data", "")
    while tb is not None:
        if where in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def lost_worker(e: BaseException, workers: int) -> str | None:
    """What a decoding worker's death most likely means, for the error line, or None for another error. The
    DataLoader says only "DataLoader worker (pid N) is killed by signal: Killed." (or "... exited unexpectedly"),
    and where the worker died while its last batch was being received, before the DataLoader saw it gone, what
    receiving it met: EOFError, or "Connection reset by peer" from the worker's end of a shared-memory handle."""
    text = " ".join(str(e).split()).split(". ")[0].rstrip(". ")  # (a bus error's advice follows: ours is below)
    # (not one a worker raised itself, which the DataLoader raises again as "Caught EOFError in DataLoader worker...")
    if isinstance(e, (EOFError, ConnectionError)) and _through_the_dataloader(e) and not text.startswith("Caught "):
        text = f"its last batch could not be received: {type(e).__name__}{': ' * bool(text)}{text}"
    elif not isinstance(e, RuntimeError) or not text.startswith("DataLoader worker (pid"):
        return None
    if "signal: Killed" in text:
        why = ("SIGKILL, most often from the kernel's out-of-memory killer (`dmesg` names it): each worker decodes "
               "images of its own, so fewer --workers take less memory")  # fmt: skip
    elif "signal: Bus error" in text:
        why = (
            "a bus error in a worker is most often shared memory (/dev/shm) too small for the batches it hands "
            "over: a Docker container's is 64 MB (docker run --shm-size 2g, or --ipc host); --workers 0 needs none"
        )
    else:  # the DataLoader iterated in a thread (the streaming loader's) does not learn the signal
        why = ("most often the kernel's out-of-memory killer (`dmesg` names it: fewer --workers take less memory) or, "
               "after \"Unexpected bus error\", shared memory (/dev/shm) too small for the batches a worker hands over "
               "(a Docker container's is 64 MB: docker run --shm-size 2g, or --ipc host); --workers 0 decodes in "
               "this process, where an error shows")  # fmt: skip
    return f"a decoding worker process stopped ({text}; --workers {workers}): {why}"


def leave_stop_signals_to_the_parent(worker_id: int = 0) -> None:
    """A decoding worker process's start (DataLoader's worker_init_fn): Ctrl-C, SIGTERM and SIGHUP go to a whole
    process group (a terminal, its closing, Slurm preempting a job), and a worker they killed would stop the run with
    "DataLoader worker exited unexpectedly" instead of its checkpoint. The workers ignore them; the main process stops
    them."""
    for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGHUP"):  # (train.STOP_SIGNALS: Slurm sends SIGUSR1 to them all)
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


class DecodedBatch:
    """A batch as a decoding worker sends it: the positions in the batch and the indices of the good images, their
    pixels (uint8 [n, size, size, C]) or None, the errors, the batch size; unpacked in that order, as tensors. The
    pixels cross from the worker as a tensor, through shared memory (/dev/shm), or, where that has too little room
    (see pixels_through_shared_memory), as a numpy array pickled through the worker's pipe."""

    def __init__(self, pos: np.ndarray, idx: np.ndarray, x, errors: list[str], n: int):
        self.pos, self.idx, self.x, self.errors, self.n = pos, idx, x, errors, n

    def pin_memory(self) -> DecodedBatch:
        """In the DataLoader's pinning thread (a CUDA run): the pixels into page-locked memory, for an asynchronous
        copy to the GPU."""
        if self.x is not None:
            self.x = torch.as_tensor(self.x).pin_memory()
        return self

    def __iter__(self):
        x = None if self.x is None else torch.as_tensor(self.x)
        return iter((torch.from_numpy(self.pos), torch.from_numpy(self.idx), x, self.errors, self.n))


def collate_decoded(items, shared_memory: bool = True) -> DecodedBatch:
    """In the worker: the batch's decoded images as one tensor (a tensor per image would cost a shared-memory
    segment each) or, without shared_memory, one numpy array; and what could not be decoded."""
    good = [(k, i, a) for k, (i, a, _) in enumerate(items) if a is not None]
    pos = np.array([k for k, _, _ in good], dtype=np.int64)
    idx = np.array([i for _, i, _ in good], dtype=np.int64)
    x = np.stack([a for _, _, a in good]) if good else None
    if x is not None and shared_memory:
        x = torch.from_numpy(x)
    return DecodedBatch(pos, idx, x, [e for _, a, e in items if a is None], len(items))


def pixels_through_shared_memory(workers: int, batch: int, size: int, channels: int, log=print) -> bool:
    """Whether the decoding workers send their pixels as tensors, through /dev/shm (the faster way), or as numpy
    arrays through their pipes: where /dev/shm has less room than twice what is in flight (two batches a worker
    and two taken, in each of torchrun's processes on this machine), as in a Docker container (64 MB: a few
    batches of 128x128 images). There a worker's send failed with "unable to allocate shared memory", its batch
    was lost, and the run waited for it forever."""
    if workers == 0:
        return True  # decoded in this process: nothing crosses
    try:
        st = os.statvfs("/dev/shm")
    except (OSError, AttributeError):  # no /dev/shm (macOS: POSIX shared memory, no such limit to read)
        return True
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)  # torchrun's processes on this machine share it
    free, need = st.f_bavail * st.f_frsize, ranks * (2 * workers + 2) * batch * size * size * channels
    if 2 * need <= free:
        return True
    log(f"note: /dev/shm has {byte_size(free)} free, too little for the decoding workers' batches "
        f"({byte_size(need)} in flight), which go through pipes instead, a copy or two more for this process "
        "(docker run --shm-size 2g, or --ipc host, gives room)")  # fmt: skip
    return False


def usable_cpus() -> int:
    """The CPU cores this process may run on: a Slurm job's or `taskset`'s share of the node, not the node's count
    (os.cpu_count: 128 on a node where the job has 4, and 8 workers would share them, as the DataLoader warns),
    and at most its cgroup's CPU limit (a container's --cpus 2 on a 32-core host: 2)."""
    try:
        cores = len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # macOS, Windows
        cores = os.cpu_count() or 1
    return cpus_within_limit(cores)


def default_workers(workers: int) -> int:
    """--workers -1: one decoding worker process per usable core, at most 8."""
    return min(8, usable_cpus()) if workers < 0 else workers


def workers_note(workers: int) -> str | None:
    """The line that says --workers is more than the cores this process may use (PyTorch's DataLoader warned so
    twice, with its source path; the commands hide that: runlog.plain_warnings), or None."""
    cpus = usable_cpus()
    if workers <= cpus:
        return None
    return (f"note: --workers {workers} is more than the {cpus} CPU core(s) this process may use: the decoding "
            "workers share them (no faster; more memory)")  # fmt: skip
