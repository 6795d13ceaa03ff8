"""ResNet-D average-pool shortcuts and RegNetX: exact RM conversion, and refusals that name the problem.

float64, random BN statistics (BN at its defaults is the identity and would hide errors), signed inputs.
At 64x64 every average-pool shortcut sees an even input (16, 8, 4 after a /4 stem), so every block is
converted exactly; an odd size is refused by the converted network, naming the size and the block.
"""

import pytest
import timm
import torch
import torchvision
from timm.models.resnet import BasicBlock as TimmBasicBlock, ResNet as TimmResNet
from torch import fx, nn

from replication import rm
from replication.rm.verify import randomize_batchnorm_

BUILDERS = {
    "timm_resnet26d": lambda: timm.create_model("resnet26d", num_classes=10),
    "timm_resnet50d": lambda: timm.create_model("resnet50d", num_classes=10),
    "timm_resnext50d_32x4d": lambda: timm.create_model("resnext50d_32x4d", num_classes=10),
    "timm_regnetx_002": lambda: timm.create_model("regnetx_002", num_classes=10),
    "tv_regnet_x_400mf": lambda: torchvision.models.regnet_x_400mf(num_classes=10),
}
SLOW = {"timm_resnet50d", "timm_resnext50d_32x4d"}  # ~275 M parameters after RM, in float64
RESNET_D = {"timm_resnet26d", "timm_resnet50d", "timm_resnext50d_32x4d"}


def build(name: str, dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorm_(BUILDERS[name](), seed=seed).to(dtype).eval()


def _inputs(dtype: torch.dtype, size: int = 64) -> torch.Tensor:
    return 3 * torch.randn(2, 3, size, size, dtype=dtype, generator=torch.Generator().manual_seed(1))


CASES = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in BUILDERS]


@pytest.mark.parametrize("downsample", rm.DOWNSAMPLE_TYPES)
@pytest.mark.parametrize("name", CASES)
def test_converts_exactly_in_float64(name, downsample):
    model = build(name)
    plain = rm.convert(model, downsample)
    error = rm.max_error(model, plain, _inputs(torch.float64))
    assert error["max_rel"] <= 1e-10, error
    assert error["reference_scale"] > 0
    guards = [m for m in plain if isinstance(m, rm.SpatialSizeGuard)]
    assert bool(guards) == (name in RESNET_D)  # RegNetX has strided 1x1 conv shortcuts, no pool
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in plain.modules())


def test_converts_in_float32():
    model = build("timm_resnet26d", torch.float32)
    error = rm.max_error(model, rm.convert(model), _inputs(torch.float32))
    assert error["max_rel"] <= 1e-5, error


def test_the_average_is_what_makes_it_exact():
    """Sampling one pixel (a Dirac) where the shortcut averages four is measurably wrong: the check
    above would catch a conversion that ignored the pool."""
    model = build("timm_resnet26d")
    plain = rm.convert(model)
    broken = rm.convert(model)
    for layer in broken:  # move every 2x2 average back onto its top-left tap
        if isinstance(layer, nn.Conv2d) and layer.stride == (2, 2) and layer.kernel_size == (3, 3):
            w = layer.weight.data
            quarter = (w[:, :, 1:, 1:] == 0.25).all(dim=(2, 3))
            w[:, :, 1:, 1:][quarter] = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=w.dtype)
    x = _inputs(torch.float64)
    assert rm.max_error(model, plain, x)["max_rel"] <= 1e-10
    assert rm.max_error(model, broken, x)["max_rel"] > 1e-3


@pytest.mark.parametrize("downsample", rm.DOWNSAMPLE_TYPES)
def test_unfused_form_is_exact_too(downsample):
    model = build("timm_resnet26d")
    with_bn = rm.convert(model, downsample, fuse_bn=False)
    assert any(isinstance(m, rm.ReservedBatchNorm2d) for m in with_bn)
    assert rm.max_error(model, with_bn, _inputs(torch.float64))["max_rel"] <= 1e-10


def _small_resnet_d() -> nn.Module:
    torch.manual_seed(0)
    model = TimmResNet(TimmBasicBlock, [1, 1, 1, 1], stem_type="deep", avg_down=True, num_classes=10)
    return randomize_batchnorm_(model, seed=0).double().eval()


def test_odd_size_is_refused_naming_the_size_and_the_block():
    model = _small_resnet_d()
    plain = rm.convert(model)
    x = torch.randn(1, 3, 36, 36, dtype=torch.float64)  # stem /4 -> 9x9 at layer2.0's average pool
    model(x)  # the residual model itself runs (ceil_mode pools the odd border)
    with pytest.raises(rm.InputSizeError, match=r"'layer2\.0' is 9x9, not a multiple of 2"):
        plain(x)
    with pytest.raises(rm.InputSizeError, match=r"'layer3\.0' is 5x5"):  # 40 -> 10 -> 5 at layer3.0
        plain(torch.randn(1, 3, 40, 40, dtype=torch.float64))
    with pytest.raises(rm.InputSizeError, match=r"is 8x9"):  # one odd side is enough
        plain(torch.randn(1, 3, 32, 36, dtype=torch.float64))


def test_even_non_square_size_is_exact():
    model = _small_resnet_d()
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    assert rm.max_error(model, rm.convert(model, "prelu"), x)["max_rel"] <= 1e-10


def test_guard_is_one_node_in_a_traced_graph():
    """torch.fx sees the guard as one call (not a branch on a shape), so the plain network stays traceable."""
    plain = rm.convert(_small_resnet_d())
    graph = fx.symbolic_trace(plain).graph
    guards = [n for n in graph.nodes if n.op == "call_function" and n.target.__name__ == "require_multiple"]
    assert len(guards) == 3  # layer2.0, layer3.0, layer4.0
    traced = fx.GraphModule(plain, graph)
    with pytest.raises(rm.InputSizeError):
        traced(torch.randn(1, 3, 36, 36, dtype=torch.float64))


def test_converted_model_saves_and_loads_with_its_guards(tmp_path):
    from replication.rm.plain_io import load_plain, save_plain

    plain = rm.convert(_small_resnet_d().float())  # plain_io stores float32 layers
    loaded = load_plain(save_plain(plain, tmp_path / "plain.pt"))
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(x), plain(x))
    with pytest.raises(rm.InputSizeError, match="'layer2.0'"):
        loaded(torch.randn(1, 3, 36, 36))


def test_regnety_squeeze_excitation_is_refused_by_name():
    with pytest.raises(rm.UnsupportedModuleError, match=r"'s1\.b1\.se' \(SEModule\)"):
        rm.convert(timm.create_model("regnety_002", num_classes=10))
    se_path = r"'trunk_output\.block1\.block1-0\.f\.se' \(SqueezeExcitation\)"
    with pytest.raises(rm.UnsupportedModuleError, match=se_path):
        rm.convert(torchvision.models.regnet_y_400mf(num_classes=10))


def test_preactivation_regnet_is_refused_by_name():
    with pytest.raises(rm.UnsupportedModuleError, match=r"'s1\.b1' \(PreBottleneck\)"):
        rm.convert(timm.create_model("regnetv_040", num_classes=10))


@pytest.mark.parametrize("name", ["timm_regnetx_002", "tv_regnet_x_400mf"])
def test_regnet_blocks_convert_one_at_a_time(name):
    model = build(name)
    first = next(m for m in model.modules() if type(m).__name__ in ("Bottleneck", "ResBottleneckBlock"))
    channels = next(m for m in first.modules() if isinstance(m, nn.Conv2d)).in_channels
    x = torch.relu(torch.randn(2, channels, 8, 8, dtype=torch.float64))
    for downsample in rm.DOWNSAMPLE_TYPES:
        assert rm.max_error(first, rm.convert_block(first, downsample), x)["max_rel"] <= 1e-10
