"""Arrow's IPC format, as Hugging Face's datasets writes its .arrow files (save_to_disk's data-00000-of-00001.arrow,
load_dataset's cache, cifar10-train.arrow): a stream of messages (a schema, then record batches), each a
FlatBuffers table and a body of buffers; or the file form, the same stream between ARROW1 magics. Read: the
columns of binary, string and integer types, in structs (Hugging Face's Image: bytes and path), uncompressed."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

from .parquet_format import Unread

# Arrow's Type union: the buffers an array of each type has besides its children's (validity first)
_BUFFERS = {1: 0, 2: 2, 3: 2, 4: 3, 5: 3, 6: 2, 7: 2, 8: 2, 9: 2, 10: 2, 11: 2, 12: 2, 13: 1, 15: 2, 16: 1, 17: 2,
            18: 2, 19: 3, 20: 3, 21: 2}  # fmt: skip
_BINARY = {4: "<i4", 5: "<i4", 19: "<i8", 20: "<i8"}  # Binary, Utf8, LargeBinary, LargeUtf8: their offsets
_LISTS = (12, 16, 17, 21)  # List, FixedSizeList, Map, LargeList


class _Table:
    """A FlatBuffers table at pos of buf: its fields by slot, through its vtable."""

    def __init__(self, buf, pos: int):
        self.buf, self.pos = buf, pos
        self.vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vsize = struct.unpack_from("<H", buf, self.vt)[0]

    def _at(self, slot: int) -> int:
        o = 4 + 2 * slot
        return struct.unpack_from("<H", self.buf, self.vt + o)[0] if o < self.vsize else 0

    def scalar(self, slot: int, fmt: str, default=0):
        o = self._at(slot)
        return struct.unpack_from(fmt, self.buf, self.pos + o)[0] if o else default

    def table(self, slot: int) -> _Table | None:
        o = self._at(slot)
        return _Table(self.buf, self.pos + o + struct.unpack_from("<I", self.buf, self.pos + o)[0]) if o else None

    def vector(self, slot: int) -> tuple[int, int]:
        """(where a vector's elements begin, how many)."""
        o = self._at(slot)
        if not o:
            return 0, 0
        at = self.pos + o + struct.unpack_from("<I", self.buf, self.pos + o)[0]
        return at + 4, struct.unpack_from("<I", self.buf, at)[0]

    def string(self, slot: int) -> str:
        at, n = self.vector(slot)
        return bytes(self.buf[at : at + n]).decode(errors="replace")

    def tables(self, slot: int) -> list[_Table]:
        at, n = self.vector(slot)
        return [_Table(self.buf, at + 4 * i + struct.unpack_from("<I", self.buf, at + 4 * i)[0]) for i in range(n)]


def _messages(raw):
    """(header type, header table, body) of each message of the stream (or of the file's stream)."""
    pos = 8 if bytes(raw[:6]) == b"ARROW1" else 0
    while pos + 8 <= len(raw):
        size = struct.unpack_from("<i", raw, pos)[0]
        if size == -1:  # the continuation marker (Arrow 0.15+), then the size
            size, pos = struct.unpack_from("<i", raw, pos + 4)[0], pos + 4
        if size == 0:  # the end of the stream
            return
        msg = _Table(raw, pos + 4 + struct.unpack_from("<I", raw, pos + 4)[0])
        body_at, body_len = pos + 4 + size, msg.scalar(3, "<q")
        yield msg.scalar(1, "<B"), msg.table(2), raw[body_at : body_at + body_len]
        pos = body_at + body_len


def _fields(schema: _Table) -> list[tuple[tuple, int, bool, str]]:
    """The schema's fields in depth-first order, as the batches lay out their nodes: (path, type id, whether it is
    in a list, an integer's numpy dtype)."""
    out = []

    def walk(field: _Table, path: tuple, listed: bool) -> None:
        kind = field.scalar(2, "<B")
        if field.table(4) is not None:
            raise Unread(f"column {'.'.join((*path, field.string(0)))} is dictionary-encoded")
        ints = field.table(3) if kind == 2 else None  # (Int: bitWidth, is_signed)
        width = f"<{'i' if ints.scalar(1, '<?') else 'u'}{ints.scalar(0, '<i') // 8}" if ints else ""
        here = (*path, field.string(0))
        out.append((here, kind, listed, width))
        for child in field.tables(5):
            walk(child, here, listed or kind in _LISTS)

    for f in schema.tables(1):
        walk(f, (), False)
    return out


def read_arrow(raw) -> tuple[dict[tuple, tuple], dict[str, str], Callable[[list[tuple]], dict[tuple, list]]]:
    """(each column's path -> (its type as Parquet's numbers: 6 binary or string, 2 integer, None in a list, -1
    another; 0), the schema's metadata, a function that reads the columns of the paths given: {path: values})."""
    messages = _messages(raw)
    kind, schema, _ = next(messages, (0, None, b""))
    if kind != 1:
        raise Unread("it does not begin with a schema")
    fields = _fields(schema)
    metadata = {kv.string(0): kv.string(1) for kv in schema.tables(2)}
    leaves = {p: (None if listed else 6 if k in _BINARY else 2 if k == 2 else -1, 0) for p, k, listed, _ in fields}

    def columns(paths: list[tuple]) -> dict[tuple, list]:
        got: dict[tuple, list] = {p: [] for p in paths}
        for kind, batch, body in messages:
            if kind != 3:
                continue
            if batch.table(3) is not None:
                raise Unread("its record batches are compressed")
            nodes_at, _ = batch.vector(1)
            bufs_at, _ = batch.vector(2)
            b, missing = 0, {}
            for i, (path, k, _, width) in enumerate(fields):
                if k not in _BUFFERS:
                    raise Unread(f"column {'.'.join(path)} is of Arrow type {k}")
                length, nulls = struct.unpack_from("<qq", batch.buf, nodes_at + 16 * i)
                spans = [struct.unpack_from("<qq", batch.buf, bufs_at + 16 * (b + j)) for j in range(_BUFFERS[k])]
                b += len(spans)
                missing[path] = nulls
                if path not in got:
                    continue
                if nulls := max(missing.get(path[:j], 0) for j in range(1, len(path) + 1)):  # (its struct's too)
                    raise Unread(f"{nulls} of column {'.'.join(path)}'s values are missing")
                if k in _BINARY:
                    (o_at, _), (d_at, _) = spans[1], spans[2]
                    offs = np.frombuffer(body, _BINARY[k], length + 1, o_at)
                    got[path] += [bytes(body[d_at + offs[j] : d_at + offs[j + 1]]) for j in range(length)]
                elif k == 2:
                    got[path] += np.frombuffer(body, width, length, spans[1][0]).tolist()
                else:
                    raise Unread(f"column {'.'.join(path)} is of Arrow type {k}")
        return got

    return leaves, metadata, columns
