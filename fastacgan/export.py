"""A run's generator as one file that needs torch alone: `python -m fastacgan.export RUN [--out generator.pt2]`.

The file is a torch.export ExportedProgram of G in eval mode (BatchNorm's running statistics), of its moving average
where the run kept one (--g-ema; --no-ema: G's own weights), for any batch size. In a project without fastacgan:

    g = torch.export.load("generator.pt2").module()
    images = g(z, labels)   # z [B, nz] float32 noise (torch.randn), labels [B] int64 -> [B, C, H, W] in [-1, 1]

It also holds fastacgan.json (the classes in label order, nz, the image size and channels, the checkpoint it came
from): `extra = {"fastacgan.json": ""}; torch.export.load(path, extra_files=extra)` fills extra in. The program is
made on --device (its weights are there), and checked there against G on a batch of 3 before it is written."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

import torch

from .checkpoint import atomic_write_bytes
from .config import DefaultsHelp
from .devices import select_device
from .runlog import echo_quietly, plain_warnings, tolerant_console
from .sample import add_ckpt_arguments, add_ema_argument, average_note, ckpt_argument, generator_state, weights_of

META = "fastacgan.json"


def export_generator(g: torch.nn.Module, meta: dict) -> bytes:
    """G (in eval mode, on its device) as an ExportedProgram's file, the batch size left free, with meta as META."""
    nz, dev = g.spec.nz, next(g.parameters()).device
    z, labels = torch.randn(3, nz, device=dev), torch.arange(3, device=dev) % g.spec.num_classes
    batch = torch.export.Dim("batch")
    with torch.no_grad():
        program = torch.export.export(g, (z, labels), dynamic_shapes=({0: batch}, {0: batch}))
        want, got = g(z, labels), program.module()(z, labels)
    # (images in [-1, 1]; on a GPU both may run TF32 convolutions, cuDNN's default, chosen afresh)
    if got.shape != want.shape or not torch.allclose(got, want, atol=1e-3, rtol=0):
        far = f"shape {tuple(got.shape)}" if got.shape != want.shape else f"by up to {(got - want).abs().max():g}"
        raise RuntimeError(f"the exported generator differs from G ({far})")
    buf = io.BytesIO()
    torch.export.save(program, buf, extra_files={META: json.dumps(meta, indent=2)})
    return buf.getvalue()


@plain_warnings
def main(argv: list[str] | None = None) -> int:
    tolerant_console()
    p = argparse.ArgumentParser(
        prog="python -m fastacgan.export", description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelp
    )
    add_ckpt_arguments(p)
    p.add_argument("--out", "-o", default="generator.pt2", help="the file to write (.pt2, torch.export's)")
    p.add_argument("--device", "-d", default="cpu", help="where the program's weights are: cpu, cuda, cuda:N, or auto")
    add_ema_argument(p)
    a = p.parse_args(argv)
    a.ckpt, a.out = ckpt_argument(p, a), os.path.expanduser(a.out)
    try:
        if not a.out.strip() or Path(a.out).is_dir():
            raise ValueError(f"--out {a.out!r}: give a file name (generator.pt2)")
        g, state, file = generator_state(a.ckpt, select_device(a.device), a.ema)
        spec = g.spec
        meta = {"classes": list(state["classes"]), "nz": spec.nz, "image_size": spec.image_size,
                "channels": spec.channels, "generator": weights_of(state, a.ema),
                "checkpoint": str(file.resolve()), "step": state.get("step")}  # fmt: skip
        data = export_generator(g, meta)
        try:
            atomic_write_bytes(a.out, data)
        except OSError as e:
            raise ValueError(f"--out {a.out}: cannot write it ({e.strerror or e})") from e
    except (ValueError, FileNotFoundError) as e:
        echo_quietly(f"error: {e}", sys.stderr)
        return 2
    whose = average_note(state, a.ema)
    size = f"{spec.channels}x{spec.image_size}x{spec.image_size}"
    echo_quietly(f"wrote {a.out} ({len(data) / 1e6:.1f} MB): the generator of {file}{whose}, "
                 f"{len(meta['classes'])} classes, noise of {spec.nz}, {size} images")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
