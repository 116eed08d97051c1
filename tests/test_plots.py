"""Training curves (fastacgan/plots.py): ticks, smoothing, values drawn where they belong, gaps, the CLI."""

import json

import numpy as np
import pytest
from PIL import Image

from fastacgan import plots


def records(n, **const):
    """n records at steps 10, 20, ...: every PANELS key 0.4 unless given."""
    keys = [key for _, _, series in plots.PANELS for key, _, _ in series]
    return [{"step": 10 * (i + 1), **{k: 0.4 for k in keys}, **const} for i in range(n)]


def write(path, recs, extra_lines=()):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs) + "".join(extra_lines))
    return path


@pytest.mark.parametrize("lo,hi,n,want", [(0, 1, 5, [0, 0.2, 0.4, 0.6, 0.8, 1.0]), (0.3, 4.6, 5, [1, 2, 3, 4]),
                                          (50, 1248, 6, [200, 400, 600, 800, 1000, 1200]), (50, 1248, 5, [500, 1000]),
                                          (2, 2, 5, [2])])  # fmt: skip
def test_ticks_are_round_and_cover_the_range(lo, hi, n, want):
    assert plots.nice_ticks(lo, hi, n) == pytest.approx(want)


def test_ema_is_debiased_and_follows_a_step():
    ys = np.array([2.0] * 5 + [0.0] * 30)
    out = plots.ema(ys)
    assert out[:5] == pytest.approx([2.0] * 5)  # a constant is its own average from the first value on
    assert 0 < out[6] < 2 and out[-1] == pytest.approx(0.0, abs=1e-6)


def _colour_rows(img, colour, panel, tol=40):
    """Rows (within `panel`) whose pixels of that colour span most of the plot's width."""
    top = panel * plots.PANEL_H
    part = img[top : top + plots.PANEL_H, plots.MARGIN_L + 2 : plots.WIDTH - plots.MARGIN_R - 2].astype(int)
    hit = (np.abs(part - np.array(colour)).sum(axis=2) < tol).mean(axis=1)
    return np.flatnonzero(hit > 0.8) + top


def test_values_are_drawn_at_their_height():
    """Accuracy panel (fixed 0..1): real at 0.5 and fake at 0.25 are lines at half and a quarter of the height."""
    img = plots.curves_image(records(8, acc_real=0.5, acc_fake=0.25))
    assert img.shape == (plots.PANEL_H * len(plots.PANELS), plots.WIDTH, 3) and img.dtype == np.uint8
    (_, _, series) = plots.PANELS[1]
    (_, _, green), (_, _, orange) = series
    y0, y1 = plots.PANEL_H + plots.MARGIN_T, 2 * plots.PANEL_H - plots.MARGIN_B
    for colour, value in ((green, 0.5), (orange, 0.25)):
        rows = _colour_rows(img, colour, panel=1)
        assert rows.size, f"no line of {colour}"
        assert abs(rows.mean() - (y1 - value * (y1 - y0))) <= 2.5, (colour, rows)


def test_missing_values_and_a_cut_line_leave_gaps_not_errors(tmp_path):
    recs = records(6)
    for r in recs[2:4]:
        del r["loss_g"]  # e.g. records of an older version
    recs[1]["loss_d"] = float("nan")
    path = write(tmp_path / "metrics.jsonl", recs, ['{"step": 70, "loss_d": 0.'])  # killed mid-write
    assert len(plots.read_records(path)) == 6
    assert plots.save_curves(path, tmp_path / "c.png")
    assert Image.open(tmp_path / "c.png").size == (plots.WIDTH, plots.PANEL_H * len(plots.PANELS))
    assert not plots.save_curves(write(tmp_path / "empty.jsonl", []), tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
    # damaged lines (a step that is no number, a value that is text, bytes that are no UTF-8): left out, or a gap;
    # "could not convert string to float" stopped the drawing
    path = write(tmp_path / "damaged.jsonl", recs, ['{"step": "x", "loss_d": 1}\n', '{"step": 80, "loss_d": "oops"}\n'])
    path.write_bytes(path.read_bytes() + b"\xff\xfe\x00\n")
    got = plots.read_records(path)
    assert [r["step"] for r in got] == [r["step"] for r in recs] + [80]
    assert plots.save_curves(path, tmp_path / "d.png") == 7


def test_cli(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    write(run / "metrics.jsonl", records(70))
    assert plots.main([str(run)]) == 0 and (run / "curves.png").stat().st_size > 0
    assert "70 records" in capsys.readouterr().out
    assert plots.main([str(run / "metrics.jsonl"), "--out", str(tmp_path / "x.png")]) == 0
    assert plots.main([str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such file or folder (give a run folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert plots.main([str(tmp_path / "empty")]) == 2
    assert "empty: no metrics.jsonl (give a run folder" in capsys.readouterr().err
    assert plots.main([str(run), "--out", str(tmp_path / "x.jpg")]) == 2
    assert "written as .png" in capsys.readouterr().err


def test_the_bitmap_font_of_an_older_pillow_draws_too(monkeypatch):
    """Pillow before 10.1 (setup.py takes 9.5) has no sized default font: the bitmap one takes no anchors. A newer
    Pillow is made to answer as 9.5 does (load_default(size=...) refused); 9.5 itself is the case as it is."""
    bitmap = getattr(plots.ImageFont, "load_default_imagefont", None)  # Pillow 10.1+
    if bitmap is not None:

        def old_load_default(*args, **kwargs):
            if args or kwargs:
                raise TypeError("load_default() got an unexpected keyword argument 'size'")
            return bitmap()

        monkeypatch.setattr(plots.ImageFont, "load_default", old_load_default)
    assert not isinstance(plots._font(), plots.ImageFont.FreeTypeFont)
    img = plots.curves_image(records(8, acc_real=0.5))
    assert img.shape == (plots.PANEL_H * len(plots.PANELS), plots.WIDTH, 3) and (img < 128).any()


def test_cli_says_when_it_cannot_write(tmp_path, capsys):
    write(tmp_path / "metrics.jsonl", records(3))
    assert plots.main([str(tmp_path), "--out", "/proc/no/c.png"]) == 2
    assert "cannot write it" in capsys.readouterr().err
