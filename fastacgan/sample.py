"""Generate images from a checkpoint: `python -m fastacgan.sample RUN [--label 7] [--n 64] --out result.png`.

RUN (or --ckpt RUN) is a checkpoint file or a run folder (its newest checkpoint). With --label (a class index or
name), writes --n images of that class: one grid if --out ends in .png/.jpg, else one PNG per image into the folder
--out. Without --label, writes a grid with one row per class (--per-class images each), or --per-class PNGs per
class into the folder --out. With --image-folder the PNGs go to --out/<class>/, the image-folder layout that --data
reads: a synthetic data set (for augmentation, or to train on). Runs on any device, whatever device wrote the
checkpoint. A folder's images are generated and written batch by batch, so any number fits in memory; a grid is
made whole, and refused before any image is made where it would be too large to open (check_grid).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .class_picks import near_misses, same_text, wanted_classes
from .config import SEED_MAX, DefaultsHelp
from .data import IMAGE_EXTS, Every, file_safe
from .devices import memory_error, memory_error_text, select_device
from .heap import keep_freed_memory
from .imaging import make_grid, save_png, to_uint8
from .limits import fit_threads
from .models import Generator, ModelSpec
from .runlog import echo_quietly, plain_warnings, tolerant_console
from .words import first_names


def resolve_ckpt(path: str) -> Path:
    p = Path(path)
    if p.is_dir():
        found = ckpt.list_checkpoints(p / "checkpoints") or ckpt.list_checkpoints(p)
        if not found:
            raise FileNotFoundError(f"--ckpt {path}: no checkpoint (step_*.pt) in {p} or {p / 'checkpoints'}")
        return found[-1]
    if not p.exists():
        raise FileNotFoundError(f"--ckpt {path}: no such file or folder")
    return p


def add_ckpt_arguments(p: argparse.ArgumentParser, *flags: str) -> None:
    """The checkpoint to read: `--ckpt PATH`, or PATH alone (as `fastacgan.plots RUN` takes a run)."""
    what = "checkpoint file, or a run folder (its newest checkpoint)"
    p.add_argument("run", nargs="?", metavar="RUN", help=f"{what}: the same as --ckpt")
    p.add_argument("--ckpt", *flags, help=what)


def ckpt_argument(p: argparse.ArgumentParser, a: argparse.Namespace) -> str:
    """The path add_ckpt_arguments' options give; a parser error (exit 2) for none, or two that differ."""
    if a.run and a.ckpt and a.run != a.ckpt:
        p.error(f"two checkpoints: {a.run} and --ckpt {a.ckpt}; give one")
    if not (a.run or a.ckpt):
        p.error("give the checkpoint: a run folder (its newest checkpoint) or a checkpoint file, as RUN or --ckpt")
    return os.path.expanduser(a.ckpt or a.run)  # (`--ckpt=~/runs/x`: the shell leaves a ~ after = as it is)


def generator_state(
    path: str, device: str | torch.device = "cpu", ema: bool = True, truncation: float = 0.0
) -> tuple[Generator, dict, Path]:
    """-> (G in eval mode on `device`, the checkpoint's state, the checkpoint file used): read once. G's moving
    average (--g-ema) where the run kept one, unless ema is False. truncation: generate_batches' noise for this G is
    truncated there (g.truncation; see noise)."""
    file = resolve_ckpt(path)
    state = ckpt.load_checkpoint(file, map_location="cpu")
    g = Generator(ModelSpec(**state["spec"]))
    g.load_state_dict(state[weights_of(state, ema)])
    g.truncation = truncation
    return g.to(device).eval(), state, file


def averaged(state: dict, ema: bool = True) -> bool:
    """Whether generator_state(..., ema) gave G's moving average (the run kept one, and --no-ema was not given)."""
    return ema and "G_ema" in state


def weights_of(state: dict, ema: bool = True) -> str:
    """The checkpoint's key of the weights generator_state(..., ema) gives: "G_ema" or "G"."""
    return "G_ema" if averaged(state, ema) else "G"


def average_note(state: dict, ema: bool = True) -> str:
    """The end of a closing line that says the images come from G's moving average, where they do."""
    return " (G's moving average: --no-ema for G's own weights)" if averaged(state, ema) else ""


def add_ema_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-ema", dest="ema", action="store_false", help="G's own weights, not their moving average "
                   "(where the run kept one: --g-ema), which is used by default")  # fmt: skip


def add_truncation_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--truncation", type=float, default=0.0, metavar="T", help="the truncation trick (BigGAN): noise "
                   "drawn from the normal distribution truncated to [-T, T] (every value past T drawn again), for "
                   "typical images rather than varied ones; 0 = off (T of 2 or more changes little)")  # fmt: skip


def check_truncation(t: float) -> None:
    if not t >= 0:  # (NaN too)
        raise ValueError(f"--truncation must be >= 0 (0 = off), got {t}")


def truncation_note(g: Generator) -> str:
    return f", noise truncated at {g.truncation:g}" if getattr(g, "truncation", 0.0) else ""


def load_generator(path: str, device: str | torch.device = "cpu") -> tuple[Generator, list[str], Path]:
    """-> (G in eval mode on `device`, class names, the checkpoint file used)."""
    g, state, file = generator_state(path, device)
    return g, list(state["classes"]), file


# a grid past this many pixels is one that PIL refuses to open (a "decompression bomb": twice its
# Image.MAX_IMAGE_PIXELS), and so torchvision, and fastacgan's own --data; JPEG's side at most 65,500 pixels (PIL)
GRID_MAX_PIXELS = 178_956_970
JPEG_MAX_SIDE = 65_500  # (libjpeg: 65,535; PIL says 65,500)


def check_grid(out: str, n: int, ncol: int, size: int) -> None:
    """Refuse a grid too large to be opened (or, as a JPEG, written), before any image is made: one PNG per image
    into a folder takes any number (the grid is made whole in memory: 100,000 128x128 images were 20 GB)."""
    nrow = -(-n // ncol)
    h, w = nrow * (size + 2) + 2, ncol * (size + 2) + 2  # (imaging.make_grid's 2-pixel padding)
    jpeg = Path(out).suffix.lower() in (".jpg", ".jpeg")
    if h * w > GRID_MAX_PIXELS or (jpeg and max(h, w) > JPEG_MAX_SIDE):
        why = f"more than JPEG's {JPEG_MAX_SIDE:,} per side" if h * w <= GRID_MAX_PIXELS else (
            f"{h * w / 1e6:,.0f} megapixels: more than PIL, and so most tools, will open")  # fmt: skip
        raise ValueError(f"--out {out}: a grid of {n:,} {size}x{size} images would be {w:,} x {h:,} pixels ({why}); "
                         f"give a folder as --out for one PNG per image, or fewer images")  # fmt: skip


def parse_label(label: str, classes: list[str], words: list[str] | None = None, option: str = "--label") -> int:
    """--label: a class name or index, or the word of a class named by a WordNet id (tench for n01440764), or the
    first of a class's names (Hugging Face's ImageNet names its classes `tench, Tinca tinca`). option: the option
    that named it, for the errors."""
    named = label if label in classes else same_text(label, classes)  # (`café` typed for macOS's decomposed name)
    words = first_names(classes) if words is None else words
    if named is not None:
        return classes.index(named)
    if label.lstrip("-").isdigit() and 0 <= int(label) < len(classes):
        return int(label)
    said = [k for k, w in enumerate(words or []) if w.casefold() == label.strip().casefold()]
    if len(said) == 1:
        return said[0]
    if said:  # (ImageNet's two cranes: the bird and the machine)
        sep = "; " if any("," in classes[k] for k in said) else ", "  # (names with commas: `crane, derrick`)
        raise ValueError(f"{option} {label!r} is the word of {sep.join(classes[k] for k in said)}: give one of those")
    shown = [f"{c} ({w})" for c, w in zip(classes, words)] if words else classes
    raise ValueError(
        f"{option} {label!r}: not a class name or an index in 0..{len(classes) - 1} "
        f"(classes: {', '.join(shown[:20])}{' ...' if len(classes) > 20 else ''})"
        f"{near_misses([label], [*classes, *(words or [])])}"
    )


def parse_classes(text: str, classes: list[str], words: list[str] | None = None) -> list[int]:
    """sample --classes: the classes' indices, in the order named: names, indices or words as --label takes them,
    comma-separated, or START:END ranges of the sorted classes (as training's --classes)."""
    return [parse_label(c, classes, words, "--classes") for c in wanted_classes(text, classes)]


def noise(n: int, nz: int, gen: torch.Generator, truncation: float = 0.0) -> torch.Tensor:
    """[n, nz] standard normal noise, float32; with truncation T > 0, of the normal truncated to [-T, T] (the values
    past T drawn again, in effect: drawn at once through the inverse of the normal's CDF, however small T is)."""
    if not truncation:
        return torch.randn(n, nz, generator=gen)
    lo = torch.special.ndtr(torch.tensor(-truncation, dtype=torch.float64))
    u = torch.rand(n, nz, generator=gen, dtype=torch.float64)
    t = torch.tensor(truncation, dtype=torch.float32)
    return torch.special.ndtri(lo + u * (1 - 2 * lo)).float().clamp_(-t, t)  # (rounding to float32 kept within)


def latents(g: Generator, n: int, seed: int, period: int = 0, steps: int = 0) -> torch.Tensor:
    """The noise [n, nz] of n images, drawn at once from `seed` (truncated at g.truncation where generator_state set
    it). period > 0: `period` vectors, image i's the (i % period)-th (--same-noise). steps > 1 (--interpolate): walks
    of `steps` images each, in a straight line from one drawn vector to another, both ends included."""
    gen, nz, t = torch.Generator().manual_seed(seed), g.spec.nz, getattr(g, "truncation", 0.0)
    own = period or n  # the images with noise of their own
    if steps:
        ends = noise(2 * (own // steps), nz, gen, t).view(2, -1, 1, nz)
        z = torch.lerp(ends[0], ends[1], torch.linspace(0, 1, steps).view(1, steps, 1)).reshape(-1, nz)
    else:
        z = noise(own, nz, gen, t)
    return z[torch.arange(n) % own] if period else z


@torch.no_grad()
def generate_batches(g: Generator, labels: torch.Tensor, seed: int, batch: int = 256, period: int = 0, steps: int = 0):
    """(start, images [b, C, H, W] in [-1, 1], float32 on the host) for labels [N], batch by batch, of latents(g, N,
    seed, period, steps): image i is the same however the batches fall."""
    z = latents(g, len(labels), seed, period, steps)
    dev = next(g.parameters()).device
    for i in range(0, len(z), batch):
        yield i, g(z[i : i + batch].to(dev), labels[i : i + batch].to(dev)).float().cpu()


def generate(g: Generator, labels: torch.Tensor, seed: int, batch: int = 256, period: int = 0, steps: int = 0):
    """labels [N] -> images [N, C, H, W] in [-1, 1], float32 on the host."""
    return torch.cat([x for _, x in generate_batches(g, labels, seed, batch, period, steps)])


def image_paths(out: Path, classes: list[str], labels: torch.Tensor, image_folder: bool) -> list[Path]:
    """Where each generated image goes: OUT/<class>_<i>.png (i: the image's number), or with image_folder
    OUT/<class>/<class>_<k>.png (k: its number within the class). Class names are made safe for file names, and
    told apart where two would be one name (`a b` and `a_b`; `Cat` and `cat` on macOS and Windows): `a_b_0`, `a_b_1`
    (the class numbers), where --image-folder would have merged two classes into one folder."""
    safe = [file_safe(c) for c in classes]
    shared = Counter(n.lower() for n in safe)
    safe = [n if shared[n.lower()] == 1 else f"{n}_{k}" for k, n in enumerate(safe)]
    seen: dict[int, int] = {}
    paths = []
    for i, lab in enumerate(labels.tolist()):
        name = safe[lab]
        k = seen[lab] = seen.get(lab, -1) + 1
        paths.append(out / name / f"{name}_{k:05d}.png" if image_folder else out / f"{name}_{i:05d}.png")
    return paths


@plain_warnings
def main(argv: list[str] | None = None) -> int:
    tolerant_console()
    p = argparse.ArgumentParser(
        prog="python -m fastacgan.sample",
        description=__doc__.split("\n\n")[0],
        formatter_class=DefaultsHelp,
    )
    # -ckpt, -l, -o, -d: the spellings of the MNIST AC-GAN's inference script (seed 002)
    add_ckpt_arguments(p, "-ckpt")
    p.add_argument("--label", "-l", default=None, help="class index or name (or the word of a class named by a "
                   "WordNet id: tench for n01440764); omit for one row per class")  # fmt: skip
    p.add_argument("--n", type=int, default=None, help="images to generate with --label (default: 64)")
    p.add_argument("--per-class", type=int, default=None, help="images per class without --label (default: 10)")
    p.add_argument("--out", "-o", default="samples.png", help="a .png/.jpg grid, or a folder for one PNG per image")
    p.add_argument(
        "--image-folder",
        action="store_true",
        help="with a folder --out: write OUT/<class>/<class>_NNNNN.png, the layout --data reads",
    )
    p.add_argument("--classes", default="", help="without --label: the classes to generate, a row (or --per-class "
                   "images) each: names, indices or words, comma-separated, or START:END ranges of the sorted "
                   "classes, as training's --classes; default: all")  # fmt: skip
    p.add_argument("--same-noise", action="store_true", help="without --label: every class's images from the same "
                   "--per-class noise vectors (a grid's column: one noise across the classes), to show what the "
                   "noise does apart from the class")  # fmt: skip
    p.add_argument("--interpolate", type=int, default=0, metavar="K", help="rows of K images each, walking in a "
                   "straight line from one noise vector to another (the AC-GAN paper's interpolations): a row per "
                   "class, or --n rows of the --label class; 0 = off")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--device", "-d", default="cpu", help="cpu, cuda, cuda:N, or auto (cuda if available)")
    add_ema_argument(p)
    add_truncation_argument(p)
    a = p.parse_args(argv)
    a.ckpt, a.out = ckpt_argument(p, a), os.path.expanduser(a.out)
    done, total = 0, 0  # images written, and to write (for an interrupted run's message)
    unused = ("--n is not used without --label (--per-class counts each class's images)" if a.label is None
              else "--per-class is not used with --label (--n counts that class's images)")  # fmt: skip
    if (a.n if a.label is None else a.per_class) is not None:  # (--n 4 without --label wrote 10 of each class)
        echo_quietly(f"note: {unused}", sys.stderr)
    elif a.interpolate and a.label is None and a.per_class is not None:
        echo_quietly("note: --per-class is not used with --interpolate (a row of K images per class)", sys.stderr)
    if a.same_noise and a.label is not None:
        echo_quietly("note: --same-noise is not used with --label (one class: its images' noise differs)", sys.stderr)
    a.n, a.per_class = 64 if a.n is None else a.n, 10 if a.per_class is None else a.per_class
    try:
        if bad := next(((o, v) for o, v in (("--n", a.n), ("--per-class", a.per_class)) if v < 1), None):
            raise ValueError(f"{bad[0]} must be at least 1, got {bad[1]}")  # (an unused one too: it was given)
        if a.classes and a.label is not None:
            raise ValueError(f"--label {a.label} and --classes {a.classes}: give one (--label: one class's --n "
                             "images; --classes: --per-class images of each class named)")  # fmt: skip
        if a.interpolate and a.interpolate < 2:
            raise ValueError(f"--interpolate must be at least 2 (a walk's images, its two ends included), or 0 for "
                             f"none; got {a.interpolate}")  # fmt: skip
        if not a.out.strip():  # (`--out "$DIR"` with DIR unset: the images went into the working folder)
            raise ValueError("--out is empty: give a .png or .jpg grid, or a folder for one PNG per image")
        check_truncation(a.truncation)
        if not 0 <= a.seed <= SEED_MAX:  # (as training's; past 64 bits torch said "Overflow when unpacking long long")
            raise ValueError(f"--seed must be >= 0 and <= {SEED_MAX}, got {a.seed}")
        suffix = Path(a.out).suffix.lower()
        if suffix in IMAGE_EXTS and suffix not in (".png", ".jpg", ".jpeg"):
            raise ValueError(f"--out {a.out}: a grid is written as .png or .jpg; a name without an image extension "
                             f"is a folder for one PNG per image")  # fmt: skip
        grid = suffix in (".png", ".jpg", ".jpeg")
        if grid and a.image_folder:
            raise ValueError(f"--image-folder writes one PNG per image into a folder; --out {a.out} is a grid file")
        device = select_device(a.device)
        fit_threads(lambda msg: None)  # (a container's --cpus: torch's threads to its CPU limit; said by train)
        if device.type == "cpu":
            keep_freed_memory()  # the same images, 20x fewer page faults (writing the PNGs takes most of the time)
        g, state, file = generator_state(a.ckpt, device, a.ema, a.truncation)
        classes = list(state["classes"])
        if a.label is not None:  # (the words of WordNet ids, where the run kept them: tench)
            n = a.n * (a.interpolate or 1)
            labels = torch.full((n,), parse_label(a.label, classes, state.get("class_words")), dtype=torch.long)
            ncol = a.interpolate or math.ceil(math.sqrt(a.n))
        else:
            ncol = a.interpolate or a.per_class
            rows = parse_classes(a.classes, classes, state.get("class_words")) if a.classes else range(len(classes))
            labels = torch.tensor(rows, dtype=torch.long).repeat_interleave(ncol)
        period = ncol if a.same_noise and a.label is None else 0
        walk = {"period": period, "steps": a.interpolate}
        out, total = Path(a.out), len(labels)
        if grid:
            check_grid(a.out, total, ncol, g.spec.image_size)
        try:
            if grid:
                save_png(out, make_grid(to_uint8(generate(g, labels, a.seed, **walk)), ncol))
            else:
                paths = image_paths(out, classes, labels, a.image_folder)
                there = [p for p in paths if p.exists()]
                if there:  # nothing is overwritten
                    raise ValueError(f"--out {a.out}: {there[0]} exists ({len(there)} of the {len(paths)} images "
                                     f"would be overwritten); choose another --out or remove them")  # fmt: skip
                due = Every()
                for start, x in generate_batches(g, labels, a.seed, **walk):
                    for path, im in zip(paths[start:], to_uint8(x)):
                        save_png(path, im, durable=False)  # (a file cut short by Ctrl-C is removed)
                        done += 1
                    if due(done == len(paths)) and len(paths) > 1000:
                        echo_quietly(f"generated {done}/{len(paths)} images ({due.rate(done):.0f}/s)")
        except OSError as e:
            raise ValueError(f"--out {a.out}: cannot write the images ({e.strerror or e})") from e
    except (ValueError, FileNotFoundError) as e:
        echo_quietly(f"error: {e}", sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the rest goes on as a traceback
        if not memory_error(e):
            raise
        whole = (f"; a grid ({total} images) is made whole in memory, a folder (--out DIR) is written batch by batch"
                 if total and Path(a.out).suffix.lower() in (".png", ".jpg", ".jpeg") else "")  # fmt: skip
        echo_quietly(f"error: out of memory: {memory_error_text(e)}{whole}", sys.stderr)
        return 1
    except KeyboardInterrupt:
        kept = f" into {a.out}: remove them, or choose another --out, to write the set again" if done else ""
        echo_quietly(f"interrupted: wrote {done} of {total} image(s){kept}", sys.stderr)
        return 130
    echo_quietly(f"wrote {len(labels)} image(s) from {file}{average_note(state, a.ema)}{truncation_note(g)} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
