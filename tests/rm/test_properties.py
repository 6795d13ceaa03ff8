"""Property-based checks over random block configurations (hypothesis)."""

import pytest
import torch
from hypothesis import given, strategies as st
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

from replication import rm
from replication.rm.verify import randomize_batchnorm_


def _projection(inplanes: int, outplanes: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(conv1x1(inplanes, outplanes, stride), nn.BatchNorm2d(outplanes))


def _check(block: nn.Module, x: torch.Tensor, downsample: str, seed: int) -> None:
    randomize_batchnorm_(block, seed=seed)
    block = block.double().eval()
    plain = rm.convert_block(block, downsample)
    error = rm.max_error(block, plain, x)
    assert error["max_rel"] <= 1e-10, error


@given(inplanes=st.integers(1, 12), planes=st.integers(1, 12), stride=st.sampled_from([1, 2]),
       force_projection=st.booleans(), downsample=st.sampled_from(rm.DOWNSAMPLE_TYPES),
       size=st.integers(3, 9), seed=st.integers(0, 2**16))
def test_basic_block(inplanes, planes, stride, force_projection, downsample, size, seed):
    torch.manual_seed(seed)
    shortcut = _projection(inplanes, planes, stride)
    if shortcut is None and force_projection:
        shortcut = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
    block = BasicBlock(inplanes, planes, stride, downsample=shortcut)
    x = torch.relu(torch.randn(2, inplanes, size, size + 1, dtype=torch.float64))  # ResNet blocks follow a ReLU
    _check(block, x, downsample, seed)


@given(inplanes=st.integers(1, 16), planes=st.integers(1, 6), stride=st.sampled_from([1, 2]),
       groups=st.sampled_from([1, 2, 3, 4]), width_per_group=st.sampled_from([64, 128]),
       downsample=st.sampled_from(rm.DOWNSAMPLE_TYPES), size=st.integers(3, 8), seed=st.integers(0, 2**16))
def test_bottleneck_block(inplanes, planes, stride, groups, width_per_group, downsample, size, seed):
    torch.manual_seed(seed)
    shortcut = _projection(inplanes, planes * Bottleneck.expansion, stride)
    block = Bottleneck(inplanes, planes, stride, downsample=shortcut, groups=groups, base_width=width_per_group)
    x = torch.relu(torch.randn(2, inplanes, size, size, dtype=torch.float64))
    _check(block, x, downsample, seed)


def _average_shortcut(inplanes: int, outplanes: int, stride: int, ceil_mode: bool, count_include_pad: bool,
                      projection: bool) -> nn.Module:
    """ResNet-D's shortcut: AvgPool2d(s, s) (any ceil / padding-count flags), then a 1x1 conv + BN."""
    pool = nn.AvgPool2d(stride, stride, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    if not projection:
        return nn.Sequential(pool)
    return nn.Sequential(pool, conv1x1(inplanes, outplanes), nn.BatchNorm2d(outplanes))


@given(inplanes=st.integers(1, 12), planes=st.integers(1, 8), bottleneck=st.booleans(),
       groups=st.sampled_from([1, 2, 4]), downsample=st.sampled_from(rm.DOWNSAMPLE_TYPES), half=st.integers(1, 4),
       ceil_mode=st.booleans(),
       count_include_pad=st.booleans(), force_projection=st.booleans(), seed=st.integers(0, 2**16))
def test_average_pool_shortcut(inplanes, planes, bottleneck, groups, downsample, half, ceil_mode, count_include_pad,
                               force_projection, seed):
    """Stride-2 blocks whose shortcut averages 2x2 windows: exact at every even size."""
    torch.manual_seed(seed)
    block_type = Bottleneck if bottleneck else BasicBlock
    outplanes = planes * block_type.expansion
    projection = force_projection or inplanes != outplanes
    shortcut = _average_shortcut(inplanes, outplanes, 2, ceil_mode, count_include_pad, projection)
    kwargs = {"groups": groups, "base_width": 64} if bottleneck else {}
    block = block_type(inplanes, planes, 2, downsample=shortcut, **kwargs)
    x = torch.relu(torch.randn(2, inplanes, 2 * half, 2 * half + 2, dtype=torch.float64))
    _check(block, x, downsample, seed)
    assert isinstance(rm.convert_block(block.float(), downsample)[0], rm.SpatialSizeGuard)


@given(inplanes=st.integers(1, 8), planes=st.integers(1, 8), bottleneck=st.booleans(), odd=st.integers(1, 4),
       even_height=st.booleans(), seed=st.integers(0, 2**16))
def test_average_pool_shortcut_refuses_odd_sizes(inplanes, planes, bottleneck, odd, even_height, seed):
    """ceil_mode=True, count_include_pad=False (timm's ResNet-D) divides an odd border by fewer than 4:
    the block runs, its conversion refuses that size and names it."""
    torch.manual_seed(seed)
    block_type = Bottleneck if bottleneck else BasicBlock
    outplanes = planes * block_type.expansion
    block = block_type(inplanes, planes, 2, downsample=_average_shortcut(inplanes, outplanes, 2, True, False, True))
    block = block.double().eval()
    height, width = (2 * odd, 2 * odd + 1) if even_height else (2 * odd + 1, 2 * odd)
    x = torch.relu(torch.randn(1, inplanes, height, width, dtype=torch.float64))
    block(x)
    with pytest.raises(rm.InputSizeError, match=f"is {height}x{width}, not a multiple of 2"):
        rm.convert_block(block)(x)


@given(channels=st.integers(1, 12), expand_ratio=st.integers(2, 6), scale=st.sampled_from([1.0, 10.0, 100.0]),
       size=st.integers(3, 8), seed=st.integers(0, 2**16))
def test_inverted_residual_with_negative_and_saturating_inputs(channels, expand_ratio, scale, size, seed):
    torch.manual_seed(seed)
    block = InvertedResidual(channels, channels, stride=1, expand_ratio=expand_ratio)
    assert block.use_res_connect
    x = scale * torch.randn(2, channels, size, size, dtype=torch.float64)  # signed, and > 6 when scaled
    _check(block, x, "dirac", seed)


@given(channels=st.integers(1, 10), width=st.integers(1, 4), groups=st.integers(1, 6),
       kernel=st.sampled_from([1, 3, 5]), seed=st.integers(0, 2**16))
def test_grouped_middle_conv_keeps_groups_whole(channels, width, groups, kernel, seed):
    """A grouped middle conv whose group width does not divide the reserved channel count."""
    torch.manual_seed(seed)
    hidden = width * groups
    units = [rm.ConvBN(nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden)),
             rm.ConvBN(nn.Conv2d(hidden, hidden, kernel, padding=kernel // 2, groups=groups, bias=False),
                       nn.BatchNorm2d(hidden)),
             rm.ConvBN(nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels))]
    branch = rm.ResidualBranch(units=units, acts=[nn.ReLU(), nn.ReLU()], shortcut=None, out_act=nn.ReLU(),
                               input_nonnegative=False, path="branch")
    modules = nn.ModuleList([m for u in units for m in u.modules()])
    randomize_batchnorm_(modules, seed=seed)
    modules.double().eval()

    def reference(x):
        h = x
        for i, unit in enumerate(units):
            h = unit.bn(unit.conv(h))
            if i < 2:
                h = torch.relu(h)
        return torch.relu(h + x)

    plain = rm.convert_branch(branch)
    x = torch.randn(2, channels, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(plain(x), reference(x), rtol=1e-10, atol=1e-10)
    middle = [m for m in plain if isinstance(m, nn.Conv2d)][1]
    assert middle.groups >= 1 and (hidden + channels) % middle.groups == 0


@pytest.mark.parametrize("channels", [4, 16, 64])
def test_downsample_parameter_formulas(channels):
    """Paper section 3.2: type 2 (dirac) has 81 C^2 weights, type 1 (prelu) 108 C^2 + 4C."""
    block = BasicBlock(channels, 2 * channels, stride=2, downsample=_projection(channels, 2 * channels, 2)).eval()

    def weights(plain):  # conv weights and PReLU slopes; biases come from folded BN, the paper omits them
        return sum(m.weight.numel() for m in plain if isinstance(m, (nn.Conv2d, nn.PReLU)))

    dirac, prelu = rm.convert_block(block, "dirac"), rm.convert_block(block, "prelu")
    assert weights(dirac) == 81 * channels**2
    assert weights(prelu) == 108 * channels**2 + 4 * channels
    assert [m.out_channels for m in dirac if isinstance(m, nn.Conv2d)] == [3 * channels, 2 * channels]
    assert [m.out_channels for m in prelu if isinstance(m, nn.Conv2d)] == [4 * channels, 2 * channels]
