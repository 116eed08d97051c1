"""NVIDIA DALI loading: the GPU decodes, resizes, crops and flips; the CPU only reads bytes.

The pipeline is fed by `fn.external_source` with the encoded bytes of each batch, in fastacgan's own epoch
order (randperm(N, seed, epoch), sharded per rank), so the DALI loader serves exactly the batches the other
loaders serve, a resumed run included, and works for every data form (image folder, CSV, tar) through the
Catalog's reader:
    bytes -> decoders.image (device "mixed" on a GPU: nvJPEG) -> resize (shorter side, cubic, antialias)
          -> crop_mirror_normalize (centre crop, per-image flip; HWC uint8, as every loader serves it)
The step converts the uint8 [B, H, W, C] batch to float inside its compiled region (a quarter of the bytes of
a float batch). On a GPU each epoch's batches are made READ_AHEAD batches ahead in a thread of their own
(loaders.read_ahead): reading the files and DALI's decoding overlap the training step instead of adding to it.
On a machine without a GPU the same pipeline runs on the CPU (device_id=None), which is how CI tests it.

A DALI pipeline that meets an undecodable file fails as a whole; the loader then finds the bad file(s) of
that batch with PIL, reports them by name, and (--bad-images skip) rebuilds the pipeline without them. Files that
PIL decodes but DALI cannot (GIFs and AVIFs, which DALI has no decoder for; anything else it refuses, found one
file at a time when a batch fails) are decoded by PIL on the host and take their place in the batch, so a folder
that mixes them in still trains with DALI for the rest.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .data import Catalog, DataError, Every
from .decode import decode_image
from .loaders import BaseLoader, read_ahead

try:
    from nvidia.dali import fn, types
    from nvidia.dali.pipeline import Pipeline
    from nvidia.dali.plugin.pytorch import feed_ndarray

    HAS_DALI = True
except ImportError:  # not installed, or no wheel for this platform
    HAS_DALI = False


# batches an epoch prepares ahead of the step (loaders.read_ahead): READ_AHEAD on a GPU, READ_AHEAD_CPU (none) on a
# CPU device, where the step and the decoder share the cores (a 2-core CPU trained 7% slower with it: isic64, 0.25)
READ_AHEAD, READ_AHEAD_CPU = 2, 0
# batches a loader serves from the caller's thread before it reads ahead (the steps that capture CUDA graphs)
READ_AHEAD_AFTER = 8


class DaliError(DataError):
    """DALI failed where PIL would not: the files are fine, DALI is not (the caller may decode with PIL)."""


def dali_available() -> bool:
    return HAS_DALI


def dali_cannot_decode(data: np.ndarray) -> str | None:
    """The format of a file that DALI's image decoder does not read, told by its first bytes (GIF; AVIF: an ISO
    media file whose `ftyp` box names the avif or avis brand), else None."""
    head = bytes(data[:64])
    if head[:4] == b"GIF8":
        return "GIF"
    if head[4:8] == b"ftyp":  # box size, "ftyp", major brand, minor version, compatible brands
        box = head[8 : int.from_bytes(head[:4], "big")]
        if {box[k : k + 4] for k in range(0, len(box), 4)} & {b"avif", b"avis"}:
            return "AVIF"
    return None


def looks_truncated(data: np.ndarray) -> bool:
    """Cheap check for a cut-off file, which some decoders accept silently: a JPEG must end with its EOI marker
    (0xFFD9, allowing a little trailing padding), a PNG with its IEND chunk."""
    head, tail = bytes(data[:8]), bytes(data[-32:])
    if head[:2] == b"\xff\xd8":
        return b"\xff\xd9" not in tail
    if head == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in tail
    return False


class DaliLoader(BaseLoader):
    """Streams batches through a DALI pipeline. Same interface as loaders.MemoryLoader / StreamLoader."""

    def __init__(self, cat: Catalog, size: int, channels: int, batch_size: int, seed: int, device: torch.device,
                 hflip: bool, workers: int, policy: str, shard: tuple[int, int] = (0, 1),
                 read_ahead: int | None = None):  # fmt: skip
        if not HAS_DALI:
            raise DataError("--loader dali: NVIDIA DALI is not installed (pip install nvidia-dali-cuda130)")
        if cat.read is None:
            raise DataError("--loader dali needs image files; this data set is in memory already decoded")
        super().__init__(len(cat), batch_size, seed, device, hflip, shard)
        self.cat, self.size, self.channels, self.policy = cat, size, channels, policy
        self.threads = max(1, workers)
        default = READ_AHEAD if device.type == "cuda" else READ_AHEAD_CPU
        self.read_ahead = default if read_ahead is None else read_ahead
        self.served = 0  # batches made so far (read-ahead starts after READ_AHEAD_AFTER of them)
        self.bad: set[int] = set()
        self.host: set[int] = set()  # files DALI failed on that PIL decodes: PIL decodes them from then on
        self.told_host = False
        self.worked = False  # DALI has decoded a batch (or a file)
        self.pipe = None

    def _build(self):
        gpu = self.device.type == "cuda"
        device_id = (
            (self.device.index if self.device.index is not None else torch.cuda.current_device()) if gpu else None
        )
        pipe = Pipeline(batch_size=self.batch_size, num_threads=self.threads, device_id=device_id,
                        prefetch_queue_depth=1, exec_pipelined=False, exec_async=False, seed=self.seed)  # fmt: skip
        with pipe:
            enc = fn.external_source(name="enc", dtype=types.UINT8)
            flip = fn.external_source(name="flip", dtype=types.INT32)
            img = fn.decoders.image(enc, device="mixed" if gpu else "cpu",
                                    output_type=types.GRAY if self.channels == 1 else types.RGB)  # fmt: skip
            img = fn.resize(img, resize_shorter=self.size, interp_type=types.INTERP_CUBIC, antialias=True)
            img = fn.crop_mirror_normalize(img, crop=(self.size, self.size), mirror=flip, dtype=types.UINT8,
                                           output_layout="HWC")  # fmt: skip
            pipe.set_outputs(img)
        pipe.build()
        return pipe

    def cannot_run(self) -> str | None:
        """Build the pipeline now, to see that DALI runs on this device (and to have it ready): None, or why not (a
        DALI build for a newer CUDA than the driver has, say)."""
        try:
            self.pipe = self.pipe or self._build()
        except Exception as e:  # noqa: BLE001 - whatever DALI raises, the caller reports it
            return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
        return None

    def _run(self, blobs: list[np.ndarray], flips: list[bool]) -> torch.Tensor:
        if self.pipe is None:
            self.pipe = self._build()
        self.pipe.feed_input("enc", blobs)
        self.pipe.feed_input("flip", [np.array(int(f), dtype=np.int32) for f in flips])
        (out,) = self.pipe.run()
        self.worked = True
        gpu = self.device.type == "cuda"
        x = torch.empty(len(blobs), self.size, self.size, self.channels, dtype=torch.uint8, device=self.device)
        feed_ndarray(out.as_tensor(), x, cuda_stream=torch.cuda.current_stream(self.device) if gpu else None)
        return x

    def _find_bad(self, items: list[tuple[int, bool, np.ndarray]]) -> list[tuple[int, str]]:
        """The images of a batch that PIL cannot decode, with the reason."""
        found = []
        for i, _, blob in items:
            try:
                decode_image(blob.tobytes(), self.cat.names[i], 8, self.channels)
            except DataError as e:
                found.append((i, str(e)))
        return found

    def _batch(self, idx: list[int], flips: list[bool]) -> tuple[list[int], torch.Tensor | None]:
        """Each file is read once; the DALI output of the batch's decodable images and their indices."""
        items, unreadable = [], []
        for i, f in zip(idx, flips):
            if i in self.bad:
                continue
            try:
                items.append((i, f, np.frombuffer(self.cat.read_bytes(i), dtype=np.uint8)))
            except DataError as e:
                unreadable.append((i, str(e)))
        if unreadable:
            self._reject(unreadable)
        # truncation is checked up front (cheap: the file's last bytes), since decoders may accept it silently
        cut = [(i, f"{self.cat.names[i]}: cannot decode image (file is truncated)")
               for i, _, blob in items if looks_truncated(blob)]  # fmt: skip
        if cut:
            self._reject(cut)
            items = [t for t in items if t[0] not in self.bad]
        if not items:
            return [], None
        keep = [i for i, _, _ in items]
        on_host = [k for k, (i, _, blob) in enumerate(items) if i in self.host or dali_cannot_decode(blob)]
        if not on_host:
            try:
                return keep, self._run([blob for *_, blob in items], [f for _, f, _ in items])
            except RuntimeError as e:  # the pipeline is dead after an operator error: find the file, rebuild
                return self._after_failure(items, e)
        # the files DALI cannot decode: PIL's decode (the same resize, crop, flip), in their places in the batch
        pil = {}
        for k in on_host:
            i, f, blob = items[k]
            try:
                img = decode_image(blob.tobytes(), self.cat.names[i], self.size, self.channels)
            except DataError as e:
                self._reject([(i, str(e))])
                return self._batch(keep, [f for _, f, _ in items])
            pil[k] = np.ascontiguousarray(img[:, ::-1] if f else img)
        self._tell_host(items, on_host)
        x = torch.empty(len(items), self.size, self.size, self.channels, dtype=torch.uint8, device=self.device)
        rest = [k for k in range(len(items)) if k not in pil]
        if rest:
            try:
                x[rest] = self._run([items[k][2] for k in rest], [items[k][1] for k in rest])
            except RuntimeError as e:
                return self._after_failure(items, e)
        x[list(pil)] = torch.from_numpy(np.stack(list(pil.values()))).to(self.device)
        return keep, x

    def _after_failure(self, items, error: RuntimeError) -> tuple[list[int], torch.Tensor | None]:
        """A batch that DALI failed on: its files that PIL cannot decode either are rejected (--bad-images);
        if there are none, each file is tried alone to find those DALI cannot decode, which PIL then decodes."""
        self.pipe = None
        bad = self._find_bad(items)
        if bad:
            self._reject(bad)
        else:
            refused = []
            for i, _, blob in items:
                try:
                    self._run([blob], [False])
                except RuntimeError:
                    self.pipe = None
                    refused.append(i)
            # none alone, or every one while DALI has decoded nothing yet: DALI is at fault, not the files
            if not refused or (len(refused) == len(items) and not self.worked):
                names = ", ".join(self.cat.names[i] for i, _, _ in items[:5])
                which = "none of its files alone" if not refused else "each of its files alone too"
                raise DaliError(f"DALI failed on a batch that PIL decodes ({names} ...) and on {which}: {error}; "
                                "--loader torch decodes with PIL") from error  # fmt: skip
            self.host.update(refused)
        keep = [i for i, _, _ in items]
        return self._batch(keep, [f for _, f, _ in items])

    def _tell_host(self, items, on_host: list[int]) -> None:
        if not self.told_host:
            self.told_host = True
            i = items[on_host[0]][0]
            fmt = dali_cannot_decode(items[on_host[0]][2])
            why = f"{fmt}: DALI has no {fmt} decoder" if fmt else "DALI refused it"
            warnings.warn(f"{self.cat.names[i]} and any like it are decoded with PIL on the host ({why}); DALI "
                          "decodes the rest", stacklevel=4)  # fmt: skip

    def _reject(self, bad: list[tuple[int, str]]) -> None:
        if self.policy == "error":
            raise DataError(bad[0][1] + "; pass --bad-images skip to skip such files")
        for i, msg in bad:
            if i not in self.bad:
                self.bad.add(i)
                self.cat.skipped.append(msg)
                warnings.warn(f"skipped {msg}", stacklevel=4)

    def epoch(self, epoch: int, start_step: int = 0):
        batches = self._epoch(epoch, start_step)
        if self.read_ahead <= 0 or self.served >= READ_AHEAD_AFTER:
            return read_ahead(batches, self.read_ahead, self.device)
        return self._read_ahead_later(batches)

    def _read_ahead_later(self, batches):
        """The loader's first READ_AHEAD_AFTER batches made in the caller's thread, the rest read ahead: the first
        steps are where torch.compile's CUDA graphs (and --graph-step's) are captured, and no other CUDA work may
        run in the process meanwhile (PyTorch's rule for capture; DALI's own work is not capturable)."""
        for batch in batches:
            yield batch
            if self.served >= READ_AHEAD_AFTER:
                break
        yield from read_ahead(batches, self.read_ahead, self.device)

    def _epoch(self, epoch: int, start_step: int):
        labels = torch.as_tensor(self.cat.labels)
        for _, idx, flips in self.batches(epoch, start_step):
            keep, x = self._batch(idx.tolist(), flips.tolist() if self.hflip else [False] * len(idx))
            self.served += 1
            yield self.full_batch(x, labels[keep].to(self.device, non_blocking=True))

    def decode_all(self, log=print) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image once, in file order, as uint8 [N', H, W, C] on the device (for the resident loader)."""
        out, labels, done, due = [], [], 0, Every(2.0)
        order = list(range(self.n))
        for s in range(0, self.n, self.batch_size):
            keep, x = self._batch(order[s : s + self.batch_size], [False] * len(order[s : s + self.batch_size]))
            if x is not None:
                out.append(x)
                labels.append(torch.as_tensor(self.cat.labels[keep]))
            done = min(self.n, s + self.batch_size)
            if due(done == self.n):
                log(f"decoding images with DALI: {done}/{self.n} ({due.rate(done):.0f}/s)")
        if not out:
            raise DataError(f"--data: none of the {self.n} images could be decoded")
        return torch.cat(out), torch.cat(labels).to(self.device)
