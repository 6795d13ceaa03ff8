"""Whole-network equivalence: residual model vs its converted plain network.

Every model gets random BN statistics and affine parameters (default BN is the identity and would
hide errors). Tolerances are on the relative error of :func:`replication.rm.max_error`.
"""

import operator

import pytest
import timm
import torch
import torchvision
from timm.models.resnet import BasicBlock as TimmBasicBlock, ResNet as TimmResNet
from torch import fx, nn

from replication import rm
from replication.rm.verify import randomize_batchnorm_

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}
PLAIN_LAYER_TYPES = (nn.Conv2d, nn.ReLU, nn.ReLU6, nn.PReLU, rm.ChannelwiseClamp, nn.MaxPool2d,
                     nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear)


def _timm_deep_stem():
    return TimmResNet(TimmBasicBlock, [1, 1, 1, 1], stem_type="deep", num_classes=10)


BUILDERS = {
    "tv_resnet18": lambda: torchvision.models.resnet18(num_classes=10),
    "tv_resnet34": lambda: torchvision.models.resnet34(num_classes=10),
    "tv_resnet50": lambda: torchvision.models.resnet50(num_classes=10),
    "tv_resnet101": lambda: torchvision.models.resnet101(num_classes=10),
    "tv_resnet152": lambda: torchvision.models.resnet152(num_classes=10),
    "tv_resnext50_32x4d": lambda: torchvision.models.resnext50_32x4d(num_classes=10),
    "tv_wide_resnet50_2": lambda: torchvision.models.wide_resnet50_2(num_classes=10),
    "timm_resnet18": lambda: timm.create_model("resnet18", num_classes=10),
    "timm_resnet50": lambda: timm.create_model("resnet50", num_classes=10),
    "timm_resnext50_32x4d": lambda: timm.create_model("resnext50_32x4d", num_classes=10),
    "timm_resnet_deep_stem": _timm_deep_stem,
    "tv_mobilenet_v2": lambda: torchvision.models.mobilenet_v2(num_classes=10),
}
# Deep bottleneck networks grow to 0.5-0.8 G parameters after RM: test them at CIFAR size only.
LARGE = {"tv_resnet101", "tv_resnet152", "tv_wide_resnet50_2"}


def build(name: str, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = BUILDERS[name]()
    randomize_batchnorm_(model, seed=seed)
    return model.to(dtype).eval()


def inputs_for(name: str, size: int, dtype: torch.dtype) -> torch.Tensor:
    x = torch.randn(2, 3, size, size, dtype=dtype)
    if "mobilenet" in name:
        x = x * 8  # push ReLU6 into saturation; inputs stay signed
    return x


CASES = [(name, size) for name in BUILDERS for size in (32, 224) if not (size == 224 and name in LARGE)]


@pytest.mark.parametrize("downsample", rm.DOWNSAMPLE_TYPES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name,size", CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_converted_network_equals_original(name, size, dtype, downsample):
    if size == 224 and dtype == torch.float64 and name not in {"tv_resnet18", "tv_mobilenet_v2", "timm_resnet18"}:
        pytest.skip("float64 at 224x224 is checked on the small networks only (CPU budget)")
    model = build(name, dtype)
    plain = rm.convert(model, downsample)
    error = rm.max_error(model, plain, inputs_for(name, size, dtype))
    assert error["max_rel"] <= TOLERANCE[dtype], error
    assert error["reference_scale"] > 0


@pytest.mark.parametrize("name", ["tv_resnet18", "tv_resnet50", "timm_resnet18", "tv_mobilenet_v2"])
def test_plain_network_has_no_residual_and_no_batchnorm(name):
    plain = rm.convert(build(name, torch.float32))
    assert isinstance(plain, nn.Sequential)
    for layer in plain:
        assert isinstance(layer, PLAIN_LAYER_TYPES), type(layer)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in plain.modules())
    # The traced graph is a single chain: no node adds two tensors.
    graph = fx.symbolic_trace(plain).graph
    adds = [n for n in graph.nodes if n.op == "call_function" and n.target in (operator.add, torch.add)]
    assert adds == []
    users = [len(n.users) for n in graph.nodes if n.op != "output"]
    assert max(users) == 1


def test_resnet_conversion_keeps_paper_layer_count():
    """ResNet-18: 1 stem conv + 2 convs per block (8 blocks) + fc, each followed by one activation."""
    plain = rm.convert(build("tv_resnet18", torch.float32))
    convs = [m for m in plain if isinstance(m, nn.Conv2d)]
    assert len(convs) == 17
    assert [c.out_channels for c in convs[1:5]] == [128, 64, 128, 64]  # reserved 64 + computed 64


def test_mobilenet_v2_inputs_really_saturate_and_go_negative():
    """The equivalence test above is only meaningful if ReLU6 caps and inputs are signed."""
    model = build("tv_mobilenet_v2", torch.float64)
    saturated, negative = [], []
    hooks = [m.register_forward_hook(lambda _m, _i, out: saturated.append((out >= 6).float().mean().item()))
             for m in model.modules() if isinstance(m, nn.ReLU6)]
    hooks += [m.register_forward_pre_hook(lambda _m, inp: negative.append((inp[0] < 0).any().item()))
              for m in model.modules() if type(m).__name__ == "InvertedResidual" and m.use_res_connect]
    model(inputs_for("tv_mobilenet_v2", 64, torch.float64))
    for hook in hooks:
        hook.remove()
    assert max(saturated) > 0.01
    assert all(negative)


def test_mobilenet_v2_relu_instead_of_relu6_is_not_exact():
    """The shortcut of replacing ReLU6 by ReLU (as the official code does) breaks equivalence."""
    model = build("tv_mobilenet_v2", torch.float64)
    plain = rm.convert(model)
    x = inputs_for("tv_mobilenet_v2", 64, torch.float64)
    for index, layer in enumerate(plain):
        if isinstance(layer, rm.ChannelwiseClamp):
            layer.upper.fill_(float("inf"))
        elif isinstance(layer, nn.ReLU6):
            plain[index] = nn.ReLU()
    assert rm.max_error(model, plain, x)["max_rel"] > 1e3 * TOLERANCE[torch.float64]


def test_mobilenet_v2_to_v1_fuses_pointwise_pairs():
    model = build("tv_mobilenet_v2", torch.float64)
    rmnet_v1 = rm.convert(model, fuse_pointwise=False)
    mobilenet_v1 = rm.convert(model)
    x = inputs_for("tv_mobilenet_v2", 32, torch.float64)
    for plain in (rmnet_v1, mobilenet_v1):
        assert rm.max_error(model, plain, x)["max_rel"] <= 1e-10
    convs = [m for m in mobilenet_v1 if isinstance(m, nn.Conv2d)]
    # V1 alternates depthwise and pointwise convs: no two 1x1 convs in a row.
    for a, b in zip(mobilenet_v1, list(mobilenet_v1)[1:]):
        assert not (rm.primitives.is_pointwise(a) and rm.primitives.is_pointwise(b))
    depthwise = [c for c in convs if c.groups > 1]
    assert all(c.groups == c.in_channels == c.out_channels for c in depthwise)
    assert len(convs) < len([m for m in rmnet_v1 if isinstance(m, nn.Conv2d)])


@pytest.mark.parametrize("downsample", rm.DOWNSAMPLE_TYPES)
def test_unfused_form_keeps_identity_batchnorms(downsample):
    """fuse_bn=False keeps BN (reserved channels under Eq. 2 identity BNs): the fine-tuning form."""
    model = build("tv_resnet18", torch.float64)
    with_bn = rm.convert(model, downsample, fuse_bn=False)
    assert any(isinstance(m, nn.BatchNorm2d) for m in with_bn)
    x = inputs_for("tv_resnet18", 32, torch.float64)
    assert rm.max_error(model, with_bn, x)["max_rel"] <= 1e-10


def test_converted_model_follows_input_dtype():
    plain = rm.convert(build("tv_resnet18", torch.float64))
    assert all(p.dtype == torch.float64 for p in plain.parameters())
    assert not plain.training
