"""Host-side helpers of the fused ops: when they may skip torch.library's dispatch, and launch arithmetic."""

from __future__ import annotations

import typing
from contextlib import nullcontext

import torch

try:
    from triton.runtime.interpreter import InterpretedFunction as _Interpreted
except ImportError:  # no Triton (the fused ops are then never launched), or one without an interpreter
    _Interpreted = ()


# The registered ops' signature types, spelled as torch 2.6's torch.library schema inference knows them (typing's
# List and Optional: it refuses list[...] and X | None, which later versions take)
Tensors = typing.List[torch.Tensor]  # noqa: UP006
Ints = typing.List[int]  # noqa: UP006
OptTensor = typing.Optional[torch.Tensor]  # noqa: UP045
OptDtype = typing.Optional[torch.dtype]  # noqa: UP045


# Triton's NVIDIA backend compiles for compute capability 7.0 (Volta) and later: the loss's cross-program reduction
# needs sm_70's memory-order atomics (ptxas: "Feature '.acq_rel' requires .target sm_70 or higher"), and
# PyTorch's Inductor refuses older GPUs too. On those (Pascal: P100, GTX 10xx) the ops run their references.
MIN_CAPABILITY = (7, 0)
_capable: dict[int, bool] = {}


def triton_supports(device: torch.device) -> bool:
    """Whether the fused ops launch their Triton kernels for tensors on `device`: a CUDA GPU of compute
    capability 7.0+ (or a ROCm GPU). Traced code (torch.compile) takes the kernels: Inductor checks the GPU."""
    if device.type != "cuda":
        return False
    if torch.version.hip or torch.compiler.is_compiling():
        return True
    index = torch.cuda.current_device() if device.index is None else device.index
    ok = _capable.get(index)
    if ok is None:
        ok = _capable[index] = torch.cuda.get_device_capability(index) >= MIN_CAPABILITY
    return ok


def plain_eager(*tensors: torch.Tensor | None) -> bool:
    """Not being traced (torch.compile, make_fx, export: their tensors are subclasses) and only plain tensors
    (or parameters).
    The registered ops then run their implementation directly: the dispatch through torch.library (autograd
    wrapper, redispatch, the dynamo-disabled backend) costs more host time than the kernels take at training
    sizes. Everything that traces uses the registered ops."""
    return not torch.compiler.is_compiling() and all(t is None or _plain(t) for t in tensors)


def on_device_of(t: torch.Tensor):
    """Triton launches on the current CUDA device, not on the tensors' ("Pointer argument cannot be accessed from
    Triton" for a tensor on cuda:1 while cuda:0 is current): a context that makes t's device current when it is
    not. For the plain eager launches; under torch.compile Inductor's code sets the device itself."""
    if t.is_cuda and t.device.index != torch.cuda.current_device():
        return torch.cuda.device(t.device)
    return nullcontext()


def eager_on_gpu_of(impl, t: torch.Tensor):
    """`impl` (a fused op's launcher-calling implementation), run with t's GPU current (on_device_of): what the
    plain eager branch of a fused op calls, where the traced branch calls the registered op."""

    def run(*args):
        with on_device_of(t):
            return impl(*args)

    return run


def launcher(kernel):
    """What a fused op launches `kernel` (a @triton.jit function) through: torch.library.wrap_triton's wrapper,
    which torch.compile traces. Under TRITON_INTERPRET=1 @triton.jit makes an interpreted function, which
    wrap_triton hands back as it is in torch 2.13 and refuses in 2.11 (the GPU machines' image): it is launched
    directly."""
    return kernel if isinstance(kernel, _Interpreted) else torch.library.wrap_triton(kernel)


def plain_ops_only() -> bool:
    """Inside a torch.func transform (grad, vmap, jacrev, ...: per-sample gradients, say) or torch.jit.trace (a
    TorchScript or ONNX export of a model): the fused ops' own autograd.Functions (the Triton launches, and the CPU
    path's hand-written backward) cannot run there ("it must override the setup_context staticmethod"; the tracer's
    "unordered_map::at"), so the public entry points take their references, PyTorch's ops. (Not asked while
    torch.compile traces: the compiled graph's ops are what a transform sees.)"""
    if torch.compiler.is_compiling():
        return False
    return torch._C._are_functorch_transforms_active() or torch.jit.is_tracing()


def check_device(op: str, public: str, kernel, device: torch.device) -> None:
    """A fused op's own entry point (acgan_loss_fused, ...) called on tensors its kernels cannot run on: said by
    name. They run on CUDA tensors, and on any under TRITON_INTERPRET=1 (then `kernel` is interpreted); Triton's
    own words for a CPU tensor were "0 active drivers ([]). There should only be one."."""
    if device.type != "cuda" and not isinstance(kernel, _Interpreted):
        raise ValueError(
            f"{op} runs Triton kernels on CUDA tensors, got tensors on {device} (CPU tensors only under "
            f"TRITON_INTERPRET=1, set before triton is imported); {public} runs its PyTorch reference there"
        )


def _plain(t: torch.Tensor) -> bool:
    """A torch.Tensor, or a Parameter holding one (the weights that spectral norm gets; a tracer's parameters
    hold its own tensors)."""
    return type(t) is torch.Tensor or (type(t) is torch.nn.Parameter and type(t.data) is torch.Tensor)


# plain Python: triton.cdiv and triton.next_power_of_2 are constexpr-aware functions, several times slower per
# call, and a launch of the spectral-norm kernels makes dozens of such calls


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def next_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()
