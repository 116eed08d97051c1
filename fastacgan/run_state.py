"""A training run's state: the checkpoint it writes (never a non-finite one), the one a resume reads and the
options it takes from it. A mixin of fastacgan.train.Trainer, whose attributes it reads: cfg, log, gan, dist,
device, spec, class_names, preset, step, ckpt_dir, data_seen, _checkpoint, _taken."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import TrainConfig, check_run, flag, validate_config
from .decode import probe
from .devices import cuda_rng_to_restore
from .runs import run_path

# what a resume does not take from the run it continues when the command line leaves it out: whether and where it
# resumes, and where this process runs (a run may move to another machine) rather than what the run is
NOT_CONTINUED = {"resume", "auto_resume", "out", "device", "malloc_cache"}
# options that make one choice together: where the command line gives one, neither is taken from the run (--steps
# would override the --epochs given; --ckpt-every beside --ckpt-every-epochs is refused; --amp-dtype fp16 taken
# would keep the --no-amp given from turning autocast off)
CHOSEN_TOGETHER = ({"steps", "epochs"}, {"ckpt_every", "ckpt_every_epochs"}, {"amp", "amp_dtype"})


def continue_config(cfg: TrainConfig, saved: dict, given: set[str]) -> tuple[TrainConfig, dict]:
    """A resume's config: cfg with each option the command line did not give set to its value in `saved` (the
    config of the run it continues, from its checkpoint; fields of another version's config that this one lacks
    are passed over). -> (that config, {option: the run's value} for each one that changed)."""
    keep = set(given) | NOT_CONTINUED
    for group in CHOSEN_TOGETHER:
        if keep & group:
            keep |= group
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    taken = {k: v for k, v in saved.items() if k in names and k not in keep and getattr(cfg, k) != v}
    return dataclasses.replace(cfg, **taken), taken


def as_flags(options: dict) -> str:
    """{option: value} as the command line would give them: --amp, --no-hflip, --data X."""
    return ", ".join(
        (flag(k) if v else f"--no-{flag(k)[2:]}") if isinstance(v, bool) else f"{flag(k)} {v}"
        for k, v in options.items()
    )


class TrainingError(RuntimeError):
    """The run cannot go on (non-finite loss, ...); the message says why and what was kept."""


class RunState:
    """The trainer's checkpoints: written, read, resumed from."""

    _run_channels = 0  # a resume's: its checkpoint's model's channels

    def _probe(self, cfg: TrainConfig) -> tuple[int, int]:
        """(the images' native size, the model's channels): --channels, else a resumed run's (grey images stored in
        colour made RGB models before 2026-12-07), else the data's, as probe finds them."""
        given = cfg.channels or self._run_channels
        native, channels = probe(self.catalog, log=self.log, channels=given)
        return native, given or channels

    def _continue(self, cfg: TrainConfig, path: Path, given: set[str]) -> TrainConfig:
        """A resume's config: the options not given are those of the run it continues (its newest checkpoint's)."""
        state = self._read_checkpoint(path)
        cfg, taken = continue_config(cfg, state["config"], given)
        for k in ("data", "csv", "decode_cache"):  # a relative path of the run's, resumed from another folder
            if taken.get(k) and (found := run_path(taken[k], state)) != taken[k]:
                taken[k] = found
                cfg = dataclasses.replace(cfg, **{k: found})
        self._run_channels = state["spec"]["channels"]
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

    def check_finite(self) -> None:
        bad = self.gan.first_bad_step()
        if bad >= 0:
            kept = ckpt.list_checkpoints(self.ckpt_dir)
            raise TrainingError(
                f"non-finite loss (NaN/Inf) at step {bad}; the run stopped without saving that state. Last good "
                f"checkpoint: {kept[-1] if kept else 'none'}. Lower --lr-d/--lr-g, or try without --amp or with "
                f"--amp-dtype bf16"
            )

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "spec": self.spec.to_dict(),
            "classes": self.class_names,
            "class_words": self.class_words,  # (WordNet ids' words: sample --label tench)
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

    def init_weights(self, path: str) -> None:
        """--init-from: G's and D's weights (and BatchNorm's statistics, spectral norm's vectors) from another run's
        checkpoint, for a model of the same spec but perhaps another number of classes: the tensors of other shapes
        (the class embedding or G's first layer, D's class head) keep their fresh initialisation; the optimizers
        start afresh, and G's moving average (--g-ema) from the weights taken."""
        from .sample import resolve_ckpt

        try:
            file = resolve_ckpt(os.path.expanduser(path))
        except FileNotFoundError as e:
            raise ValueError(str(e).replace("--ckpt", "--init-from", 1)) from e
        try:
            state = ckpt.load_checkpoint(file)
        except ValueError as e:
            raise ValueError(f"--init-from {path}: {e}") from e
        mine, theirs = self.spec.to_dict(), state["spec"]
        if differ := [k for k in mine if k != "num_classes" and mine[k] != theirs.get(k)]:
            shown = ", ".join(f"{k} {theirs.get(k)} (this run: {mine[k]})" for k in differ)
            if state.get("preset") != self.preset:
                shown = f"preset {state.get('preset')} (this run: {self.preset}): {shown}"
            raise ValueError(f"--init-from {path}: its model is not this run's: {shown}; give the options that "
                             "make the same model (--preset, --image-size, --channels, --width, --nz, "
                             "--conditioning)")  # fmt: skip
        fresh = []
        for name, module in (("G", self.gan.G), ("D", self.gan.D)):
            own = module.state_dict()
            taken = {k: v for k, v in state[name].items() if k in own and v.shape == own[k].shape}
            fresh += [f"{name}.{k}" for k in own if k not in taken]
            module.load_state_dict({**own, **taken})
        if self.gan.g_ema is not None:
            self.gan.g_ema.reset()
        took = f"weights from {file} (step {state['step']}, {theirs['num_classes']} classes)"
        if fresh:  # (said in full: a few tensors, the class layers)
            took += f"; {len(fresh)} tensors of other shapes start afresh: {', '.join(fresh)}"
        self.log(took + ("" if fresh else ": every tensor of G and D"))

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
