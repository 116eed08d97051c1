"""TensorBoard's event file of a run (fastacgan/tb_events.py): its CRC-32C and record framing against the standard's
check values and TensorBoard's own writer, and what a run writes, read back field by field (and by TensorBoard's
reader where it is installed), through a resume and a new run in the same folder."""

import io
import json
import os
import shutil
import struct

import numpy as np
import pytest
from PIL import Image

from fastacgan import tb_events
from fastacgan.tfrecords import _fields
from fastacgan.train import main

EVENTS = tb_events.EVENTS


def run(args):
    return main([str(a) for a in args])


def read_events(data: bytes) -> list[tuple[int, dict]]:
    """Each event of an event file's bytes: (step, {tag: float, (height, width, colorspace, PNG bytes) or (plugin,
    dtype, text)}); the version event as (0, {"file_version": ...})."""
    out = []
    for start, end in tb_events.records(data):
        step, values = 0, {}
        for number, wire, v in _fields(data, start, end):
            if number == 2 and wire == 0:
                step = v
            elif number == 3:
                values["file_version"] = data[v[0] : v[1]]
            elif number == 5:
                for _, _, value in _fields(data, *v):
                    fields = {n: (w, x) for n, w, x in _fields(data, *value)}
                    tag = data[slice(*fields[1][1])].decode()
                    if 2 in fields:  # simple_value: a float after the 1-byte key
                        (values[tag],) = struct.unpack_from("<f", data, value[1] - 4)
                    elif 8 in fields:  # a tensor: the text plugin's string, named in the metadata's plugin data
                        plugin = dict((n, x) for n, _, x in _fields(data, *fields[9][1]))[1]
                        name = data[slice(*dict((n, x) for n, _, x in _fields(data, *plugin))[1])]
                        tensor = {n: x for n, _, x in _fields(data, *fields[8][1])}
                        values[tag] = (name.decode(), tensor[1], data[slice(*tensor[8])].decode())
                    else:
                        img = {n: x for n, _, x in _fields(data, *fields[4][1])}
                        values[tag] = (img[1], img[2], img[3], data[slice(*img[4])])
        out.append((step, values))
    return out


# RFC 3720 (iSCSI), B.4: CRC-32C check values
@pytest.mark.parametrize(
    "data, crc",
    [(b"", 0), (b"123456789", 0xE3069283), (bytes(32), 0x8A9136AA), (b"\xff" * 32, 0x62A8AB43),
     (bytes(range(32)), 0x46DD794E), (bytes(range(31, -1, -1)), 0x113FDB5C)],
)  # fmt: skip
def test_crc32c_check_values(data, crc):
    assert tb_events.crc32c(data) == crc


def test_the_side_by_side_crc_of_long_data_is_the_byte_by_byte_one():
    rng = np.random.default_rng(0)
    chunk = tb_events._CHUNK
    for n in (8 * chunk - 1, 8 * chunk, 8 * chunk + 1, 9 * chunk - 5, 20 * chunk + 777, 300_001):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert tb_events.crc32c(data) == tb_events._register(0xFFFFFFFF, data) ^ 0xFFFFFFFF, n
    assert tb_events.crc32c(bytes(100_000)) == tb_events._register(0xFFFFFFFF, bytes(100_000)) ^ 0xFFFFFFFF


def test_records_are_framed_as_tensorboards_writer_frames_them():
    record_writer = pytest.importorskip("tensorboard.summary.writer.record_writer")
    for data in (b"", b"x", os.urandom(20_000)):
        buf = io.BytesIO()
        record_writer.RecordWriter(buf).write(data)
        assert tb_events.frame(data) == buf.getvalue()


def test_a_damaged_or_cut_record_ends_the_reading():
    recs = [tb_events.frame(tb_events.event(s, [tb_events.scalar("a/b", s / 2)])) for s in (1, 2, 3)]
    whole = b"".join(recs)
    assert [s for s, _ in read_events(whole)] == [1, 2, 3]
    assert [s for s, _ in read_events(whole[:-3])] == [1, 2]  # the last cut short
    bad = bytearray(whole)
    bad[len(recs[0]) + 14] ^= 1  # a byte of the second record's data
    assert [s for s, _ in read_events(bytes(bad))] == [1]


def test_a_run_writes_its_metrics_and_grids_for_tensorboard(tiny_args, tmp_path):
    assert run(tiny_args + ["--steps", "12", "--sample-every", "6", "--image-metrics"]) == 0
    out = tmp_path / "run"
    events = read_events((out / EVENTS).read_bytes())
    assert events[0] == (0, {"file_version": b"brain.Event:2"})
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    scalar_events = [(s, v) for s, v in events if "loss/D" in v]
    assert [s for s, _ in scalar_events] == [r["step"] for r in records] == [5, 10, 12]
    for (_, values), rec in zip(scalar_events, records):
        assert values["loss/D"] == pytest.approx(rec["loss_d"], rel=1e-6)
        assert values["loss/G"] == pytest.approx(rec["loss_g"], rel=1e-6)
        assert values["auxiliary_accuracy/real"] == pytest.approx(rec["acc_real"], rel=1e-6)
        assert values["D_output/fake_after_D_step"] == pytest.approx(rec["d_fake_g"], rel=1e-6)
        assert values["train/ce_fake"] == pytest.approx(rec["ce_fake"], rel=1e-6)
        assert values["speed/images_per_s"] == pytest.approx(rec["images_per_s"], rel=1e-6)
        assert "step" not in values and "train/step" not in values
    # the grids: the same PNG files as samples/ and real.png, at their steps
    grids = [(s, v["samples"]) for s, v in events if "samples" in v]
    assert [s for s, _ in grids] == [0, 6, 12]
    for step, (h, w, colorspace, png) in grids:
        assert png == (out / "samples" / f"step_{step:08d}.png").read_bytes()
        assert (h, w, colorspace) == (10 * 18 + 2, 10 * 18 + 2, 1) == Image.open(io.BytesIO(png)).size[::-1] + (1,)
    (real,) = [v["real"] for _, v in events if "real" in v]
    assert real[3] == (out / "real.png").read_bytes()
    image_metrics = [json.loads(line) for line in (out / "image_metrics.jsonl").read_text().splitlines()]
    tb_psnr = [v["image_metrics/psnr"] for _, v in events if "image_metrics/psnr" in v]
    assert tb_psnr == pytest.approx([r["psnr"] for r in image_metrics], rel=1e-6) and len(tb_psnr) == 3
    # the options, for the Text tab: a Markdown table, those not at their defaults first, with the defaults
    ((step, (plugin, dtype, table)),) = [(s, v["config"]) for s, v in events if "config" in v]
    assert (step, plugin, dtype) == (0, "text", 7)  # DT_STRING
    lines = table.splitlines()
    assert lines[:2] == ["| option | value | default |", "| --- | --- | --- |"]
    changed = lines[2 : lines.index("| `--amp` | `False` | |")]  # the first at its default, in name order
    assert "| `--steps` | `12` | `0` |" in changed and "| `--image-metrics` | `True` | `False` |" in changed
    assert (
        "| `--seed` | `0` | |" in lines and '| `--classes` | `""` | |' in lines and '| preset | `"digits"` | |' in lines
    )


def test_tensorboard_reads_a_runs_file(tiny_args, tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    assert run(tiny_args + ["--steps", "10", "--sample-every", "5"]) == 0
    ea = accumulator.EventAccumulator(str(tmp_path / "run"), size_guidance={"images": 0, "scalars": 0})
    ea.Reload()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(s.step, s.value) for s in ea.Scalars("loss/G")] == [
        (r["step"], pytest.approx(r["loss_g"], rel=1e-6)) for r in records
    ]
    assert [(i.step, i.width) for i in ea.Images("samples")] == [(0, 182), (5, 182), (10, 182)]
    assert ea.Tags()["tensors"] == ["config"] and ea.SummaryMetadata("config").plugin_data.plugin_name == "text"
    assert "| `--steps` | `10` | `0` |" in ea.Tensors("config")[0].tensor_proto.string_val[0].decode()


def test_a_resumed_run_drops_the_events_after_its_checkpoint(tiny_args, tmp_path):
    out = tmp_path / "run"
    assert run(tiny_args + ["--steps", "10", "--sample-every", "5"]) == 0
    # what a run killed after its checkpoint at 10 had written: events of steps 15 and 20, and a record cut short
    extra = tb_events.frame(tb_events.event(15, [tb_events.scalar("loss/D", 99.0)]))
    extra += tb_events.frame(tb_events.event(20, [tb_events.scalar("loss/D", 98.0)]))
    with open(out / EVENTS, "ab") as f:
        f.write(extra + tb_events.frame(tb_events.event(25, [tb_events.scalar("loss/D", 97.0)]))[:-7])
    assert run(tiny_args + ["--steps", "20", "--sample-every", "5", "--resume"]) == 0
    events = read_events((out / EVENTS).read_bytes())
    assert len(events) == len(list(tb_events.records((out / EVENTS).read_bytes())))
    loss_steps = [s for s, v in events if "loss/D" in v]
    assert loss_steps == [5, 10, 15, 20] and 99.0 not in [v.get("loss/D") for _, v in events]
    assert [s for s, v in events if "samples" in v] == [0, 5, 10, 15, 20]
    assert [(s, "| `--steps` | `20` | `0` |" in v["config"][2]) for s, v in events if "config" in v] == [
        (0, False),
        (10, True),
    ]  # each start's options, at the step it starts from
    assert sum("file_version" in v for _, v in events) == 1


def test_a_new_run_replaces_an_earlier_runs_events_and_the_option_turns_them_off(tiny_args, tmp_path):
    out = tmp_path / "run"
    assert run(tiny_args + ["--steps", "5"]) == 0
    shutil.rmtree(out / "checkpoints")  # as a run stopped before its first checkpoint leaves its folder
    with open(out / EVENTS, "ab") as f:
        f.write(tb_events.frame(tb_events.event(3, [tb_events.scalar("loss/D", 99.0)])))
    assert run(tiny_args + ["--steps", "5"]) == 0  # a folder with no checkpoint: a new run
    events = read_events((out / EVENTS).read_bytes())
    assert events[0] == (0, {"file_version": b"brain.Event:2"})
    assert [s for s, v in events if "loss/D" in v] == [5] and 99.0 not in [v.get("loss/D") for _, v in events]
    off = tmp_path / "off"
    assert run([x.replace(str(out), str(off)) for x in tiny_args] + ["--steps", "5", "--no-tensorboard"]) == 0
    assert (off / "metrics.jsonl").exists() and not (off / EVENTS).exists()
