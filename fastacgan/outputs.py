"""What a training run says and leaves behind as it goes: the start-up lines of the model and its speed features,
the progress line and metrics.jsonl, the sample grids (with their image metrics and curves.png), real.png and
samples.gif. A mixin of fastacgan.train.Trainer, whose attributes it reads: cfg, log, out, dist, gan, step,
total_steps, loader, catalog, spec, sample_z, sample_y (the start-up lines: G, D, device, compile, channels_last).
With --tensorboard, the records and the grids also go into TensorBoard's event file (tb_events)."""

from __future__ import annotations

import math

import numpy as np
import torch

from . import tb_events
from .config import save_json
from .decode import class_examples
from .devices import triton_unsupported
from .image_metrics import LABELS, seed000_metrics
from .imaging import make_grid, save_gif, save_png, to_uint8
from .models import count_params
from .plots import save_curves
from .runs import append_record


def fmt_time(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class RunOutputs:
    """The trainer's outputs as it goes (its curves_failed and _real_examples are set in Trainer.__init__)."""

    def say_model(self, amp_note: str, malloc: str) -> None:
        """The start-up lines of the model (sizes, architecture, device, precision: amp_note) and of the speed
        features on or off (malloc: what became of --malloc-cache), and why a GPU cannot run Triton's code."""
        self.log(
            f"model: G {count_params(self.G) / 1e6:.2f}M params, D {count_params(self.D) / 1e6:.2f}M params "
            f"({self.spec.g_arch} G, {self.spec.d_arch} D{', spectral norm' if self.spec.d_sn else ''}, "
            f"{self.spec.conditioning} conditioning); device {self.device}, {amp_note}"
            + (f"; samples from G's moving average (decay {self.cfg.g_ema:g})" if self.cfg.g_ema else "")
            + (f"; D sees DiffAugment's {', '.join(self.gan.diffaug)}" if self.gan.diffaug else "")
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
        speed.append(f"fast G layers {onoff(self.cfg.fast_layers)}")
        if self.spec.d_dropout > 0 and not cuda:
            speed.append(f"fast CPU dropout {onoff(self.cfg.fast_dropout)}")
        speed.append(f"cuDNN autotuning {onoff(self.cfg.cudnn_benchmark)}" if cuda else f"malloc cache {malloc}")
        gpu_only = ("" if self.compile else "torch.compile, ") + "channels-last and the fused kernels are for CUDA GPUs"
        self.log(f"speed: {', '.join(speed)}" + ("" if cuda else f"; {gpu_only}"))
        too_old = triton_unsupported(self.device)
        if too_old and (self.cfg.compile or self.cfg.fused_kernels):
            self.log(f"note: {too_old}")

    def report(self, dt: float, steps: int, elapsed: float) -> None:
        """Read the device metrics (the only host sync), print a progress line, append to metrics.jsonl."""
        self.check_finite()
        m = self.gan.read_metrics()
        # steps: timed since the last line (0 where the compiling steps just ended: no rate yet, none is made up)
        ips = steps * self.cfg.batch_size * self.dist.world / max(dt, 1e-9) if steps else None  # every process's
        spe = self.loader.steps_per_epoch
        eta = fmt_time((self.total_steps - self.step) * dt / steps) if steps else "--"
        epoch, epochs = (self.step - 1) // spe + 1, math.ceil(self.total_steps / spe)
        self.log(
            f"epoch {epoch}/{epochs} step {self.step}/{self.total_steps}"
            f" | {'--' if ips is None else f'{ips:,.0f}'} img/s | D {m['loss_d']:.3f} G {m['loss_g']:.3f} | D(x) "
            f"{m['d_real']:.2f} D(G(z)) {m['d_fake']:.2f}/{m['d_fake_g']:.2f} | acc real {m['acc_real']:.2f} fake "
            f"{m['acc_fake']:.2f} | ETA {eta}"
        )
        rec = {"step": self.step, "epoch": self.step / spe, "images_per_s": ips, "elapsed_s": elapsed, **m}
        if not self.dist.is_main:
            return
        append_record(self.out / "metrics.jsonl", rec)
        self.tensorboard(lambda: tb_events.scalars(rec))

    def save_samples(self) -> None:
        """The sample grid of this step, its image metrics (--image-metrics), and curves.png redrawn."""
        if not self.dist.is_main:
            return
        fake = self.gan.generate(self.sample_z, self.sample_y)
        grid = make_grid(to_uint8(fake), ncol=10)
        png = save_png(self.out / "samples" / f"step_{self.step:08d}.png", grid)
        self.tensorboard(lambda: [tb_events.image("samples", grid, png)])
        if self.cfg.image_metrics:
            self.save_image_metrics(fake)
        try:  # a convenience: whatever goes wrong drawing it must not stop the training
            save_curves(self.out / "metrics.jsonl", self.out / "curves.png")
        except Exception as e:  # noqa: BLE001
            if not self.curves_failed:
                self.log(f"warning: curves.png not drawn ({type(e).__name__}: {e}); training goes on")
            self.curves_failed = True

    def save_config(self, resolved: dict) -> None:
        """config.json (and, for TensorBoard's Text tab, the same as a table, at the step the run starts from)."""
        save_json(self.out / "config.json", resolved)
        self.tensorboard(lambda: [tb_events.text("config", tb_events.options_table(resolved))])

    def tensorboard(self, values) -> None:
        """The values (a function making them: tb_events.scalars, image) as an event of this step in the run's
        TensorBoard file, unless --no-tensorboard."""
        if self.cfg.tensorboard:
            tb_events.append(self.out / tb_events.EVENTS, self.step, values())

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
            grid = make_grid(self.real_examples(), ncol=10)
            png = save_png(self.out / "real.png", grid)
            self.tensorboard(lambda: [tb_events.image("real", grid, png)])

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
        self.tensorboard(lambda: tb_events.scalars(found, "image_metrics"))
        shown = " ".join(f"{LABELS[k]} {v:.3f}" for k, v in found.items() if v is not None)
        self.log(f"image metrics at step {self.step} ({rec['pairs']} pairs): {shown}")
