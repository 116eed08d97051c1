"""Train an AC-GAN: `python -m fastacgan.train [--amp] [--data PATH] [--out DIR] [--resume] ...`.

The data, the model and the loop: a run's set-up, its output folder, and the loop's handling of Ctrl-C and the other
stop signals. What it leaves behind as it goes (progress, metrics, samples) is in fastacgan.outputs, its checkpoints
and resume in fastacgan.run_state, the stop signals and the error lines of a run that stops early in
fastacgan.run_end. The step itself (D maximises L_S + L_C, G
maximises L_C - L_S; Odena et al. 2017) and the performance flags live in fastacgan.step. Metrics stay on the device
and are read every --log-every steps.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as tdist

from . import __version__, heap, limits, workers
from . import checkpoint as ckpt
from .config import (
    PRESETS,
    TrainConfig,
    check_run,
    parse_args,
    resolve_spec,
    validate_config,
)
from .data import DataError, open_catalog
from .devices import (
    select_amp,
    select_device,
)
from .distributed import all_reduce_, cleanup, setup
from .hints import data_notes
from .loaders import make_loader
from .outputs import RunOutputs, fmt_time
from .presets import pick_preset
from .run_end import STOP_SIGNALS, Aborted, aborted_line, in_main_thread, say_why
from .run_state import RunState, TrainingError  # noqa: F401 - TrainingError: also fastacgan.train's name
from .runlog import RunLog, echo, echo_quietly, let_go_quietly, plain_warnings, tolerant_console
from .runs import RUNS_DATA, check_out_state, data_fingerprint, truncate_records
from .step import ACGANStep, set_cuda_flags
from .words import class_words


class Trainer(RunState, RunOutputs):
    def __init__(self, cfg: TrainConfig, log=echo, given: set[str] | None = None):
        """given: the options the command line set (parse_args'); a resume (--resume, or --auto-resume that finds
        a checkpoint) takes the others from the run it continues. None: every option is cfg's."""
        validate_config(cfg)
        check_run(cfg)
        self.dist, device_name = setup(cfg.device)  # torchrun: one process per GPU
        if not self.dist.is_main:
            log = lambda msg: None  # noqa: E731 - only rank 0 speaks and writes
        elif not isinstance(log, RunLog):
            log = RunLog(log)
        self.log = log
        self.device = select_device(device_name)
        limits.fit_threads(log)  # (a container's --cpus: torch's threads to its CPU limit)
        # no result changes; CPU only: on a GPU the host makes few large tensors
        malloc = heap.keep_freed_memory() if cfg.malloc_cache and self.device.type == "cpu" else "off"
        if malloc == "off" and heap.is_set():  # a caller's earlier Trainer in this process set it
            malloc = "on (set earlier in this process)"
        self._checkpoint: tuple[Path, dict] | None = None  # the one a resume continues from, read once
        self._taken: set[str] = set()  # the options a resume took from its run
        self.short_resume = given is not None  # `--out OUT --resume` continues the run (its options taken)

        # an --out given is checked before the data is listed: a run refused for it costs no listing or decoding
        resuming = (cfg.resume or cfg.auto_resume) and given is not None
        existing = check_out_state(Path(cfg.out).expanduser(), cfg.resume, cfg.auto_resume) if cfg.out else None
        if existing and resuming:
            cfg = self._continue(cfg, existing[-1], given)

        # --- data: what it is, then the model that fits it, then the loader at the model's size
        self.catalog = self._open_catalog(cfg)
        self.out = Path(cfg.out or f"runs/{self.catalog.name}").expanduser()
        if existing is None:  # the default --out, named after the data
            existing = check_out_state(self.out, cfg.resume, cfg.auto_resume, cfg.data)
            if existing and resuming:
                first, cfg = cfg, self._continue(cfg, existing[-1], given)
                if _catalog_options(first) != _catalog_options(cfg):
                    log("reading the data again, as the run being resumed read it")
                    self.catalog = self._open_catalog(cfg)
        self.cfg = cfg
        torch.manual_seed(cfg.seed + self.dist.rank)  # dropout differs per rank; DDP broadcasts rank 0's weights
        self.amp_dtype, amp_note = select_amp(cfg, self.device)
        self.channels_last = cfg.channels_last and self.device.type == "cuda"
        native, channels = self._probe(cfg)
        self.preset = (
            cfg.preset
            if cfg.preset != "auto"
            else pick_preset(cfg.data.startswith("builtin:"), native, cfg.channels or channels)
        )
        self.spec = resolve_spec(cfg, self.preset, cfg.channels or channels, len(self.catalog.class_names))
        self.class_names = self.catalog.class_names
        self.class_words = class_words(cfg.data, self.class_names)  # (n01440764: tench; a list beside the images)
        self.ckpt_dir = self.out / "checkpoints"
        if self.preset in PRESETS:
            log(f"preset {self.preset}: {PRESETS[self.preset].about}")
        k = len(self.class_names)
        words = [f" ({w})" for w in self.class_words] if self.class_words else [""] * k
        shown = ", ".join(c + w for c, w in zip(self.class_names[:6], words)) + (" ..." if k > 6 else "")
        log(
            f"data: {cfg.data} -> {len(self.catalog)} images, {k} class{'es' if k > 1 else ''} ({shown}), "
            f"{self.spec.channels} channel(s), {self.spec.image_size}x{self.spec.image_size}"
        )
        for note in data_notes(self.catalog, native, self.spec.image_size, cfg.balance_classes, cfg.diffaug):
            log(note)
        folder = self.catalog.folder
        if folder is not None and self.out.resolve().is_relative_to(folder.resolve()):
            why = "" if cfg.out else " (the default: runs/<data name> in the working folder)"
            raise ValueError(f"--out {self.out}{why} is inside --data {cfg.data}: the next run would list the run's "
                             "images (samples, grids) as a class of the data; choose an --out outside it")  # fmt: skip

        self.compile = cfg.compile and (self.device.type == "cuda" or cfg.compile_cpu)
        if self.device.type == "cuda":
            set_cuda_flags(cfg.cudnn_benchmark)
        self.gan = ACGANStep(
            self.spec, self.device, lr_g=cfg.lr_g, lr_d=cfg.lr_d, betas=(cfg.beta1, cfg.beta2),
            amp_dtype=self.amp_dtype, channels_last=self.channels_last, compile=self.compile,
            compile_backend=cfg.compile_backend, fused_kernels=cfg.fused_kernels, cls_weight=cfg.cls_weight,
            real_label=cfg.real_label, fake_label=cfg.fake_label, seed=cfg.seed, dist=self.dist, sync_bn=cfg.sync_bn,
            graph_step=cfg.graph_step, fast_layers=cfg.fast_layers, fast_dropout=cfg.fast_dropout, g_ema=cfg.g_ema,
            diffaug=cfg.diffaug,
        )  # fmt: skip
        self.G, self.D = self.gan.G, self.gan.D
        self.compile = self.gan.compile
        self.say_model(amp_note, malloc)

        self.workers = workers.default_workers(cfg.workers)
        self.loader = make_loader(
            self.catalog,
            self.spec.image_size,
            self.spec.channels,
            cfg.batch_size,
            cfg.seed,
            self.device,
            cfg.hflip,
            self.workers,
            cfg.bad_images,
            cfg.cache_gb,
            cfg.loader,
            log,
            shard=(self.dist.rank, self.dist.world),
            decode_cache=cfg.decode_cache,
            balance=cfg.balance_classes,
        )
        if self.dist.enabled:
            total = cfg.batch_size * self.dist.world
            log(f"distributed: {self.dist.world} processes, batch {cfg.batch_size} each, {total} in all "
                f"(the learning rate is not rescaled)")  # fmt: skip
        self.data_seen = data_fingerprint(self.catalog, self.loader.n)
        spe = self.loader.steps_per_epoch
        self.total_steps = cfg.steps or (cfg.epochs or PRESETS[self.preset].epochs) * spe
        self.sample_every = cfg.sample_every or max(1, self.total_steps // 24)
        self.ckpt_every = cfg.ckpt_every or (cfg.ckpt_every_epochs * spe if cfg.ckpt_every_epochs else min(spe, 2000))
        self.step = 0

        # fixed noise for the sample grids: one row per class (the first 10), 10 columns
        rows = min(10, self.spec.num_classes)
        g = torch.Generator().manual_seed(cfg.seed + 2)
        self.sample_z = torch.randn(rows * 10, self.spec.nz, generator=g).to(self.device)
        self.sample_y = torch.arange(rows).repeat_interleave(10).to(self.device)

        self.stop_requested = False  # agreed by every rank
        self.curves_failed = False  # drawing curves.png failed once (said once)
        self._real_examples: np.ndarray | None = None  # real.png's images, decoded once
        self.stop_signal = 0  # the stop signal this process got (SIGINT: Ctrl-C, SIGTERM), 0: none
        self.stop_said = False  # and whether the loop has said so
        self.resumed_from: Path | None = None  # the checkpoint loaded (--resume, or --auto-resume where there is one)
        if existing and (cfg.resume or cfg.auto_resume):
            self.load(existing[-1])
        elif cfg.init_from:
            self.init_weights(cfg.init_from)

    def _open_catalog(self, cfg: TrainConfig):
        size = _catalog_options(cfg)[-1]
        try:
            return open_catalog(cfg.data, cfg.csv, cfg.csv_image_col, cfg.csv_label_col, cfg.classes,
                                cfg.max_images, cfg.seed, size, self.log)  # fmt: skip
        except DataError as e:
            if "data" not in self._taken:
                raise
            raise type(e)(f"{e} {RUNS_DATA}") from e

    # ------------------------------------------------------------------------------------------ one step

    def train_step(self, real: torch.Tensor, labels: torch.Tensor) -> None:
        """real: the loader's batch, uint8 [B, H, W, C], converted inside the step (its compiled region)."""
        self.gan(real, labels)

    # ------------------------------------------------------------------------------------------ the loop

    def train(self) -> dict:
        cfg, spe = self.cfg, self.loader.steps_per_epoch
        if self.step >= self.total_steps:  # a resume of a run that is already as long as asked
            asked = (f"--steps {cfg.steps}" if cfg.steps else f"--epochs {cfg.epochs} of {spe} steps" if cfg.epochs
                     else f"the preset's {self.total_steps // spe} epochs of {spe} steps")  # fmt: skip
            self.log(f"nothing to train: the checkpoint is at step {self.step}, and the run was asked for "
                     f"{self.total_steps} steps ({asked}); a larger --steps or --epochs trains on")  # fmt: skip
            return self.result()
        lock = self._claim_out() if self.dist.is_main else None
        if isinstance(self.log, RunLog):
            how = f"resumed from {self.resumed_from.name}" if self.resumed_from else "started"
            self.log.start(self.out / "train.log", f"--- {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: run {how}, "
                           f"pid {os.getpid()}, fastacgan {__version__}, torch {torch.__version__}")  # fmt: skip
        try:
            if lock is not None:  # (None on a filesystem that cannot lock files, and on other ranks)
                self._remove_partial_checkpoints()  # holding the lock: no other run's save is under way
            return self._train()
        except BaseException as e:  # main() prints it; the log file keeps it too
            if isinstance(self.log, RunLog):
                self.log.record(aborted_line(self) if isinstance(e, KeyboardInterrupt) else f"error: {e}")
            raise
        finally:
            if isinstance(self.log, RunLog):
                self.log.stop()
            if lock is not None:
                lock.close()

    def _claim_out(self):
        """Make --out and hold its lock for the run (see checkpoint.lock_run_dir); then, under the lock, check that
        no other run wrote checkpoints since __init__ looked, and drop the metric records the run starts before (a
        resume: those after its checkpoint). (__init__ writes nothing, so a run refused here has changed nothing.)"""
        self.out.mkdir(parents=True, exist_ok=True)
        lock = ckpt.lock_run_dir(self.out, self.log)
        try:
            kept = ckpt.list_checkpoints(self.ckpt_dir)
            if (kept[-1] if kept else None) != self.resumed_from:
                what = f"wrote {kept[-1].name}" if kept else "removed the checkpoints"
                raise ValueError(f"--out {self.out}: another run {what} while this one started; run again"
                                 + (" (with --resume to continue from it)" if kept else ""))  # fmt: skip
            truncate_records(self.out, self.step)  # a new run: those of one that left no checkpoint
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        return lock

    def _remove_partial_checkpoints(self) -> None:
        n, size = ckpt.remove_partial_checkpoints(self.ckpt_dir)
        if n:
            self.log(f"removed {n} partial checkpoint file(s) ({heap.byte_size(size)}) in {self.ckpt_dir}, left by a "
                     "save that was cut short (the process killed while writing)")  # fmt: skip

    def _train(self) -> dict:
        cfg, spe = self.cfg, self.loader.steps_per_epoch
        if self.dist.is_main:
            resolved = {"config": cfg.to_dict(), "preset": self.preset, "spec": self.spec.to_dict(),
                        "classes": self.class_names, "device": str(self.device), "world_size": self.dist.world,
                        "total_steps": self.total_steps, "steps_per_epoch": spe}  # fmt: skip
            self.save_config(resolved)
        self.log(
            f"training {self.total_steps} steps ({self.total_steps / spe:.1f} epochs of {spe} steps, batch "
            f"{cfg.batch_size}) from step {self.step}; output in {self.out}"
        )
        if self.step == 0 or not (self.out / "real.png").exists():  # (a run resumed from before real.png)
            self.save_real_grid()
        if self.step == 0:
            self.save_samples()
        # Ctrl-C (SIGINT), SIGTERM, SIGUSR1 and SIGHUP (STOP_SIGNALS): finish the step, checkpoint, stop
        can_signal = in_main_thread()
        old_handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} if can_signal else {}
        if old_handlers.get(getattr(signal, "SIGHUP", None)) == signal.SIG_IGN:  # nohup: the run outlives its terminal
            del old_handlers[signal.SIGHUP]
        for sig in old_handlers:
            signal.signal(sig, self._on_stop_signal)
        t_last, steps_last, t_start = time.time(), self.step, time.time()
        first_step = self.step
        warmup_end = self.step + 3 if self.compile else -1
        if self.compile:  # tens of seconds without a line otherwise
            self.log("compiling the step (torch.compile) during the first 3 steps; a line says how long they took")
        try:
            while self.step < self.total_steps and not self.stop_requested:
                epoch, start = divmod(self.step, spe)
                self.gan.train()
                for real, labels in self.loader.epoch(epoch, start):
                    self.train_step(real, labels)
                    self.step += 1
                    self._say_stop()
                    if self.step == warmup_end:  # compilation and CUDA-graph capture happen in these steps
                        self.gan.first_bad_step()  # a sync, once, so the time is real
                        self.log(
                            f"first {self.step - first_step} steps (compilation included): {time.time() - t_start:.1f}s"
                        )
                        t_last, steps_last = time.time(), self.step
                    last = self.step >= self.total_steps
                    log_now = self.step % cfg.log_every == 0 or last
                    self.stop_requested = self._agree_to_stop(log_now)
                    if log_now or self.stop_requested:
                        now = time.time()
                        self.report(now - t_last, self.step - steps_last, now - t_start)
                        t_last, steps_last = now, self.step
                    if self.step % self.sample_every == 0 or last:
                        self.save_samples()
                    if self.step % self.ckpt_every == 0 or last or self.stop_requested:
                        self.save()
                    if last or self.stop_requested:
                        break
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            if self.dist.is_main:
                self.save_animation()
        if self.stop_requested:
            again = "the same command" + ("" if self.cfg.auto_resume else " and --resume")
            if self.short_resume and not self.cfg.auto_resume and not self.dist.enabled:  # the run's options
                again = f"python -m fastacgan.train --out {shlex.quote(str(self.out))} --resume (or {again})"
            self.log(f"interrupted: checkpoint saved at step {self.step}; continue with {again}")
        else:
            self.log(f"done: {self.step} steps in {fmt_time(time.time() - t_start)}; outputs in {self.out}")
        return self.result()

    def result(self) -> dict:
        """What train() returns: the step reached, and whether (and by which signal) the run was stopped."""
        return {"step": self.step, "interrupted": self.stop_requested, "signal": self.stop_signal, "out": str(self.out)}

    def _on_stop_signal(self, signum, frame):
        if self.stop_signal:  # a second Ctrl-C (or SIGTERM): stop now
            raise Aborted(signum)
        # noted only, and said by the loop once the step returns: a handler that printed could run inside a write of
        # the same stream or log file, which Python refuses ("reentrant call inside <_io.BufferedWriter ...>": the
        # run stopped with that error instead of its checkpoint)
        self.stop_signal = signum

    def _say_stop(self) -> None:
        if self.stop_signal and not self.stop_said:
            self.stop_said = True
            what = "Ctrl-C" if self.stop_signal == signal.SIGINT else signal.Signals(self.stop_signal).name
            self.log(f"\n{what}: finishing this step and saving a checkpoint ({what} again to abort without saving)")

    def _agree_to_stop(self, log_now: bool) -> bool:
        """Ctrl-C or SIGTERM takes effect after the current step; with several processes all stop at the next log
        step."""
        if not self.dist.enabled:
            return bool(self.stop_signal)
        if not log_now:
            return False
        flag = all_reduce_(torch.tensor([float(self.stop_signal)], device=self.device), tdist.ReduceOp.MAX)
        return bool(flag.item())


def _catalog_options(cfg: TrainConfig) -> tuple:
    """The options that decide what open_catalog lists, last the size the built-in set is drawn at."""
    size = (
        cfg.image_size or PRESETS.get(cfg.preset, PRESETS["digits"]).image_size
        if cfg.data.startswith("builtin:")
        else 0
    )
    return (cfg.data, cfg.csv, cfg.csv_image_col, cfg.csv_label_col, cfg.classes, cfg.max_images, cfg.seed, size)


@plain_warnings
def main(argv: list[str] | None = None) -> int:
    tolerant_console()
    notes: list[str] = []
    given: set[str] = set()
    cfg = parse_args(argv, notes, given)
    log = RunLog()  # printed, and into --out/train.log once the run holds --out
    for line in notes if os.environ.get("RANK", "0") == "0" else ():  # torchrun: rank 0 speaks
        log(line)
    show_warning = warnings.showwarning

    def also_in_log(message, category, filename, lineno, file=None, line=None):  # (skipped images, fallbacks)
        show_warning(message, category, filename, lineno, file, line)
        log.record(f"warning: {message}")

    warnings.showwarning = also_in_log
    trainer = None
    try:
        trainer = Trainer(cfg, log, given)
        result = trainer.train()
    except Exception as e:  # noqa: BLE001 - what is not said here goes on as a traceback
        status = say_why(e, trainer, cfg)
        if status is None:
            raise
        return status
    except KeyboardInterrupt as e:  # a second signal, or Ctrl-C before the run's handlers are set
        let_go_quietly(e)
        echo_quietly(aborted_line(trainer), sys.stderr)
        return 128 + (e.signum if isinstance(e, Aborted) else signal.SIGINT)
    finally:
        warnings.showwarning = show_warning
        cleanup()
    # stopped by a signal: the shell's status for it (130 for Ctrl-C, 143 for SIGTERM); another rank's: Ctrl-C's
    return 128 + (result["signal"] or signal.SIGINT) if result["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
