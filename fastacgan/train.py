"""Train an AC-GAN: `python -m fastacgan.train [--amp] [--data PATH] [--out DIR] [--resume] ...`.

The data, the loop, and what a run leaves behind (progress, metrics, samples, checkpoints, resume, Ctrl-C,
NaN detection). The step itself (D maximises L_S + L_C, G maximises L_C - L_S; Odena et al. 2017) and the
performance flags live in fastacgan.step. Metrics stay on the device and are read every --log-every steps.
"""

from __future__ import annotations

import dataclasses
import math
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

from . import __version__, heap
from . import checkpoint as ckpt
from .config import (
    PRESETS,
    TrainConfig,
    as_flags,
    check_run,
    continue_config,
    flag,
    parse_args,
    pick_preset,
    resolve_spec,
    save_json,
    validate_config,
)
from .data import DataError, open_catalog
from .decode import class_examples, default_workers, lost_worker, probe
from .devices import (
    cuda_rng_to_restore,
    memory_error,
    memory_error_text,
    select_amp,
    select_device,
    triton_unsupported,
)
from .distributed import all_reduce_, cleanup, setup
from .image_metrics import LABELS, seed000_metrics
from .imaging import make_grid, save_gif, save_png, to_uint8
from .loaders import make_loader
from .models import count_params
from .plots import save_curves
from .runlog import RunLog, echo, echo_quietly, tolerant_console
from .runs import RUNS_DATA, append_record, check_out_state, data_fingerprint, run_path, truncate_metrics
from .step import ACGANStep, set_cuda_flags


class TrainingError(RuntimeError):
    """The run cannot go on (non-finite loss, ...); the message says why and what was kept."""


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


def fmt_time(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Trainer:
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
        native, channels = probe(self.catalog)
        self.preset = (
            cfg.preset
            if cfg.preset != "auto"
            else pick_preset(cfg.data.startswith("builtin:"), native, cfg.channels or channels)
        )
        self.spec = resolve_spec(cfg, self.preset, cfg.channels or channels, len(self.catalog.class_names))
        self.class_names = self.catalog.class_names
        self.ckpt_dir = self.out / "checkpoints"
        if self.preset in PRESETS:
            log(f"preset {self.preset}: {PRESETS[self.preset].about}")
        k = len(self.class_names)
        log(
            f"data: {cfg.data} -> {len(self.catalog)} images, {k} class{'es' if k > 1 else ''}, "
            f"{self.spec.channels} channel(s), {self.spec.image_size}x{self.spec.image_size}"
        )
        size = self.spec.image_size
        if size >= 2 * native:  # (--preset isic128 on CIFAR-10, --image-size 64 on MNIST)
            log(f"note: the images are {native} pixels on their short side (the first one read) and are enlarged "
                f"{size / native:.1f}x to the model's {size}x{size}: G learns the enlargement's blur; a smaller "
                "--image-size (or --preset) trains nearer their own size")  # fmt: skip
        if k == 1:
            log(f"note: one class ({self.class_names[0]}): the auxiliary classifier has nothing to tell apart, and "
                "the run trains an unconditional GAN; an image folder's classes are its sub-folders")  # fmt: skip
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
            graph_step=cfg.graph_step, fast_layers=cfg.fast_layers, fast_dropout=cfg.fast_dropout,
        )  # fmt: skip
        self.G, self.D = self.gan.G, self.gan.D
        self.compile = self.gan.compile
        log(
            f"model: G {count_params(self.G) / 1e6:.2f}M params, D {count_params(self.D) / 1e6:.2f}M params "
            f"({self.spec.g_arch} G, {self.spec.d_arch} D{', spectral norm' if self.spec.d_sn else ''}, "
            f"{self.spec.conditioning} conditioning); device {self.device}, {amp_note}"
        )
        cuda, onoff = self.device.type == "cuda", lambda on: "on" if on else "off"
        graphs = " (CUDA graphs)" if self.gan.cuda_graphs else ""
        speed = [f"compile {onoff(self.compile)}{graphs}"] if cuda or self.compile else []
        if cuda:
            whole = ", whole step in one CUDA graph" if self.gan.graph_step else ""
            speed += [
                f"channels-last {onoff(self.channels_last)}",
                f"fused kernels {onoff(self.gan.fused_kernels)}{whole}",
            ]
        speed.append(f"fast G layers {onoff(cfg.fast_layers)}")
        if self.spec.d_dropout > 0 and not cuda:
            speed.append(f"fast CPU dropout {onoff(cfg.fast_dropout)}")
        speed.append(f"cuDNN autotuning {onoff(cfg.cudnn_benchmark)}" if cuda else f"malloc cache {malloc}")
        gpu_only = ("" if self.compile else "torch.compile, ") + "channels-last and the fused kernels are for CUDA GPUs"
        log(f"speed: {', '.join(speed)}" + ("" if cuda else f"; {gpu_only}"))
        too_old = triton_unsupported(self.device)
        if too_old and (cfg.compile or cfg.fused_kernels):
            log(f"note: {too_old}")

        self.workers = default_workers(cfg.workers)
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
        self.resumed_from: Path | None = None  # the checkpoint loaded (--resume, or --auto-resume where there is one)
        if existing and (cfg.resume or cfg.auto_resume):
            self.load(existing[-1])

    def _open_catalog(self, cfg: TrainConfig):
        size = _catalog_options(cfg)[-1]
        if cfg.data.startswith("builtin:"):
            self.log(f"drawing the built-in data set {cfg.data} at {size}x{size} (a few seconds)")
        try:
            return open_catalog(cfg.data, cfg.csv, cfg.csv_image_col, cfg.csv_label_col, cfg.classes,
                                cfg.max_images, cfg.seed, size, self.log)  # fmt: skip
        except DataError as e:
            if "data" not in self._taken:
                raise
            raise type(e)(f"{e} {RUNS_DATA}") from e

    def _continue(self, cfg: TrainConfig, path: Path, given: set[str]) -> TrainConfig:
        """A resume's config: the options not given are those of the run it continues (its newest checkpoint's)."""
        state = self._read_checkpoint(path)
        cfg, taken = continue_config(cfg, state["config"], given)
        for k in ("data", "csv", "decode_cache"):  # a relative path of the run's, resumed from another folder
            if taken.get(k) and (found := run_path(taken[k], state)) != taken[k]:
                taken[k] = found
                cfg = dataclasses.replace(cfg, **{k: found})
        validate_config(cfg)
        check_run(cfg)
        self._taken |= set(taken)
        if taken:
            self.log(f"resuming {path.parent.parent}: the options not given are the run's: {as_flags(taken)}")
        return cfg

    def _read_checkpoint(self, path: Path) -> dict:
        if self._checkpoint is not None and self._checkpoint[0] == path:
            return self._checkpoint[1]
        try:
            state = ckpt.load_checkpoint(path)
        except ValueError as e:  # damaged (a copy cut short, a disk error): the one before it may be whole
            older = [p for p in ckpt.list_checkpoints(path.parent) if p != path]
            if not older:
                raise
            raise ValueError(f"{e}; to resume from the checkpoint before it, {older[-1].name}, move {path.name} out "
                             f"of {path.parent}") from e  # fmt: skip
        self._checkpoint = path, state
        return state

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
            return self._train()
        except BaseException as e:  # main() prints it; the log file keeps it too
            if isinstance(self.log, RunLog):
                self.log.record("aborted without saving" if isinstance(e, KeyboardInterrupt) else f"error: {e}")
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
            for name in ("metrics.jsonl", "image_metrics.jsonl"):  # a new run: those of one that left no checkpoint
                truncate_metrics(self.out / name, self.step)
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        return lock

    def _train(self) -> dict:
        cfg, spe = self.cfg, self.loader.steps_per_epoch
        if self.dist.is_main:
            resolved = {"config": cfg.to_dict(), "preset": self.preset, "spec": self.spec.to_dict(),
                        "classes": self.class_names, "device": str(self.device), "world_size": self.dist.world,
                        "total_steps": self.total_steps, "steps_per_epoch": spe}  # fmt: skip
            save_json(self.out / "config.json", resolved)
        self.log(
            f"training {self.total_steps} steps ({self.total_steps / spe:.1f} epochs of {spe} steps, batch "
            f"{cfg.batch_size}) from step {self.step}; output in {self.out}"
        )
        if self.step == 0 or not (self.out / "real.png").exists():  # (a run resumed from before real.png)
            self.save_real_grid()
        if self.step == 0:
            self.save_samples()
        # Ctrl-C (SIGINT), SIGTERM, SIGUSR1 and SIGHUP (STOP_SIGNALS): finish the step, checkpoint, stop
        can_signal = _in_main_thread()
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
        self.stop_signal = signum
        what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
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

    def check_finite(self) -> None:
        bad = self.gan.first_bad_step()
        if bad >= 0:
            kept = ckpt.list_checkpoints(self.ckpt_dir)
            raise TrainingError(
                f"non-finite loss (NaN/Inf) at step {bad}; the run stopped without saving that state. Last good "
                f"checkpoint: {kept[-1] if kept else 'none'}. Lower --lr-d/--lr-g, or try without --amp or with "
                f"--amp-dtype bf16"
            )

    def report(self, dt: float, steps: int, elapsed: float) -> None:
        """Read the device metrics (the only host sync), print a progress line, append to metrics.jsonl."""
        self.check_finite()
        m = self.gan.read_metrics()
        ips = steps * self.cfg.batch_size / max(dt, 1e-9)
        spe = self.loader.steps_per_epoch
        eta = (self.total_steps - self.step) * dt / max(steps, 1)
        epoch, epochs = (self.step - 1) // spe + 1, math.ceil(self.total_steps / spe)
        self.log(
            f"epoch {epoch}/{epochs} step {self.step}/{self.total_steps}"
            f" | {ips:,.0f} img/s | D {m['loss_d']:.3f} G {m['loss_g']:.3f} | D(x) {m['d_real']:.2f} "
            f"D(G(z)) {m['d_fake']:.2f}/{m['d_fake_g']:.2f} | acc real {m['acc_real']:.2f} fake "
            f"{m['acc_fake']:.2f} | ETA {fmt_time(eta)}"
        )
        rec = {"step": self.step, "epoch": self.step / spe, "images_per_s": ips, "elapsed_s": elapsed, **m}
        if not self.dist.is_main:
            return
        append_record(self.out / "metrics.jsonl", rec)

    def save_samples(self) -> None:
        """The sample grid of this step, its image metrics (--image-metrics), and curves.png redrawn."""
        if not self.dist.is_main:
            return
        fake = self.gan.generate(self.sample_z, self.sample_y)
        save_png(self.out / "samples" / f"step_{self.step:08d}.png", make_grid(to_uint8(fake), ncol=10))
        if self.cfg.image_metrics:
            self.save_image_metrics(fake)
        try:  # a convenience: whatever goes wrong drawing it must not stop the training
            save_curves(self.out / "metrics.jsonl", self.out / "curves.png")
        except Exception as e:  # noqa: BLE001
            if not self.curves_failed:
                self.log(f"warning: curves.png not drawn ({type(e).__name__}: {e}); training goes on")
            self.curves_failed = True

    def save_animation(self) -> None:
        """samples.gif, at the run's end (an error's too): a convenience, whose failure (a full disk) must neither
        turn a finished run into a failed one nor hide the error that ends it."""
        try:
            save_gif(self.out / "samples.gif", sorted((self.out / "samples").glob("step_*.png")))
        except Exception as e:  # noqa: BLE001
            self.log(f"warning: samples.gif not written ({type(e).__name__}: {e}); the grids are in samples/")

    def real_examples(self) -> np.ndarray:
        """real.png's images, uint8 [rows * 10, H, W, C]: the sample grids' layout (a row per class, the first 10)."""
        if self._real_examples is None:
            rows = len(self.sample_y) // 10
            self._real_examples = class_examples(self.catalog, self.spec.image_size, self.spec.channels, rows)
        return self._real_examples

    def save_real_grid(self) -> None:
        """real.png: real images in the sample grids' layout, to set beside them."""
        if self.dist.is_main:
            save_png(self.out / "real.png", make_grid(self.real_examples(), ncol=10))

    def save_image_metrics(self, fake: torch.Tensor) -> None:
        """The ISIC AC-GAN's figures (image_metrics.seed000_metrics) between the grid's images and real.png's, tile
        by tile (so each pair is of one class); real tiles that are flat (a class short of 10 images leaves black
        ones) have no min-max normalisation and are left out. A line of image_metrics.jsonl and of the log."""
        real = torch.from_numpy(self.real_examples()).permute(0, 3, 1, 2).to(fake.device, torch.float32)
        keep = real.flatten(1).amax(1) > real.flatten(1).amin(1)
        if not keep.any():
            return
        found = seed000_metrics(fake.float()[keep], real[keep])  # on the device: 3 s for 100 pairs of 128x128 on a CPU
        rec = {"step": self.step, "pairs": int(keep.sum()), **found}
        append_record(self.out / "image_metrics.jsonl", rec)
        shown = " ".join(f"{LABELS[k]} {v:.3f}" for k, v in found.items() if v is not None)
        self.log(f"image metrics at step {self.step} ({rec['pairs']} pairs): {shown}")

    # ------------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "spec": self.spec.to_dict(),
            "classes": self.class_names,
            "preset": self.preset,
            "config": self.cfg.to_dict(),
            "cwd": os.getcwd(),  # where the config's relative paths are (a resume elsewhere finds them)
            "data": self.data_seen,
            **self.gan.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            # the training GPU's alone (dropout's stream): a list of every visible GPU's did not load on fewer GPUs
            "rng_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }

    def save(self) -> None:
        self.check_finite()  # never write a NaN state (a collective: every rank gets here)
        if not self.dist.is_main:
            return
        ckpt.save_checkpoint(ckpt.checkpoint_path(self.ckpt_dir, self.step), self.state_dict())
        ckpt.prune_checkpoints(self.ckpt_dir, self.cfg.keep_ckpts)

    def load(self, path: Path) -> None:
        state = self._read_checkpoint(path)
        self._checkpoint = None  # (its memory is the model's and the optimizers' from here on)
        ckpt.check_compatible(path, state["spec"], self.spec.to_dict(), state["classes"], self.class_names)
        if not self.gan.load_state_dict(state, state["step"]):
            self.log("note: the checkpoint was written on another kind of device (a GPU's random streams do not "
                     "continue on a CPU, nor a CPU's on a GPU): G's noise and dropout draw new streams from here "
                     "on")  # fmt: skip
        torch.set_rng_state(state["rng_cpu"])
        rng_cuda = cuda_rng_to_restore(state.get("rng_cuda"), self.device)
        if rng_cuda is not None:
            torch.cuda.set_rng_state(rng_cuda, self.device)
        # the checkpoint holds rank 0's streams: the other ranks draw dropout masks of their own, as from the start
        # (seed + rank), instead of all copying rank 0's from here on
        if self.dist.rank:
            torch.manual_seed(self.cfg.seed + self.dist.rank + 7919 * (state["step"] + 1))
        self.step = state["step"]
        # not named: what does not change the run's course, what the resume took from the run, and the options
        # that only shape the model, which check_compatible found the same (--preset digits where the run's auto
        # chose it, --image-size 28 where 0 meant the preset's 28)
        skip = {"resume", "auto_resume", "steps", "epochs", "log_every", "sample_every", "ckpt_every",
                "ckpt_every_epochs", "keep_ckpts", "out", "device", "decode_cache", "malloc_cache", "preset",
                "image_size", "channels", "nz", "conditioning", "width"} | self._taken  # fmt: skip
        changed = [f"{flag(k)} {v!r} -> {getattr(self.cfg, k)!r}" for k, v in state["config"].items()
                   if k not in skip and hasattr(self.cfg, k) and getattr(self.cfg, k) != v]  # fmt: skip
        if changed:
            self.log("note: resuming with options that differ from the checkpoint's (the run will not be the one it "
                     "would have been): " + ", ".join(changed))  # fmt: skip
        saved = state.get("data")  # (absent in checkpoints written before 2026-12-02)
        if saved and saved != self.data_seen:
            was, now = saved["images"], self.data_seen["images"]
            what = f"{was} -> {now} images" if was != now else "as many images, but other files or labels"
            self.log(f"note: the data differ from the checkpoint's ({what}): from here on the run sees another data "
                     "order than the interrupted one would have")  # fmt: skip
        self.resumed_from = path
        self.log(f"resumed from {path} at step {self.step}")


def _catalog_options(cfg: TrainConfig) -> tuple:
    """The options that decide what open_catalog lists, last the size the built-in set is drawn at."""
    size = (
        cfg.image_size or PRESETS.get(cfg.preset, PRESETS["digits"]).image_size
        if cfg.data.startswith("builtin:")
        else 0
    )
    return (cfg.data, cfg.csv, cfg.csv_image_col, cfg.csv_label_col, cfg.classes, cfg.max_images, cfg.seed, size)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _newest_checkpoint(trainer: Trainer | None, resume: str = "--resume") -> str:
    """For a run that stops without saving: where `resume` (the options to give) would continue from."""
    if trainer is None or not trainer.dist.is_main:
        return ""
    kept = ckpt.list_checkpoints(trainer.ckpt_dir)
    if not kept:
        return "; no checkpoint was saved"
    return f"; the newest checkpoint is {kept[-1]} ({resume} continues from it)"


def _out_of_memory(trainer: Trainer | None, cfg: TrainConfig, e: BaseException) -> str:
    """The error line of a run that ran out of memory: where, with what, and what fits in less."""
    said = memory_error_text(e)
    if trainer is None:  # reading, decoding and placing the data
        return (f"out of memory before training, reading the data: {said}. --cache-gb (now {cfg.cache_gb:g}) bounds "
                "the decoded images kept in memory; --loader torch decodes them as it goes")  # fmt: skip
    cfg = trainer.cfg  # (a resume's: the options it took from its checkpoint too)
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[trainer.amp_dtype]
    size = trainer.spec.image_size
    amp = ", as may --amp (half-precision activations)" if trainer.amp_dtype is None else ""
    then = _newest_checkpoint(trainer, "--resume --batch-size N")
    return (f"out of memory on {trainer.device} in step {trainer.step + 1} (batch {cfg.batch_size} of {size}x{size} "
            f"images, preset {trainer.preset}, {precision}): {said}. The memory a step takes grows with the batch: a "
            f"smaller --batch-size fits{amp}{then}")  # fmt: skip


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
    except (DataError, ValueError, FileNotFoundError, TrainingError) as e:
        echo_quietly(f"error: {e}", sys.stderr)
        return 2 if not isinstance(e, TrainingError) else 1
    except OSError as e:  # writing the run's outputs: a full disk, a lost mount, a permission taken away
        where = f"{e.filename}: " if e.filename else ""
        echo_quietly(f"error: {where}{e.strerror or e}{_newest_checkpoint(trainer)}", sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the rest goes on as a traceback
        lost = lost_worker(e, default_workers(cfg.workers))
        if lost is None and not memory_error(e):
            raise
        why = _out_of_memory(trainer, cfg, e) if lost is None else lost + _newest_checkpoint(trainer)
        echo_quietly(f"error: {why}", sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # a second signal, or Ctrl-C before the run's handlers are set
        echo_quietly(f"aborted without saving{_newest_checkpoint(trainer)}", sys.stderr)
        return 128 + (e.signum if isinstance(e, Aborted) else signal.SIGINT)
    finally:
        warnings.showwarning = show_warning
        cleanup()
    # stopped by a signal: the shell's status for it (130 for Ctrl-C, 143 for SIGTERM); another rank's: Ctrl-C's
    return 128 + (result["signal"] or signal.SIGINT) if result["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
