"""TensorBoard's event files, written without TensorBoard or TensorFlow: `tensorboard --logdir runs` shows a run's
training curves (each metrics.jsonl record as scalars) and its sample grids. The file is a TFRecord file (each
record: its length, the length's masked CRC-32C, the data, the data's masked CRC-32C) of tensorflow.Event
messages, encoded here field by field (protobuf's wire format): wall_time (1, double), step (2, int64),
file_version (3, string) or summary (5, a Summary: values (1) of a tag (1) and a simple_value (2, float), an image
(4: height 1, width 2, colorspace 3, the PNG 4) or, for the Text tab, a string tensor (8) and the text plugin's name
in its metadata (9)).

A run writes one file, EVENTS, in its --out; a resumed run first drops the events written after its checkpoint (as
metrics.jsonl's records), so that TensorBoard shows no step twice."""

from __future__ import annotations

import functools
import json
import struct
import time
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write_bytes
from .tfrecords import _fields

EVENTS = "events.out.tfevents.fastacgan"  # TensorBoard reads the files whose names hold "tfevents"
FILE_VERSION = b"brain.Event:2"

# metrics.jsonl's keys as TensorBoard's tags: its sections (before the slash) are the charts of curves.png
TAGS = {
    "loss_d": "loss/D", "loss_g": "loss/G",
    "acc_real": "auxiliary_accuracy/real", "acc_fake": "auxiliary_accuracy/fake",
    "d_real": "D_output/real", "d_fake": "D_output/fake_before_D_step", "d_fake_g": "D_output/fake_after_D_step",
    "images_per_s": "speed/images_per_s",
}  # fmt: skip
LEFT_OUT = ("step", "elapsed_s", "pairs")  # the event's own step and time say them

# CRC-32C (Castagnoli; reflected polynomial 0x82F63B78), as TFRecord files check their records
_POLY = 0x82F63B78
_TABLE = []
for _i in range(256):
    for _ in range(8):
        _i = (_i >> 1) ^ (_POLY if _i & 1 else 0)
    _TABLE.append(_i)
_NP_TABLE = np.array(_TABLE, dtype=np.uint32)
_CHUNK = 1024  # bytes of each of the lanes that numpy runs side by side on long data


def _register(reg: int, data: bytes) -> int:
    """The CRC register after `data`, from `reg` (no inversions), a byte at a time."""
    t = _TABLE
    for b in data:
        reg = t[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


@functools.cache
def _chunk_shift() -> tuple[list[int], ...]:
    """The register's change over _CHUNK zero bytes, a linear map (of GF(2)^32), as four tables of its bytes."""
    cols = [_register(1 << j, bytes(_CHUNK)) for j in range(32)]
    tables = []
    for k in range(4):
        tab = [0] * 256
        for v in range(1, 256):
            low = v & -v
            tab[v] = tab[v ^ low] ^ cols[8 * k + low.bit_length() - 1]
        tables.append(tab)
    return tuple(tables)


def _shift(reg: int, times: int) -> int:
    """The register after times * _CHUNK zero bytes."""
    t0, t1, t2, t3 = _chunk_shift()
    for _ in range(times):
        reg = t0[reg & 0xFF] ^ t1[reg >> 8 & 0xFF] ^ t2[reg >> 16 & 0xFF] ^ t3[reg >> 24]
    return reg


def crc32c(data: bytes) -> int:
    """CRC-32C of `data`. Long data (a sample grid's PNG: megabytes) runs as _CHUNK-byte lanes side by side in numpy,
    joined by the CRC's linearity: reg(s, A + B) = shift(s, len(B)) ^ reg(0, B); zeros before the data leave a zero
    register as it is, so the lanes are aligned to the end."""
    n = len(data)
    if n < 8 * _CHUNK:
        return _register(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    lanes = np.frombuffer(bytes(-n % _CHUNK) + bytes(data), np.uint8).reshape(-1, _CHUNK).T.copy()
    reg = np.zeros(lanes.shape[1], np.uint32)
    for col in lanes:
        reg = _NP_TABLE[(reg ^ col) & 0xFF] ^ (reg >> 8)
    s = 0
    for lane in reg.tolist():
        s = _shift(s, 1) ^ lane
    start = _register(_shift(0xFFFFFFFF, n // _CHUNK), bytes(n % _CHUNK))  # the initial 0xFFFFFFFF, carried along
    return s ^ start ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return ((crc >> 15 | crc << 17) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One TFRecord record of `data`."""
    head = struct.pack("<Q", len(data))
    return head + struct.pack("<I", _masked(crc32c(head))) + data + struct.pack("<I", _masked(crc32c(data)))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _delimited(number: int, data: bytes) -> bytes:
    return _key(number, 2) + _varint(len(data)) + data


def event(step: int, values: list[bytes] = (), version: bytes = b"", wall_time: float | None = None) -> bytes:
    """An Event message: the step's Summary of `values` (scalar() and image()), or the file's version."""
    out = _key(1, 1) + struct.pack("<d", time.time() if wall_time is None else wall_time) + _key(2, 0) + _varint(step)
    if version:
        out += _delimited(3, version)
    if values:
        out += _delimited(5, b"".join(_delimited(1, v) for v in values))
    return out


def scalar(tag: str, value: float) -> bytes:
    """A Summary.Value of a simple_value."""
    return _delimited(1, tag.encode()) + _key(2, 5) + struct.pack("<f", value)


def image(tag: str, arr: np.ndarray, png: bytes) -> bytes:
    """A Summary.Value of an image: uint8 [H, W, C] (C 1 or 3) and its PNG file."""
    h, w, c = arr.shape
    img = _key(1, 0) + _varint(h) + _key(2, 0) + _varint(w) + _key(3, 0) + _varint(c) + _delimited(4, png)
    return _delimited(1, tag.encode()) + _delimited(4, img)


def text(tag: str, markdown: str) -> bytes:
    """A Summary.Value of TensorBoard's text plugin: a string tensor (dtype DT_STRING, 7; a scalar: an empty shape)
    in the Markdown its Text tab renders, with the plugin's name in the value's metadata."""
    tensor = _key(1, 0) + _varint(7) + _delimited(2, b"") + _delimited(8, markdown.encode())
    metadata = _delimited(1, _delimited(1, b"text"))
    return _delimited(1, tag.encode()) + _delimited(9, metadata) + _delimited(8, tensor)


def options_table(resolved: dict) -> str:
    """config.json's contents as a Markdown table: the options (those not at their defaults first, with the default),
    then the rest (the preset, the model's spec, the classes: at most 300 characters each)."""
    from .config import TrainConfig

    cfg, default = resolved["config"], TrainConfig().to_dict()
    code = lambda v: f"`{v}`" if v != "" else '`""`'  # noqa: E731
    rows = [
        f"| `--{k.replace('_', '-')}` | {code(cfg[k])} | "
        + ("|" if cfg[k] == default.get(k) else f"{code(default.get(k))} |")
        for k in sorted(cfg, key=lambda k: (cfg[k] == default.get(k), k))
    ]
    rows += [f"| {k} | `{json.dumps(v)[:300]}` | |" for k, v in resolved.items() if k != "config"]
    return "\n".join(["| option | value | default |", "| --- | --- | --- |", *rows])


def scalars(rec: dict, section: str = "") -> list[bytes]:
    """A metrics record's numbers as scalar values: TAGS' names, the others under `section` (or train/)."""
    return [
        scalar(TAGS.get(k, f"{section or 'train'}/{k}"), float(v))
        for k, v in rec.items()
        if k not in LEFT_OUT and isinstance(v, (int, float)) and not isinstance(v, bool)
    ]


def append(path: Path, step: int, values: list[bytes]) -> None:
    """One event of `values` at `step` at the end of the file (made with its version event if absent)."""
    new = not path.exists()
    try:
        with open(path, "ab") as f:
            f.write((frame(event(0, version=FILE_VERSION)) if new else b"") + frame(event(step, values)))
    except OSError as e:
        e.filename = e.filename or str(path)  # a failed write (a full disk) names no file
        raise


def records(data: bytes):
    """(start, end) of each whole record's data whose CRCs hold, to the first that does not (a run killed while it
    wrote one leaves it cut short: it and anything after it are not read)."""
    i = 0
    while i + 12 <= len(data):
        (n,) = struct.unpack_from("<Q", data, i)
        if struct.unpack_from("<I", data, i + 8)[0] != _masked(crc32c(data[i : i + 8])) or i + 16 + n > len(data):
            return
        if struct.unpack_from("<I", data, i + 12 + n)[0] != _masked(crc32c(data[i + 12 : i + 12 + n])):
            return
        yield i + 12, i + 12 + n
        i += 16 + n


def step_of(data: bytes, start: int, end: int) -> int:
    return next((v for number, wire, v in _fields(data, start, end) if number == 2 and wire == 0), 0)


def truncate(path: Path, step: int) -> None:
    """Drop the events after `step`, a resumed run's checkpoint, and a record cut short at the end; for a new run
    (step 0), the file (an earlier run's, stopped before its first checkpoint)."""
    if step == 0:
        path.unlink(missing_ok=True)
    elif path.exists():
        data = path.read_bytes()
        keep = [data[a - 12 : b + 4] for a, b in records(data) if step_of(data, a, b) <= step]
        atomic_write_bytes(path, b"".join(keep))
