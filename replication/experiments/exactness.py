"""The paper's exactness claims, measured: one row per check, with the value, the bound and pass/fail.

- RM on ResNets with both downsample types (section 3.2), float64 and float32;
- the reserved-parameter formulas 81 C^2 (type 2) and 108 C^2 + 4 C (type 1);
- MobileNetV2 -> RMNetV1 -> MobileNetV1 (section 3.3), on signed inputs that saturate ReLU6;
- the Table 4 deploy structure of RMNet 26x3_32 (CIFAR).

Every model gets random BN statistics and affine parameters first (default statistics make BN the
identity and would hide a wrong merge). Each row names the claim of the ledger it serves.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pandas as pd
import timm
import torch
import torchvision
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock

from .. import rm
from ..atomic_io import write_csv_atomic
from ..models.rmnet import RMBlock
from ..paper import table4_text
from ..rm.verify import randomize_batchnorm_

# Relative output error bounds: float64 exposes any algebraic mistake; float32 is the deployed dtype.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


def _model(name: str, dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    if name.startswith("torchvision:"):
        model = torchvision.models.get_model(name.split(":", 1)[1], weights=None, num_classes=10)
    else:
        model = timm.create_model(name, num_classes=10)
    return randomize_batchnorm_(model, seed=1).to(dtype).eval()


def _row(claim: str, check: str, value: float, bound: float, passed: bool, **context: object) -> dict[str, object]:
    return {"claim_id": claim, "check": check, "value": value, "bound": bound, "passed": bool(passed), **context}


def _equivalence_rows(claim: str, name: str, size: int, scale: float, **convert_kwargs: Any) -> list[dict]:
    rows = []
    for dtype, bound in TOLERANCE.items():
        model = _model(name, dtype)
        x = scale * torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(2)).to(dtype)
        error = rm.max_error(model, rm.convert(model, **convert_kwargs), x)
        label = ", ".join(f"{k}={v}" for k, v in convert_kwargs.items())
        rows.append(_row(claim, f"{name} ({label}) max relative output error", error["max_rel"], bound,
                         error["max_rel"] <= bound, dtype=str(dtype).replace("torch.", ""), input_size=size,
                         input_scale=scale))
    return rows


def _formula_rows() -> list[dict]:
    rows = []
    for channels in (16, 64):
        block = BasicBlock(channels, 2 * channels, stride=2,
                           downsample=nn.Sequential(nn.Conv2d(channels, 2 * channels, 1, 2, bias=False),
                                                    nn.BatchNorm2d(2 * channels))).eval()
        cases: tuple[tuple[rm.DownsampleType, str, int], ...] = (
            ("dirac", "exact_formula_type2", 81 * channels**2),
            ("prelu", "exact_formula_type1", 108 * channels**2 + 4 * channels))
        for downsample, claim, expected in cases:
            plain = rm.convert_block(block, downsample)
            weights = sum(m.weight.numel() for m in plain if isinstance(m, (nn.Conv2d, nn.PReLU)))
            rows.append(_row(claim, f"reserved BasicBlock weights, C={channels} ({downsample})", weights, expected,
                             weights == expected, dtype="", input_size=""))
    return rows


def _mobilenet_rows() -> list[dict]:
    rows = []
    for fuse, stage in ((False, "RMNetV1"), (True, "MobileNetV1")):
        rows += [{**r, "check": f"MobileNetV2 -> {stage}: {r['check']}"} for r in
                 _equivalence_rows("exact_mobilenet_v2_v1", "torchvision:mobilenet_v2", 32, 8.0,
                                   fuse_pointwise=fuse)]
    v1 = rm.convert(_model("torchvision:mobilenet_v2", torch.float32))
    layers = list(v1)
    consecutive = sum(rm.primitives.is_pointwise(a) and rm.primitives.is_pointwise(b)
                      for a, b in zip(layers, layers[1:]))
    rows.append(_row("exact_mobilenet_v2_v1", "MobileNetV1 form: consecutive 1x1 convs left (V1 has none)",
                     consecutive, 0, consecutive == 0, dtype="float32", input_size=32))
    return rows


def _conv_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def _analytic_rows() -> list[dict]:
    """Section 4.2's cost claims, by counting conv weights before and after RM (exact integers)."""
    rows = []
    for channels in (16, 64):
        block = BasicBlock(channels, channels).eval()
        before, after = _conv_weights(block), _conv_weights(rm.convert_block(block))
        rows.append(_row("analytic_resblock_doubles", f"BasicBlock C={channels}: conv weights after RM / before",
                         after / before, 2.0, after == 2 * before, dtype="", input_size=""))
    for channels, expand in ((16, 6), (24, 4)):
        block = InvertedResidual(channels, channels, 1, expand).eval()
        before, after = _conv_weights(block), _conv_weights(rm.convert_block(block))
        added = after - before
        rows.append(_row("analytic_irb_one_over_t", f"InvertedResidual C={channels}, T={expand}: "
                         "added conv weights / original", added / before, 1 / expand, added * expand == before,
                         dtype="", input_size=""))
    for channels, group_width in ((32, 8), (64, 16)):
        block = RMBlock(channels, channels, 1, expand_ratio=2, group_width=group_width).eval()
        plain = rm.convert_block(block)
        grouped_before = block.conv2
        grouped_after = next(m for m in plain if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
        per_channel = (grouped_after.weight.numel() - grouped_before.weight.numel()) // channels
        normal = grouped_after.in_channels * 9  # a groups=1 conv reserves one channel with C x K x K weights
        rows.append(_row("analytic_group_one_over_g", f"RMBlock C={channels}, group width {group_width} "
                         f"(G={grouped_after.groups}): reserve cost per channel, grouped / normal conv",
                         per_channel / normal, 1 / grouped_after.groups,
                         per_channel * grouped_after.groups == normal, dtype="", input_size=""))
    return rows


_CONV = re.compile(r"Conv2d\((\d+), (\d+), kernel.size=\((\d+), \d+\), stride=\((\d+), \d+\)"
                   r"(?:, padding=\(\d+, \d+\))?(?:, groups=(\d+))?")


def _table4_rows() -> list[dict]:
    theirs = [tuple(int(g or 1) for g in match.groups()) for match in _CONV.finditer(table4_text())]
    plain = rm.convert(timm.create_model("rmnet26x3_32_cifar", num_classes=10).eval())
    ours = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.groups)
            for m in plain if isinstance(m, nn.Conv2d)]
    mismatches = sum(a != b for a, b in zip(ours, theirs)) + abs(len(ours) - len(theirs))
    return [_row("exact_table4_structure", "RMNet 26x3_32 deploy convs (in, out, kernel, stride, groups) "
                 f"differing from the paper's Table 4 ({len(theirs)} convs)", mismatches, 0, mismatches == 0,
                 dtype="", input_size=32)]


def run(output: str | os.PathLike, profile: str) -> pd.DataFrame:
    rows = []
    for downsample, claim in (("dirac", "exact_resnet_type2"), ("prelu", "exact_resnet_type1")):
        for name in ("torchvision:resnet18", "resnet50"):
            rows += _equivalence_rows(claim, name, 32, 4.0, downsample=downsample)
    rows += _formula_rows() + _analytic_rows() + _mobilenet_rows() + _table4_rows()
    frame = pd.DataFrame(rows)
    frame.insert(0, "profile", profile)
    frame["device"] = "cpu"
    frame["torch_version"] = torch.__version__
    write_csv_atomic(frame, output)
    return frame
