"""Each RM piece on its own: Dirac filters, kernel padding, identity BN (Eq. 2), Eq. 4 fusion."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from replication import rm


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("stride", [1, 2])
def test_dirac_filters_copy_input_at_strided_positions(kernel_size, stride):
    x = torch.randn(2, 4, 9, 7, dtype=torch.float64)
    weight = rm.dirac_filters(4, kernel_size, like=x)
    y = F.conv2d(x, weight, stride=stride, padding=kernel_size // 2)
    assert torch.equal(y, x[:, :, ::stride, ::stride])


def test_dirac_filters_match_torch_init():
    reference = torch.empty(6, 6, 3, 3)
    nn.init.dirac_(reference)
    assert torch.equal(rm.dirac_filters(6, 3, like=reference), reference)


@pytest.mark.parametrize("stride", [1, 2])
def test_padded_kernel_equals_pointwise_conv(stride):
    x = torch.randn(2, 3, 11, 10, dtype=torch.float64)
    w = torch.randn(5, 3, 1, 1, dtype=torch.float64)
    padded = rm.pad_kernel(w, 3)
    assert padded.shape == (5, 3, 3, 3)
    torch.testing.assert_close(F.conv2d(x, padded, stride=stride, padding=1), F.conv2d(x, w, stride=stride),
                               rtol=0, atol=1e-14)


def test_pad_kernel_rejects_non_pointwise_and_even_kernels():
    with pytest.raises(rm.RMConversionError, match="1x1"):
        rm.pad_kernel(torch.zeros(2, 2, 3, 3), 5)
    with pytest.raises(rm.RMConversionError, match="odd"):
        rm.pad_kernel(torch.zeros(2, 2, 1, 1), 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identity_batchnorm_is_identity_for_any_statistics(dtype):
    mean = torch.randn(8, dtype=dtype) * 3
    var = torch.rand(8, dtype=dtype) * 5 + 0.1
    bn = rm.identity_batchnorm(8, eps=1e-5, running_mean=mean, running_var=var,
                               like=torch.empty(0, dtype=dtype))
    x = torch.randn(4, 8, 5, 5, dtype=dtype) * 10
    tol = 1e-14 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(bn(x), x, rtol=tol, atol=tol)
    assert not bn.training


def test_identity_batchnorm_folds_to_exact_identity():
    """Folded into a Dirac conv, Eq. 2 BN with default statistics leaves weight 1 and bias 0 exactly."""
    conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
    conv.weight.data = rm.dirac_filters(4, 3, like=conv.weight)
    fused = rm.primitives.fold_batchnorm(conv, rm.identity_batchnorm(4))
    assert torch.equal(fused.weight, conv.weight)
    assert torch.equal(fused.bias, torch.zeros(4))


@pytest.mark.parametrize("strides", [(1, 1), (2, 1), (1, 2)])
def test_fuse_pointwise_equals_consecutive_convs(strides):
    first = nn.Conv2d(6, 10, 1, stride=strides[0]).double()
    second = nn.Conv2d(10, 4, 1, stride=strides[1]).double()
    x = torch.randn(2, 6, 8, 8, dtype=torch.float64)
    fused = rm.fuse_pointwise(first, second)
    assert fused.weight.shape == (4, 6, 1, 1)
    torch.testing.assert_close(fused(x), second(first(x)), rtol=1e-12, atol=1e-12)


def test_fuse_pointwise_rejects_padded_or_spatial_convs():
    with pytest.raises(rm.RMConversionError):
        rm.fuse_pointwise(nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 1))
    with pytest.raises(rm.RMConversionError):
        rm.fuse_pointwise(nn.Conv2d(3, 3, 1, padding=1), nn.Conv2d(3, 3, 1))


def test_channelwise_clamp_caps_computed_and_passes_reserved():
    clamp = rm.ChannelwiseClamp(torch.tensor([0.0, -math.inf]), torch.tensor([6.0, math.inf]))
    x = torch.tensor([-3.0, 2.0, 9.0]).view(1, 1, 3, 1).repeat(1, 2, 1, 1)
    y = clamp(x)
    assert y[0, 0, :, 0].tolist() == [0.0, 2.0, 6.0]
    assert y[0, 1, :, 0].tolist() == [-3.0, 2.0, 9.0]
