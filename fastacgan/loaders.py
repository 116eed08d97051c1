"""Loaders: serve batches of decoded images to the training device, in an order that depends only on
(seed, epoch, rank). Three kinds, chosen by --loader (see `choose_loader`):
- resident (MemoryLoader): the decoded uint8 set held on the training device; a batch is a gather + flip there
  (a set already in memory that would take over half a GPU's free memory: gathered on the host, then copied);
- torch (StreamLoader): PIL decoding in DataLoader worker processes, batch by batch;
- dali (fastacgan.dali_pipeline.DaliLoader): NVIDIA DALI decodes on the GPU, batches read ahead in a thread.
Every loader serves uint8 [B, H, W, C] batches; the step converts them (to_model_input) in its compiled region.
Epoch e visits sampling.epoch_order (a permutation; --balance-classes: draws) drop-last; rank r takes every W-th.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Iterator
from contextlib import nullcontext

import torch

from .data import Catalog, DataError
from .decode import DecodeSet, decode_all, report_bad
from .decode_cache import decoded_cache, load_decoded, save_decoded
from .heap import byte_size
from .limits import host_memory_available
from .sampling import class_weights, epoch_indices, epoch_order  # noqa: F401 - epoch_order: also this module's
from .workers import (
    collate_decoded,
    leave_stop_signals_to_the_parent,
    pixels_through_shared_memory,
    worker_context,
    workers_note,
)


class BaseLoader:
    """Common part: batch size, shard, steps per epoch (drop-last: every batch has the same shape); the images'
    weights where the classes are drawn evenly (--balance-classes)."""

    weights: torch.Tensor | None = None

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device, hflip: bool, shard):
        self.n, self.batch_size, self.seed, self.device = n, batch_size, seed, device
        self.hflip, self.shard = hflip, shard
        per_rank = n // shard[1]
        if per_rank < batch_size:
            each = f"{per_rank} images" + (" per process" if shard[1] > 1 else "")
            fix = f": give --batch-size {per_rank} or less, or more images" if per_rank else ""
            raise DataError(f"--batch-size {batch_size} is larger than the data set ({each}){fix}")
        self.steps_per_epoch = per_rank // batch_size
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def full_batch(self, x: torch.Tensor | None, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A streamed batch that lost unreadable images, filled back to batch_size by repeating its readable ones
        in order, so every step has one shape (no recompilation, no second CUDA graph) and an epoch keeps its
        number of steps (resume arithmetic). A batch with no readable image repeats the previous batch."""
        n = 0 if x is None else len(x)
        if n == 0:
            if self._last is None:
                raise DataError(f"none of the {self.batch_size} images of a batch could be decoded; check --data")
            return self._last
        if n < self.batch_size:
            take = torch.arange(self.batch_size) % n
            x, labels = x[take.to(x.device)], labels[take.to(labels.device)]
        self._last = (x, labels)
        return x, labels

    def batches(self, epoch: int, start_step: int, device: torch.device | None = None):
        """(step, indices, flips) of this rank's batches from start_step to the end of the epoch; with `device`,
        the epoch's order is copied there once and each batch's indices and flips are slices of it."""
        idx, flips = epoch_indices(self.n, self.seed, epoch, self.shard, self.weights)
        if device is not None:
            used = self.steps_per_epoch * self.batch_size
            idx, flips = idx[:used].to(device, non_blocking=True), flips[:used].to(device, non_blocking=True)
        for step in range(start_step, self.steps_per_epoch):
            sl = slice(step * self.batch_size, (step + 1) * self.batch_size)
            yield step, idx[sl], flips[sl]


def _flip(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Mirror the images [B, H, W, C] whose flag is set (flags on the host or on x's device)."""
    return torch.where(flips.to(x.device, non_blocking=True)[:, None, None, None], x.flip(2), x)


class MemoryLoader(BaseLoader):
    """The resident loader: a decoded uint8 set held on the training device; each batch is a gather (and a flip)
    on the device, with no host work and no host sync. on_host: the set stays in host memory (host_kept), each batch
    gathered there into pinned memory and copied."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int, device: torch.device,
                 hflip: bool, shard: tuple[int, int] = (0, 1), on_host: bool = False):  # fmt: skip
        super().__init__(len(labels), batch_size, seed, device, hflip, shard)
        self.on_host = on_host  # the set stays in host memory; each batch is gathered there and copied (see host_kept)
        self.images = images if on_host else images.to(device)
        self.labels = labels.to(device)

    def epoch(self, epoch: int, start_step: int = 0):
        if self.on_host:
            yield from self._from_host(epoch, start_step)
            return
        # the epoch's order goes to the device in one copy: a batch is a slice of it, a gather and a flip there
        for _, idx, flips in self.batches(epoch, start_step, self.device):
            x = self.images[idx]  # uint8 [B, H, W, C]
            yield (_flip(x, flips) if self.hflip else x), self.labels[idx]

    def _from_host(self, epoch: int, start_step: int):
        pin = self.device.type == "cuda"  # a pinned batch is copied while the host goes on
        for _, idx, flips in self.batches(epoch, start_step):
            x = torch.empty((len(idx), *self.images.shape[1:]), dtype=torch.uint8, pin_memory=pin)
            x = torch.index_select(self.images, 0, idx, out=x).to(self.device, non_blocking=True)
            yield (_flip(x, flips) if self.hflip else x), self.labels[idx.to(self.device, non_blocking=True)]


class _Plan:
    """A batch sampler whose batches are set from outside: the current epoch's, in order."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class StreamLoader(BaseLoader):
    """The PyTorch loader: PIL decodes each batch in worker processes. Bad files drop out of their batch, which
    is filled back to full size (BaseLoader.full_batch)."""

    def __init__(self, cat: Catalog, size: int, channels: int, batch_size: int, seed: int, device: torch.device,
                 hflip: bool, workers: int, policy: str, shard: tuple[int, int] = (0, 1), log=print):  # fmt: skip
        super().__init__(len(cat), batch_size, seed, device, hflip, shard)
        self.cat, self.policy, self.workers = cat, policy, workers
        shm = pixels_through_shared_memory(workers, batch_size, size, channels, log)
        self.dataset = DecodeSet(cat, size, channels)
        self.plan = _Plan()
        # one DataLoader for the run: its workers live from epoch to epoch (no new processes per epoch); each
        # epoch sets the plan its batch sampler reads
        self.loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=self.plan, num_workers=workers,
                                                  collate_fn=functools.partial(collate_decoded, shared_memory=shm),
                                                  pin_memory=device.type == "cuda",
                                                  persistent_workers=workers > 0,
                                                  worker_init_fn=leave_stop_signals_to_the_parent,
                                                  multiprocessing_context=worker_context(workers))  # fmt: skip

    def epoch(self, epoch: int, start_step: int = 0):
        plan = list(self.batches(epoch, start_step))
        self.plan.batches = [idx.tolist() for _, idx, _ in plan]
        labels = torch.as_tensor(self.cat.labels)
        for (_, _, flips), (pos, idx, x, errors, _) in zip(plan, self.loader):
            report_bad(errors, self.policy)
            if x is not None and self.hflip:
                x = _flip(x, flips[pos])
            x, y = self.full_batch(x, labels[idx])
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


LOADERS = ("auto", "resident", "dali", "torch")


def resident_budget_gb(cache_gb: float, device: torch.device) -> tuple[float, str]:
    """(how much decoded data may stay resident, what set it): --cache-gb, and at most half of the memory where it
    stays: a GPU's free memory, or on a CPU what this process may still take (host_memory_available: in a 4 GB
    container the default 4 GB budget was taken whole, and the kernel killed the run while it decoded)."""
    if device.type == "cuda":
        free, what = torch.cuda.mem_get_info(device)[0], "half the GPU's free memory"
    else:
        free, what = host_memory_available(), "half the memory this process may still take"
    if free is None or cache_gb <= free / 2 / 2**30:
        return cache_gb, "--cache-gb"
    return free / 2 / 2**30, what


IN_MEMORY = (
    "the images are in memory already decoded (the built-in set, CIFAR batches, idx files, .npz, .npy, pixel "
    "CSVs, SVHN, STL-10 and Downsampled ImageNet files)"
)
NOT_FOR_DALI = (".gif", ".avif")  # DALI has no decoder for these: its loaders hand them to PIL one by one
MOSTLY_NOT_FOR_DALI = "most images are GIFs or AVIFs, which DALI has no decoder for"


def host_kept(need: int, device: torch.device) -> str | None:
    """Why a set already in memory (IN_MEMORY), `need` bytes at the model's size, stays in host memory with each
    batch copied to the GPU, or None: it goes to the device whole. It does where it takes at most half the GPU's
    free memory (--cache-gb bounds what is decoded, which such a set is not); the 64x64 Downsampled ImageNet's half,
    7.9 GB, went to the GPU whole whatever its size, and took the memory that training needs on a smaller GPU."""
    if device.type != "cuda":
        return None  # in host memory already
    budget_gb, by = resident_budget_gb(float("inf"), device)
    if need <= budget_gb * 2**30:
        return None
    return f"{byte_size(need)} exceeds {by} ({byte_size(budget_gb * 2**30)}): kept in host memory"


def mostly_not_for_dali(cat: Catalog) -> bool:
    """Most of the images are files DALI cannot decode (told by their names): DALI's loaders would decode them with
    PIL one at a time in their own thread, where the PIL loaders decode in --workers processes."""
    return 2 * sum(n.lower().endswith(NOT_FOR_DALI) for n in cat.names) > len(cat)


def choose_loader(kind: str, cat: Catalog, size: int, channels: int, cache_gb: float, device: torch.device,
                  has_dali: bool) -> tuple[str, str]:  # fmt: skip
    """(loader, the reason) for --loader `kind`."""
    if kind not in LOADERS:
        raise DataError(f"--loader {kind!r}: choose from {', '.join(LOADERS)}")
    need = len(cat) * size * size * channels  # bytes decoded
    if cat.images is not None:
        return "resident", IN_MEMORY
    if kind == "dali" and not has_dali:
        raise DataError("--loader dali: NVIDIA DALI is not installed here (pip install nvidia-dali-cuda130)")
    if kind != "auto":
        return kind, "asked for with --loader"
    budget_gb, by = resident_budget_gb(cache_gb, device)
    budget = budget_gb * 2**30
    if need <= budget:
        return "resident", f"{byte_size(need)} decoded fits the {byte_size(budget)} budget ({by})"
    over = f"{byte_size(need)} decoded exceeds the {byte_size(budget)} resident budget ({by})"
    if has_dali and device.type == "cuda" and mostly_not_for_dali(cat):
        return "torch", f"{over}; {MOSTLY_NOT_FOR_DALI}: PIL workers decode them"
    if has_dali and device.type == "cuda":
        return "dali", f"{over}; DALI streams it, decoding on the GPU"
    if has_dali:  # DALI's CPU pipeline decodes every JPEG at full size; PIL decodes large ones at reduced scale
        return "torch", f"{over}; on a CPU, PIL workers decode with less CPU time per image than DALI's CPU pipeline"
    return "torch", f"{over} and DALI is not installed"


def resident_decoder(cat: Catalog, device: torch.device, has_dali: bool) -> str:
    """Who decodes the resident set: "DALI" (on the GPU) or "PIL" (worker processes)."""
    gpu_decodes = has_dali and device.type == "cuda" and cat.images is None
    return "DALI" if gpu_decodes and not mostly_not_for_dali(cat) else "PIL"


def make_loader(cat: Catalog, size: int, channels: int, batch_size: int, seed: int, device: torch.device,
                hflip: bool, workers: int, policy: str, cache_gb: float, kind: str = "auto", log=print,
                shard: tuple[int, int] = (0, 1), decode_cache: str = "", balance: bool = False):  # fmt: skip
    """The loader for --loader `kind`. decode_cache: where the resident loader keeps the decoded set for later runs
    (decode_cache.decoded_cache; empty: none). balance: each class's images drawn equally often (--balance-classes)."""
    loader = _make_loader(cat, size, channels, batch_size, seed, device, hflip, workers, policy, cache_gb, kind, log,
                          shard, decode_cache)  # fmt: skip
    if balance:  # (the resident set's labels: those of the images that decoded)
        labels = loader.labels.cpu() if isinstance(loader, MemoryLoader) else torch.as_tensor(cat.labels)
        loader.weights, counts = class_weights(labels), torch.bincount(labels)
        few = int(torch.where(counts > 0, counts, counts.max()).argmin())  # (a class whose images all failed: none)
        more = len(labels) / int((counts > 0).sum()) / int(counts[few])  # (how much more often the rarest comes)
        log("balanced classes (--balance-classes): each class's real images drawn equally often, with replacement; "
            + (f"the rarest, {cat.class_names[few]}, {more:.1f}x as often as its share of the images" if more >= 1.05
               else "the classes hold as many images each already"))  # fmt: skip
    return loader


def _make_loader(cat: Catalog, size: int, channels: int, batch_size: int, seed: int, device: torch.device,
                 hflip: bool, workers: int, policy: str, cache_gb: float, kind: str, log,
                 shard: tuple[int, int], decode_cache: str):  # fmt: skip
    from .dali_pipeline import DaliError, DaliLoader, dali_available

    has_dali = dali_available()
    name, why = choose_loader(kind, cat, size, channels, cache_gb, device, has_dali)
    on_host = None
    if name == "resident":  # (who decodes it: asked here only, since it reads every name on a GPU with DALI)
        decoder = resident_decoder(cat, device, has_dali)
        why_pil = f" ({MOSTLY_NOT_FOR_DALI})" if decoder == "PIL" and has_dali and device.type == "cuda" else ""
        once = "" if cat.images is not None else f"decode once with {decoder}{why_pil}, "
        on_host = host_kept(len(cat) * size * size * channels, device) if cat.images is not None else None
        detail = f"{once}keep uint8 on {device}"
        if on_host is not None:
            detail, why = f"keep uint8 on the host, copy each batch to {device}", f"{why}; {on_host}"
    else:
        detail = f"{workers} DALI threads" if name == "dali" else f"PIL in {workers} worker processes"
    log(f"loader: {name} ({detail}): {why}")
    if cat.images is None and (note := workers_note(workers)):
        log(note)
    cached = bool(decode_cache) and name == "resident" and cat.images is None
    if decode_cache and not cached:
        what = IN_MEMORY if cat.images is not None else f"the {name} loader streams"
        log(f"--decode-cache {decode_cache}: not used ({what})")
    if name == "resident":
        images = got = None
        # the key is taken before decoding: a file changed meanwhile gives a key that the next run will not match
        entry = decoded_cache(decode_cache, cat, size, channels, decoder) if cached else None
        if entry is not None:
            got = load_decoded(*entry, policy, log)
        if got is not None:
            images, labels = got
        elif decoder == "DALI":
            dali = DaliLoader(cat, size, channels, min(256, len(cat)), seed, device, False, workers, policy)
            why_not = dali.cannot_run()  # e.g. a driver too old for this DALI build: PIL still works
            if why_not is None:
                try:
                    images, labels = dali.decode_all(log)
                except DaliError as e:  # DALI failing on files that PIL reads
                    why_not = str(e).splitlines()[0]
            if why_not is not None:
                log(f"DALI could not decode on {device} ({why_not}); decoding with PIL instead")
                decoder = "PIL"
                entry = decoded_cache(decode_cache, cat, size, channels, decoder) if cached else None
        if images is None:
            images, labels = decode_all(cat, size, channels, workers, policy, log)
        if entry is not None and got is None:
            save_decoded(*entry, images, labels, cat.skipped, log)
        return MemoryLoader(images, labels, batch_size, seed, device, hflip, shard, on_host is not None)
    if name == "dali":
        loader = DaliLoader(cat, size, channels, batch_size, seed, device, hflip, workers, policy, shard)
        why_not = loader.cannot_run()
        if why_not is None:
            return loader
        if kind == "dali":
            raise DataError(f"--loader dali: DALI cannot run on {device} ({why_not}); use --loader torch")
        # e.g. nvidia-dali-cuda130 on a driver for CUDA 12: training goes on, with the PIL workers
        log(f"DALI cannot run on {device} ({why_not}); streaming with PIL in {workers} worker processes instead")
    return StreamLoader(cat, size, channels, batch_size, seed, device, hflip, workers, policy, shard, log)


def to_model_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A loader's batch, uint8 [B, H, W, C] -> float [B, C, H, W] in [-1, 1], channels-last in memory
    (channels_last) or contiguous NCHW."""
    if x.dtype != torch.uint8:
        raise TypeError(f"to_model_input: expected a uint8 [B, H, W, C] batch, got {x.dtype}")
    x = x.permute(0, 3, 1, 2)
    # one copy into the layout asked for. A 1-channel map is the same bytes in both layouts and gets the plain
    # NCHW strides: traced with dynamic shapes (a recompile after a batch of another size), PyTorch's layout
    # inference and its kernels disagree on a 1-channel channels-last tensor, and a convolution then a flatten
    # of the result fails inside the compiled step
    fmt = torch.channels_last if channels_last and x.shape[1] > 1 else torch.contiguous_format
    return x.to(torch.float32, memory_format=fmt).mul_(1 / 127.5).sub_(1)


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


def read_ahead(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], depth: int, device: torch.device):
    """Yield what the iterator `batches` yields, produced in a thread of its own up to `depth` batches ahead, so
    that reading and decoding the next batches overlap the training step (file reads and DALI's work release the
    GIL). The batches come in the iterator's order; an exception it raises comes out here, after the batches
    before it. On CUDA the batches are made on a stream of the thread's own, and the consumer's stream waits for
    each one before it is used. Closing this generator (a loop left early) stops the thread. depth 0: no thread."""
    if depth <= 0:
        yield from batches
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    cuda = device.type == "cuda"
    if cuda:  # a new thread's current device is 0: name the one this thread means by "cuda"
        device = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
    stream = torch.cuda.Stream(device) if cuda else None

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            with (
                torch.cuda.device(device) if cuda else nullcontext(),
                torch.cuda.stream(stream) if cuda else nullcontext(),
            ):
                for batch in batches:
                    ready = None
                    if cuda:
                        ready = torch.cuda.Event()
                        ready.record(stream)
                    if not put((batch, ready)):
                        return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            put(_Failed(e))
        else:
            put(_DONE)

    thread = threading.Thread(target=work, name="fastacgan-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            batch, ready = item
            if ready is not None:
                consumer = torch.cuda.current_stream(device)
                consumer.wait_event(ready)
                for t in batch:  # made on the thread's stream, used on this one: not freed for reuse too early
                    t.record_stream(consumer)
            yield batch
    finally:
        stop.set()
        thread.join()
        close = getattr(batches, "close", None)
        if close is not None:
            close()
