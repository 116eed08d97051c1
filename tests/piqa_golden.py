"""How tests/test_image_metrics.py's PIQA_113 values were made: piqa 1.1.3 (the version seed 000 names) on the
test's images. piqa 1.1.3 imports torchvision (for LPIPS only) and calls F.conv1d on 4-D tensors, which torch 1.7
ran as a 2-D convolution: both are stood in for here.
Usage: `pip download piqa==1.1.3 --no-deps -d D`, unzip the wheel in D, then `python tests/piqa_golden.py D`;
it prints the table."""

import sys
import types
from pathlib import Path

import torch.nn.functional as F

sys.modules["torchvision"] = types.ModuleType("torchvision")
sys.modules["torchvision.models"] = sys.modules["torchvision"].models = types.ModuleType("torchvision.models")
conv1d = F.conv1d
F.conv1d = lambda x, w, bias=None, stride=1, padding=0, dilation=1, groups=1: (conv1d if w.dim() == 3 else F.conv2d)(
    x, w, bias, stride, padding, dilation, groups
)
sys.path.insert(0, sys.argv[1])
import piqa  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_image_metrics import SHAPES, pair  # noqa: E402

for shape in SHAPES:
    x, y = pair(shape)
    row = []
    for name in ("PSNR", "SSIM", "MS_GMSD", "MDSI", "HaarPSI"):
        m = getattr(piqa, name)(reduction="none")
        row.append([round(v, 7) for v in m(x.float(), y.float()).tolist()])
    print(f"    {shape}: {row},")
