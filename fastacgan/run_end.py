"""How a training run ends before it is done: the stop signals on which it finishes its step, saves a checkpoint and
stops, and the error line (with the exit status) of what else stopped it: a lost decoding worker, bad input, a
write that failed, memory. The Trainer's handler and the loop that honours a signal are in fastacgan.train."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING

import torch

from . import checkpoint as ckpt
from .config import TrainConfig
from .data import DataError
from .devices import memory_error, memory_error_text
from .run_state import TrainingError
from .runlog import echo_quietly
from .workers import default_workers, lost_worker

if TYPE_CHECKING:
    from .train import Trainer


class Aborted(KeyboardInterrupt):
    """A second stop signal: the run stops at once, without finishing its step or saving."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# a run finishes its step, saves a checkpoint and stops on these: Ctrl-C; SIGTERM (a cluster's preemption, `kill`,
# `timeout`); SIGUSR1 (Slurm's warning before a job's time limit, `#SBATCH --signal=USR1@120`, whose default action
# would end the run at once, unsaved); SIGHUP (the terminal closed: an ssh connection dropped), unless the run was
# started to ignore it (nohup)
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGHUP") if hasattr(signal, name)
)


def in_main_thread() -> bool:
    """Signal handlers can be set only there (a run started from a notebook's worker thread cannot)."""
    return threading.current_thread() is threading.main_thread()


def newest_checkpoint(trainer: Trainer | None, resume: str = "--resume") -> str:
    """For a run that stops without saving: where `resume` (the options to give) would continue from."""
    if trainer is None or not trainer.dist.is_main:
        return ""
    kept = ckpt.list_checkpoints(trainer.ckpt_dir)
    if not kept:
        return "; no checkpoint was saved"
    return f"; the newest checkpoint is {kept[-1]} ({resume} continues from it)"


def aborted_line(trainer: Trainer | None) -> str:
    """The line of a run that a second stop signal (or a Ctrl-C before the run's handlers or after them) ended:
    what it lost. A signal that came after the checkpoint of the step reached (while samples.gif was written, say)
    lost nothing trained: the checkpoint of the step reached is there (saved by this run, or resumed from)."""
    if trainer is not None and trainer.dist.is_main:
        path = ckpt.checkpoint_path(trainer.ckpt_dir, trainer.step)
        if path.is_file():  # (written whole or not at all: atomic_write_bytes)
            return (
                f"aborted; nothing trained is lost: {path} holds step {trainer.step}, the last (--resume continues "
                "from it)"
            )
    return f"aborted without saving{newest_checkpoint(trainer)}"


def out_of_memory_line(trainer: Trainer | None, cfg: TrainConfig, e: BaseException) -> str:
    """The error line of a run that ran out of memory: where, with what, and what fits in less."""
    said = memory_error_text(e)
    if trainer is None:  # reading, decoding and placing the data
        return (f"out of memory before training, reading the data: {said}. --cache-gb (now {cfg.cache_gb:g}) bounds "
                "the decoded images kept in memory; --loader torch decodes them as it goes")  # fmt: skip
    cfg = trainer.cfg  # (a resume's: the options it took from its checkpoint too)
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[trainer.amp_dtype]
    size = trainer.spec.image_size
    amp = ", as may --amp (half-precision activations)" if trainer.amp_dtype is None else ""
    then = newest_checkpoint(trainer, "--resume --batch-size N")
    return (f"out of memory on {trainer.device} in step {trainer.step + 1} (batch {cfg.batch_size} of {size}x{size} "
            f"images, preset {trainer.preset}, {precision}): {said}. The memory a step takes grows with the batch: a "
            f"smaller --batch-size fits{amp}{then}")  # fmt: skip


def say_why(e: Exception, trainer: Trainer | None, cfg: TrainConfig) -> int | None:
    """The error line of what stopped a run, and the exit status; None for a bug (its traceback is the report)."""
    lost = lost_worker(e, default_workers(cfg.workers))  # (first: receiving a dead worker's batch raises OSErrors)
    if lost is not None:
        why = lost + newest_checkpoint(trainer)
    elif isinstance(e, (DataError, ValueError, FileNotFoundError, TrainingError)):
        echo_quietly(f"error: {e}", sys.stderr)
        return 2 if not isinstance(e, TrainingError) else 1
    elif isinstance(e, OSError):  # writing the run's outputs: a full disk, a lost mount, a permission taken away
        why = f"{f'{e.filename}: ' if e.filename else ''}{e.strerror or e}{newest_checkpoint(trainer)}"
    elif memory_error(e):
        why = out_of_memory_line(trainer, cfg, e)
    else:
        return None
    echo_quietly(f"error: {why}", sys.stderr)
    return 1
