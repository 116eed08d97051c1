"""Training curves as a PNG, drawn with PIL (no plotting library): the run's metrics.jsonl as three panels,
the charts the reference implementations show beside their samples (losses; the auxiliary classifier's
accuracy; D's outputs D(x), D(G(z)) before and after the D step). Each series is drawn raw (thin, pale) and
smoothed (an exponential moving average, as TensorBoard smooths) once there are enough points.

    python -m fastacgan.plots RUN [--out FILE]      RUN: a run folder (its metrics.jsonl), or the file itself
The trainer redraws RUN/curves.png whenever it writes a sample grid, and at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .imaging import save_png
from .runlog import echo_quietly, plain_warnings, tolerant_console

# (title, y range or None for the data's, [(metrics key, legend, colour)]); colours as the seeds' plots name them
PANELS = [
    ("losses", None, [("loss_d", "D", (31, 119, 180)), ("loss_g", "G", (214, 39, 40))]),
    ("auxiliary classifier accuracy", (0.0, 1.0),
     [("acc_real", "real", (44, 160, 44)), ("acc_fake", "fake", (255, 127, 14))]),
    ("discriminator outputs", (0.0, 1.0),
     [("d_real", "D(x)", (44, 160, 44)), ("d_fake", "D(G(z)) before D step", (127, 127, 127)),
      ("d_fake_g", "after D step", (255, 127, 14))]),
]  # fmt: skip
WIDTH, PANEL_H = 900, 300
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 64, 16, 28, 36
SMOOTH = 0.6  # EMA weight of the past; raw values alone below SMOOTH_FROM points
SMOOTH_FROM = 60


def _font(size: int = 13):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow before 10.1, or one without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text(draw: ImageDraw.ImageDraw, xy, text: str, fill, font, anchor: str = "la") -> None:
    """draw.text with an anchor (l/m/r, a/m for top/middle), also for the bitmap font, which takes none."""
    if isinstance(font, ImageFont.FreeTypeFont):
        draw.text(xy, text, fill=fill, font=font, anchor=anchor)
        return
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left, bottom - top
    x = xy[0] - {"l": 0, "m": w / 2, "r": w}[anchor[0]]
    y = xy[1] - {"a": 0, "m": h / 2}[anchor[1]]
    draw.text((x, y), text, fill=fill, font=font)


def ema(ys: np.ndarray, weight: float = SMOOTH) -> np.ndarray:
    """Exponential moving average, debiased at the start (the first value is its own average)."""
    out, acc, norm = np.empty_like(ys), 0.0, 0.0
    for i, y in enumerate(ys):
        acc, norm = weight * acc + (1 - weight) * y, weight * norm + (1 - weight)
        out[i] = acc / norm
    return out


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi]."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _label(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 or v == int(v) else f"{v:.3g}"


def draw_panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str, xs: np.ndarray,
               series: list[tuple[str, tuple[int, int, int], np.ndarray]], y_range=None) -> None:  # fmt: skip
    """One chart in box (left, top, right, bottom): axes, ticks, grid, each series (legend, colour, values; NaN
    values are gaps), the legend. y_range: fixed limits, else the data's (padded)."""
    font = _font()
    left, top, right, bottom = box
    x0, y0, x1, y1 = left + MARGIN_L, top + MARGIN_T, right - MARGIN_R, bottom - MARGIN_B
    finite = np.concatenate([v[np.isfinite(v)] for _, _, v in series] + [np.zeros(0)])
    if y_range is not None:
        lo, hi = y_range
    elif finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 0.05)
        lo, hi = lo - pad, hi + pad
    else:
        lo, hi = 0.0, 1.0
    xlo, xhi = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    if xhi <= xlo:
        xlo, xhi = xlo - 1, xhi + 1

    def px(x, y):
        return x0 + (x - xlo) / (xhi - xlo) * (x1 - x0), y1 - (y - lo) / (hi - lo) * (y1 - y0)

    _text(draw, (x0, top + 6), title, (0, 0, 0), font)
    for t in nice_ticks(lo, hi):
        _, y = px(xlo, t)
        draw.line([(x0, y), (x1, y)], fill=(225, 225, 225))
        _text(draw, (x0 - 6, y), _label(t), (60, 60, 60), font, "rm")
    for t in nice_ticks(xlo, xhi, 6):
        x, _ = px(t, lo)
        draw.line([(x, y1), (x, y1 + 4)], fill=(60, 60, 60))
        _text(draw, (x, y1 + 6), _label(t), (60, 60, 60), font, "ma")
    _text(draw, ((x0 + x1) / 2, bottom - 17), "step", (60, 60, 60), font, "ma")
    draw.rectangle([x0, y0, x1, y1], outline=(60, 60, 60))
    for _, colour, ys in series:
        smooth = len(ys) >= SMOOTH_FROM
        pale = tuple(int(c + (255 - c) * 0.6) for c in colour)
        for vals, fill, width in [(ys, pale, 1), (_ema_gaps(ys), colour, 2)] if smooth else [(ys, colour, 2)]:
            _polyline(draw, [px(x, min(max(y, lo), hi)) if math.isfinite(y) else None for x, y in zip(xs, vals)],
                      fill, width)  # fmt: skip
    lx = x1
    for name, colour, _ in reversed(series):  # the legend, right-aligned on the title's line (above the data)
        w = draw.textlength(name, font=font)
        _text(draw, (lx, top + 6), name, colour, font, "ra")
        draw.line([(lx - w - 22, top + 13), (lx - w - 6, top + 13)], fill=colour, width=3)
        lx -= w + 34


def _ema_gaps(ys: np.ndarray) -> np.ndarray:
    out = np.full_like(ys, np.nan)
    ok = np.isfinite(ys)
    if ok.any():
        out[ok] = ema(ys[ok])
    return out


def _polyline(draw: ImageDraw.ImageDraw, points: list, fill, width: int) -> None:
    """Lines through consecutive points; None (a non-finite value) breaks the line; a lone point is a dot."""
    run: list = []
    for p in [*points, None]:
        if p is not None:
            run.append(p)
            continue
        if len(run) > 1:
            draw.line(run, fill=fill, width=width)
        elif run:
            (x, y) = run[0]
            draw.ellipse([x - width, y - width, x + width, y + width], fill=fill)
        run = []


def read_records(path: Path) -> list[dict]:
    """metrics.jsonl's records; a line cut short (a run killed mid-write) or damaged (no number as its step) is left
    out (one such line stopped the drawing: "could not convert string to float")."""
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [r for r in records if isinstance(r, dict) and not math.isnan(_number(r.get("step")))]


def _number(value) -> float:
    """A record's value as a float; nan for what is no number (a damaged line's)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def curves_image(records: list[dict]) -> np.ndarray:
    """uint8 [H, W, 3]: the PANELS of these records, one above the other."""
    img = Image.new("RGB", (WIDTH, PANEL_H * len(PANELS)), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    xs = np.array([float(r["step"]) for r in records])
    for k, (title, y_range, keys) in enumerate(PANELS):
        series = [(name, colour, np.array([_number(r.get(key, math.nan)) for r in records]))
                  for key, name, colour in keys]  # fmt: skip
        draw_panel(draw, (0, k * PANEL_H, WIDTH, (k + 1) * PANEL_H), title, xs, series, y_range)
    return np.asarray(img)


def save_curves(metrics: Path, out: Path) -> int:
    """Draw metrics.jsonl's records to `out` (written atomically): how many were drawn, 0 (nothing written) if there
    is no record yet."""
    records = read_records(metrics) if metrics.is_file() else []
    if records:
        save_png(out, curves_image(records), durable=False)
    return len(records)


@plain_warnings
def main(argv: list[str] | None = None) -> int:
    tolerant_console()
    ap = argparse.ArgumentParser(prog="python -m fastacgan.plots", description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a run folder (--out of the training run) or its metrics.jsonl")
    ap.add_argument("--out", default="", help="the PNG to write (default: curves.png in the run folder)")
    args = ap.parse_args(argv)
    run = Path(args.run).expanduser()  # (`--out=~/x.png`: the shell leaves a ~ after = as it is)
    metrics = run if run.is_file() else run / "metrics.jsonl"
    out = Path(args.out).expanduser() if args.out else metrics.parent / "curves.png"
    try:
        if not run.exists():
            raise ValueError(f"{args.run}: no such file or folder (give a run folder, the --out of a training run)")
        if not metrics.is_file():
            raise ValueError(f"{args.run}: no metrics.jsonl (give a run folder, the --out of a training run)")
        if out.suffix.lower() != ".png":
            raise ValueError(f"--out {out}: the curves are written as .png")
        drawn = save_curves(metrics, out)
        if not drawn:
            raise ValueError(f"{metrics} holds no records yet")
    except OSError as e:
        echo_quietly(f"error: --out {out}: cannot write it ({e.strerror or e})", sys.stderr)
        return 2
    except ValueError as e:
        echo_quietly(f"error: {e}", sys.stderr)
        return 2
    echo_quietly(f"wrote {out} ({drawn} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
