import math

import pytest
import torch
import torch.nn.functional as F

from fastacgan.kernels import STAT_NAMES, acgan_loss, acgan_loss_reference


def test_hand_computed_values():
    # B=2, K=3. Source logits 0 and ln 3: BCE vs target 1 = (ln 2 + ln(4/3)) / 2.
    src = torch.tensor([0.0, math.log(3.0)])
    # class logits: uniform row (CE = ln 3, argmax 0 != label 2), and a row with logit 2 on the label
    cls = torch.tensor([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    labels = torch.tensor([2, 1])
    loss, stats = acgan_loss_reference(src, cls, 1.0, labels, cls_weight=0.5)
    bce = (math.log(2.0) + math.log(4.0 / 3.0)) / 2
    ce = (math.log(3.0) + (math.log(math.exp(2.0) + 2.0) - 2.0)) / 2
    assert loss.item() == pytest.approx(bce + 0.5 * ce, rel=1e-6)
    expected = {"bce": bce, "ce": ce, "d_prob": (0.5 + 0.75) / 2, "acc": 0.5}
    assert dict(zip(STAT_NAMES, stats.tolist())) == pytest.approx(expected, rel=1e-6)
    assert not stats.requires_grad


def test_fake_target_and_per_sample_smoothing():
    src = torch.tensor([0.0, 0.0, 2.0])
    cls = torch.zeros(3, 4)
    labels = torch.tensor([0, 1, 2])
    loss0, st0 = acgan_loss_reference(src, cls, 0.0, labels)
    assert st0[0].item() == pytest.approx((2 * math.log(2) + (2 + math.log1p(math.exp(-2)))) / 3, rel=1e-6)
    t = torch.tensor([0.9, 1.0, 0.0])
    loss_t, st_t = acgan_loss_reference(src, cls, t, labels, cls_weight=0.0)
    assert loss_t.item() == pytest.approx(F.binary_cross_entropy_with_logits(src, t).item(), rel=1e-6)


@pytest.mark.parametrize("b,k", [(1, 1), (3, 2), (257, 10), (64, 1001)])
def test_matches_separate_torch_calls_with_gradients(b, k):
    g = torch.Generator().manual_seed(b * 7 + k)
    src = torch.randn(b, generator=g, requires_grad=True)
    cls = torch.randn(b, k, generator=g, requires_grad=True)
    labels = torch.randint(k, (b,), generator=g)
    loss, _ = acgan_loss(src, cls, 0.9, labels, 1.5)
    ref = F.binary_cross_entropy_with_logits(src, torch.full((b,), 0.9)) + 1.5 * F.cross_entropy(cls, labels)
    assert torch.allclose(loss, ref, rtol=1e-6, atol=1e-7)
    g1 = torch.autograd.grad(loss, (src, cls))
    g2 = torch.autograd.grad(ref, (src, cls))
    for a, r in zip(g1, g2):
        assert torch.allclose(a, r, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_extreme_logits_stay_finite(dtype):
    # fp16: its largest value. bf16's largest (3.4e38) makes the true loss itself overflow float32, so 1e37.
    big = {torch.float32: 1e4, torch.float16: torch.finfo(torch.float16).max, torch.bfloat16: 1e37}[dtype]
    src = torch.tensor([big, -big, 0.0], dtype=dtype, requires_grad=True)
    cls = torch.tensor([[big, -big], [-big, big], [0.0, 0.0]], dtype=dtype, requires_grad=True)
    labels = torch.tensor([1, 1, 0])
    for target in (0.0, 1.0):
        loss, stats = acgan_loss(src, cls, target, labels)
        assert loss.dtype == torch.float32 and torch.isfinite(loss) and torch.isfinite(stats).all()
        gs, gc = torch.autograd.grad(loss, (src, cls))
        assert torch.isfinite(gs.float()).all() and torch.isfinite(gc.float()).all()


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    src = torch.randn(5, dtype=torch.float64, generator=g, requires_grad=True)
    cls = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    labels = torch.randint(3, (5,), generator=g)
    t = torch.rand(5, dtype=torch.float64, generator=g)
    assert torch.autograd.gradcheck(lambda s, c: acgan_loss_reference(s, c, t, labels, 0.7)[0], (src, cls))
    assert torch.autograd.gradcheck(lambda s, c: acgan_loss_reference(s, c, 1.0, labels, 0.0)[0], (src, cls))
