"""The Parquet format, as far as Hugging Face's data sets use it (fastacgan/hf_sets.py reads their images and
labels): the footer's Thrift metadata (compact protocol), column chunks of pages v1 and v2, PLAIN and dictionary
encodings, definition levels (RLE / bit-packed), no compression, Snappy, gzip, zstd (with the zstandard module)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from .data import DataError


class Unread(Exception):
    """What a Parquet file uses that this reader does not (said with the file's name)."""


# ------------------------------------------------------------------------------------------------ Thrift (compact)


class Thrift:
    """Thrift's compact protocol, as Parquet writes its metadata: a struct read as {field id: value}."""

    def __init__(self, buf: bytes, pos: int = 0):
        self.buf, self.pos = buf, pos

    def take(self, n: int) -> bytes:
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def varint(self) -> int:
        out = shift = 0
        while (b := self.take(1)[0]) >= 0x80:
            out, shift = out | (b & 0x7F) << shift, shift + 7
        return out | b << shift

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int):
        if kind in (1, 2):  # a bool field: its value is its type
            return kind == 1
        if kind in (3, 7, 8):  # a byte, a double, bytes
            return self.take(1)[0] if kind == 3 else struct.unpack("<d", self.take(8))[0] if kind == 7 else \
                bytes(self.take(self.varint()))  # fmt: skip
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind in (9, 10):  # a list or set: its size and its elements' type, then the elements
            head = self.take(1)[0]
            n = self.varint() if head >> 4 == 15 else head >> 4
            if head & 0x0F in (1, 2):  # bools in a list: a byte each
                return [b == 1 for b in self.take(n)]
            return [self.value(head & 0x0F) for _ in range(n)]
        if kind == 12:
            return self.struct()
        raise ValueError(f"Thrift type {kind}")  # (maps: none in Parquet's metadata)

    def struct(self) -> dict:
        out, last = {}, 0
        while head := self.take(1)[0]:
            last = last + (head >> 4) if head >> 4 else self.zigzag()
            out[last] = self.value(head & 0x0F)
        return out


# ------------------------------------------------------------------------------------------------ pages


def snappy_decompress(buf: bytes) -> bytes:
    """Snappy's raw format (as Parquet compresses pages): the length, then literals and back-references."""
    t = Thrift(buf)
    size, out, end = t.varint(), bytearray(), len(buf)
    pos = t.pos
    while pos < end:
        tag = buf[pos]
        kind, pos = tag & 3, pos + 1
        if kind == 0:  # a literal: its length - 1 in the tag, or in the 1-4 bytes after it
            n = tag >> 2
            if n >= 60:
                k = n - 59
                n, pos = int.from_bytes(buf[pos : pos + k], "little"), pos + k
            out += buf[pos : pos + n + 1]
            pos += n + 1
            continue
        if kind == 1:
            n, offset, pos = 4 + ((tag >> 2) & 7), ((tag >> 5) << 8) | buf[pos], pos + 1
        else:
            k = 2 if kind == 2 else 4
            n, offset, pos = (tag >> 2) + 1, int.from_bytes(buf[pos : pos + k], "little"), pos + k
        if not 0 < offset <= len(out):
            raise ValueError(f"a back-reference {offset} bytes back, {len(out)} written")
        start = len(out) - offset  # (a copy that overlaps what it writes repeats the last `offset` bytes)
        out += out[start : start + n] if offset >= n else (out[start:] * (n // offset + 1))[:n]
    if len(out) != size:
        raise ValueError(f"{len(out)} bytes, its header says {size}")
    return bytes(out)


def _decompress(codec: int, data: bytes) -> bytes:
    if codec == 0:
        return data
    if codec == 1:
        return snappy_decompress(data)
    if codec == 2:
        return gzip.decompress(data)
    if codec == 6:
        try:
            import zstandard
        except ImportError:
            raise Unread("its pages are zstd-compressed: pip install zstandard, which reads them") from None
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 31)
    names = {3: "LZO", 4: "Brotli", 5: "LZ4", 7: "LZ4"}
    raise Unread(f"its pages are {names.get(codec, codec)}-compressed, which fastacgan does not read (Snappy, "
                  "gzip, zstd)")  # fmt: skip


def _hybrid(buf: bytes, pos: int, width: int, count: int) -> np.ndarray:
    """Parquet's RLE / bit-packed hybrid encoding: `count` values of `width` bits from buf[pos:]."""
    out, t, n = [], Thrift(buf, pos), 0
    nbytes = (width + 7) // 8
    while n < count:
        head = t.varint()
        if head & 1:  # bit-packed: (head >> 1) groups of 8 values
            k = (head >> 1) * width
            bits = np.unpackbits(np.frombuffer(buf, np.uint8, k, t.pos), bitorder="little")
            vals = bits.reshape((head >> 1) * 8, width).astype(np.int64) @ (1 << np.arange(width, dtype=np.int64))
            t.pos += k
        else:  # a run: (head >> 1) times the value in the bytes after it
            vals = np.full(head >> 1, int.from_bytes(t.take(nbytes), "little"), np.int64)
        out.append(vals)
        n += len(vals)
    return np.concatenate(out)[:count] if out else np.zeros(0, np.int64)


def _plain(buf: bytes, pos: int, kind: int, count: int) -> list | np.ndarray:
    if kind == 6:  # BYTE_ARRAY: a 4-byte length, the bytes
        out = []
        for _ in range(count):
            (n,) = struct.unpack_from("<I", buf, pos)
            out.append(bytes(buf[pos + 4 : pos + 4 + n]))
            pos += 4 + n
        return out
    dtypes = {1: "<i4", 2: "<i8", 4: "<f4", 5: "<f8"}
    if kind not in dtypes:
        raise Unread(f"a column of Parquet type {kind}, which fastacgan does not read")
    return np.frombuffer(buf, dtypes[kind], count, pos)


def column(raw: bytes, meta: dict, max_def: int) -> tuple[list, np.ndarray]:
    """(the values of one column chunk that are there, in row order; the definition levels of its rows)."""
    codec, kind = meta.get(4, 0), meta[1]
    pos = meta.get(11) or meta[9]  # the dictionary page first, where there is one
    values, levels, dictionary, seen, total = [], [], None, 0, meta[5]
    while seen < total:
        t = Thrift(raw, pos)
        head = t.struct()
        body, pos = raw[t.pos : t.pos + head[3]], t.pos + head[3]
        if head[1] == 2:  # the dictionary page
            dictionary = _plain(_decompress(codec, body), 0, kind, head[7][1])
            continue
        if head[1] not in (0, 3):  # an index page
            continue
        width = max_def.bit_length()
        if head[1] == 0:
            page, n = _decompress(codec, body), head[5][1]
            at, enc = 0, head[5][2]
            if width:
                (k,) = struct.unpack_from("<I", page, 0)
                defs, at = _hybrid(page, 4, width, n), 4 + k
        else:  # v2: the levels uncompressed before the values
            v2 = head[8]
            n, enc, rep, dl = v2[1], v2[4], v2.get(6, 0), v2.get(5, 0)
            defs = _hybrid(body, rep, width, n) if width else None
            rest = body[rep + dl :]
            page, at = (_decompress(codec, rest) if v2.get(7, True) else rest), 0
        defs = defs if width else np.full(n, max_def)
        present = int((defs == max_def).sum())
        if enc in (2, 8):  # the dictionary's indices
            idx = _hybrid(page, at + 1, page[at], present)
            values += [dictionary[i] for i in idx] if isinstance(dictionary, list) else list(dictionary[idx])
        elif enc == 0:
            got = _plain(page, at, kind, present)
            values += got if isinstance(got, list) else list(got)
        else:
            raise Unread(f"a page in encoding {enc}, which fastacgan does not read (PLAIN, dictionary)")
        levels.append(defs)
        seen += n
    return values, np.concatenate(levels) if levels else np.zeros(0, np.int64)


# ------------------------------------------------------------------------------------------------ a file's schema


def footer(path: Path, raw: bytes) -> dict:
    if len(raw) < 12 or raw[:4] != b"PAR1" or raw[-4:] != b"PAR1":
        raise DataError(f"--data {path}: not a Parquet file (it does not begin and end with PAR1)")
    (n,) = struct.unpack_from("<I", raw, len(raw) - 8)
    return Thrift(raw, len(raw) - 8 - n).struct()


def schema_leaves(schema: list[dict]) -> dict[tuple, tuple[int, int]]:
    """Each leaf column's path -> (its Parquet type, its maximum definition level); a column in a list (a
    REPEATED field) has the type None: no image's single value."""
    out, stack = {}, []  # stack: [name, children left, its definition level, in a list]
    for el in schema[1:]:
        level = (stack[-1][2] if stack else 0) + (el.get(3, 0) != 0)  # (an OPTIONAL or REPEATED field adds one)
        listed = (stack[-1][3] if stack else False) or el.get(3) == 2
        if el.get(5):
            stack.append([el[4].decode(), el[5], level, listed])
            continue
        out[(*(s[0] for s in stack), el[4].decode())] = (None if listed else el.get(1), level)
        while stack:
            stack[-1][1] -= 1
            if stack[-1][1]:
                break
            stack.pop()
    return out
