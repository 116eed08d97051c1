"""Where and in what precision a run computes: --device resolved and checked, what the CPU or GPU does natively
(bf16, fp16, Triton), the autocast dtype --amp picks, the CUDA random state a resume gives its GPU, and what a
device running out of memory said."""

from __future__ import annotations

import re

import torch

from . import kernels
from .config import TrainConfig
from .heap import byte_size


def select_device(name: str) -> torch.device:
    """--device as a torch.device. A GPU given by number (cuda:N) is checked against the machine's and made the
    process's current CUDA device, which is where Triton kernels, CUDA graphs and new streams go."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r}: not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):  # mps, xpu, meta...: a traceback from the first tensor moved there, before
        raise ValueError(f"--device {name}: fastacgan runs on cpu or cuda (NVIDIA GPUs, and AMD's with ROCm's "
                         "PyTorch); use auto, cpu, cuda or cuda:N")  # fmt: skip
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if dev.type == "cuda" and dev.index is not None:
        n = torch.cuda.device_count()
        if dev.index >= n:
            raise ValueError(f"--device {name}: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
        torch.cuda.set_device(dev)
    return dev


def cpu_has_bf16() -> bool:
    return any(getattr(torch.cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def cpu_has_fp16() -> bool:
    return getattr(torch.cpu, "_is_amx_fp16_supported", lambda: False)()


def cuda_has_bf16(device: torch.device) -> bool:
    """Native bf16: compute capability 8.0 (Ampere) and later, and ROCm's GPUs. torch.cuda.is_bf16_supported()
    says yes on older GPUs too (a T4, a V100), where bf16 is emulated, slower than fp32 and far slower than fp16."""
    return bool(torch.version.hip) or torch.cuda.get_device_capability(device) >= (8, 0)


def select_amp(cfg: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, str]:
    """(autocast dtype or None, a sentence for the log). What is asked for is done; on a CPU that would emulate
    the dtype the sentence says so (fp16 without AMX-FP16: digits steps 10-25x slower than fp32 on this project's
    CPU, which has native bf16 but not fp16)."""
    if not cfg.amp and cfg.amp_dtype == "auto":
        return None, "fp32"
    implied = "" if cfg.amp else " (--amp-dtype implies --amp)"
    dtype, note = _amp_dtype(cfg, device)
    return dtype, note + implied


def _amp_dtype(cfg: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, str]:
    cpu = device.type == "cpu"
    if cfg.amp_dtype == "fp16":
        slow = cpu and not cpu_has_fp16()
        return torch.float16, "fp16 autocast with a gradient scaler" + (
            " (this CPU has no native fp16 (AMX-FP16): it is emulated, many times slower than fp32; --amp alone "
            "picks bf16 where the CPU has it, else fp32)" if slow else "")  # fmt: skip
    if cfg.amp_dtype == "bf16":
        why = ""
        if cpu and not cpu_has_bf16():
            why = " (this CPU has no native bf16 (AVX512-BF16/AMX): it is emulated, slower than fp32)"
        elif device.type == "cuda" and not cuda_has_bf16(device):
            why = (f" (this GPU, {_gpu(device)}, has no native bf16: it is emulated, slower than fp32; --amp alone "
                   "picks fp16 there)")  # fmt: skip
        return torch.bfloat16, "bf16 autocast" + why
    if device.type == "cuda":
        if cuda_has_bf16(device):
            return torch.bfloat16, "bf16 autocast"
        return torch.float16, f"fp16 autocast with a gradient scaler (this GPU, {_gpu(device)}, has no native bf16)"
    if cpu_has_bf16():
        return torch.bfloat16, "bf16 autocast (CPU with native bf16)"
    return (
        None,
        "fp32: --amp asked for mixed precision, but this CPU has no native bf16 (AVX512-BF16/AMX), "
        "where bf16 is slower than fp32; --amp-dtype bf16 forces it",
    )


def cuda_rng_to_restore(saved, device: torch.device) -> torch.Tensor | None:
    """The CUDA RNG state a resume gives its GPU, or None (a CPU run or checkpoint). Checkpoints hold their
    training GPU's state; older ones held every visible GPU's (torch.cuda.get_rng_state_all), 8 on an 8-GPU node,
    which torch.cuda.set_rng_state_all failed to load on a machine with fewer (IndexError): of those, the state of
    the GPU of this run's index when the saving machine had one, else the first."""
    if device.type != "cuda" or saved is None or len(saved) == 0:
        return None
    if isinstance(saved, torch.Tensor):
        return saved
    index = device.index or 0
    return saved[index] if index < len(saved) else saved[0]


def _gpu(device: torch.device) -> str:
    major, minor = torch.cuda.get_device_capability(device)
    return f"{torch.cuda.get_device_name(device)}, compute capability {major}.{minor}"


def triton_unsupported(device: torch.device) -> str | None:
    """Why torch.compile (Inductor) and the fused kernels are off on this GPU, or None: both generate Triton code,
    which is compiled for compute capability 7.0 (Volta) and later. A Pascal GPU (P100, GTX 10xx) trains with eager
    PyTorch ops; the other speed features stay."""
    if device.type != "cuda" or kernels.triton_supports(device):
        return None
    return (f"this GPU, {_gpu(device)}, is older than Triton supports (7.0+): torch.compile and the fused kernels "
            "are off, PyTorch's eager ops run the step")  # fmt: skip


def memory_error(e: BaseException | None) -> BaseException | None:
    """The exception in e's chain (e, what it was raised from or while handling) that is a device running out of
    memory, or None: a GPU's (torch.OutOfMemoryError), the CPU allocator's (a RuntimeError "can't allocate memory"),
    numpy's (MemoryError). torch.compile and its CUDA graphs may wrap the allocator's error in their own."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (torch.OutOfMemoryError, MemoryError)) or (
            isinstance(e, RuntimeError) and "can't allocate memory" in str(e)
        ):
            return e
        e = e.__cause__ or e.__context__
    return None


def memory_error_text(e: BaseException) -> str:
    """The allocator's own words, short: what was asked and what the device has (PyTorch's CUDA message goes on
    with advice on fragmentation and a link; the CPU's starts with the C++ check that failed)."""
    text = re.sub(r"^\[enforce fail at [^\]]*\][^.]*\.\s*", "", " ".join(str(memory_error(e) or e).split()))
    text = re.sub(r"(\d{7,}) bytes", lambda m: byte_size(int(m[1])), text)
    return ". ".join(text.split(". ")[:4]).rstrip(".")[:400] or type(e).__name__
