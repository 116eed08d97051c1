import os

import torch  # importing torch does not import triton

# Without a GPU, Triton kernels run on CPU tensors under the interpreter; set before triton is imported.
# With one, the kernel tests run compiled on CUDA tensors.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import collections  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
if os.environ.get("TRITON_INTERPRET") == "1":
    from triton_compat import fix_interpreter_index

    fix_interpreter_index()  # Triton 3.6's interpreter beside numpy 2.4 (see there)

CLASSES = ("circle", "square", "stripes")
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark_module(name: str):
    """benchmarks/<name>.py as a module (the benchmarks are scripts, not a package), as `bench_<name>`."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def draw(kind: str, rng: np.random.Generator, w: int, h: int, grey: bool = False) -> Image.Image:
    """A small picture whose class is visible: a bright disc, a bright square, or vertical stripes."""
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = w / 2 + rng.uniform(-2, 2), h / 2 + rng.uniform(-2, 2)
    if kind == "circle":
        m = (xx - cx) ** 2 + (yy - cy) ** 2 < (min(w, h) / 3) ** 2
    elif kind == "square":
        m = (abs(xx - cx) < min(w, h) / 4) & (abs(yy - cy) < min(w, h) / 4)
    else:
        m = (xx // 3) % 2 == 0
    base = rng.integers(0, 60, size=3)
    img = np.where(m[..., None], 255 - base, base).astype(np.uint8)
    return Image.fromarray(img[..., 0] if grey else img)


def make_folder(root, n_per_class=8, size=(20, 24), ext=".png", grey=False, classes=CLASSES, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            draw(c, rng, *size, grey=grey).save(root / c / f"{c}_{i:03d}{ext}")
    return root


@pytest.fixture(autouse=True)
def _cudnn_flags_restored():
    """A training run on CUDA sets cuDNN's process-wide flags (set_cuda_flags): each test leaves them as found."""
    cudnn = torch.backends.cudnn
    saved = cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32
    yield
    cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32 = saved


@pytest.fixture
def image_folder(tmp_path):
    return make_folder(tmp_path / "shapes")


def turned(pixels: np.ndarray, orientation: int, fmt: str = "PNG", **save) -> bytes:
    """The encoded image of `pixels` (uint8 [H, W, C]) with EXIF orientation tag `orientation` (1-8): a viewer, and
    decode_image, show it turned or mirrored by it."""
    im = Image.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, format=fmt, exif=exif.tobytes(), **save)
    return buf.getvalue()


def grey16(h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint16 [h, w]: a smooth ramp over the whole 16-bit range with some grain (a 16-bit X-ray or scan)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 65535, h * w).reshape(h, w) + rng.normal(0, 500, (h, w))
    return ramp.clip(0, 65535).astype(np.uint16)


def float_grey(h: int, w: int, seed: int = 0) -> np.ndarray:
    """float32 [h, w] in [0, 1] (a float TIFF): a ramp with grain, and values on the rounding boundaries v * 255 =
    k + 0.5 (k = 0, 1, 127, 254), where round-half-up and round-half-even part ways."""
    rng = np.random.default_rng(seed)
    v = (np.linspace(0, 1, h * w).reshape(h, w) + rng.normal(0, 0.02, (h, w))).clip(0, 1).astype(np.float32)
    v[0, :4] = (np.array([0.5, 1.5, 127.5, 254.5]) / 255).astype(np.float32)
    return v


def make_awkward_folder(root, size=(48, 71)):
    """Images that decoders treat differently: `turned/` JPEGs with each EXIF orientation (1-8) of one
    asymmetric picture, `deep/` 16-bit greyscale PNGs."""
    h, w = size
    pic = np.zeros((h, w, 3), np.uint8)
    pic[: h // 2, : w // 4] = (250, 40, 40)  # a red block top left, a dark-blue one bottom right, grey elsewhere
    pic[h // 2 :, w // 2 :] = (20, 20, 160)
    pic[h // 2 :, : w // 2] = 128
    (root / "turned").mkdir(parents=True)
    (root / "deep").mkdir()
    for o in range(1, 9):
        (root / "turned" / f"o{o}.jpg").write_bytes(turned(pic, o, "JPEG", quality=95))
        Image.fromarray(grey16(h, w, seed=o)).save(root / "deep" / f"g{o}.png")
    return root


# a tiny, fast model on the built-in digits at 16x16; on the CPU everywhere, so exactness tests hold on GPU machines
TINY = "--image-size 16 --width 0.25 --batch-size 16 --workers 0 --device cpu".split()


@pytest.fixture
def tiny_args(tmp_path):
    """CLI arguments for a tiny, fast run on 400 built-in digits."""
    return ["--data", "builtin:digits:400", *TINY, "--log-every", "5", "--out", str(tmp_path / "run")]


class DeviceWork(TorchDispatchMode):
    """Inside `with`: the Triton launches (`launches`, by kernel name) and the other ops that would run a kernel
    on a GPU (`ops`; allocations and views aside). Use through the `device_work` fixture, which stubs the
    launches out: they are counted, not run (what they compute is the other tests' business)."""

    FREE = set("empty empty_like empty_strided new_empty view _unsafe_view detach alias select slice t permute "
               "expand unsqueeze squeeze transpose reshape as_strided".split())  # fmt: skip

    def __init__(self):
        super().__init__()
        self.ops, self.launches = collections.Counter(), collections.Counter()

    def __enter__(self):
        self.ops.clear()
        self.launches.clear()
        return super().__enter__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name not in self.FREE:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture
def device_work(monkeypatch):
    """A DeviceWork; for the rest of the test every launch of a fused op's kernel is counted instead of run."""
    work = DeviceWork()

    class Launch:
        def __init__(self, kernel):
            self.name = kernel.fn.__name__

        def __getitem__(self, grid):
            return lambda *args, **kwargs: work.launches.update([self.name])

    for name in ("acgan_loss", "spectral_norm_fused"):  # the modules that launch kernels, through _dispatch.launcher
        monkeypatch.setattr(importlib.import_module(f"fastacgan.kernels.{name}"), "launcher", Launch)
    return work
