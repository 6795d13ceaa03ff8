"""Bad input: unsupported modules, training-mode models, and never mutating the caller's model."""

import pytest
import timm
import torch
import torchvision
from timm.layers import BlurPool2d
from timm.models.resnet import BasicBlock as TimmBasicBlock, ResNet as TimmResNet
from torch import nn

from replication import rm
from replication.rm.verify import randomize_batchnorm_


def test_same_padded_average_pool_downsample_names_module_and_type():
    """avg_down converts (tests/rm/test_avg_shortcut.py); a dilated stage's 'same'-padded stride-1 pool
    (timm's AvgPool2dSame, padding decided at run time) has no exact RM form and is named."""
    model = TimmResNet(TimmBasicBlock, [1, 1, 1, 1], avg_down=True, output_stride=16, num_classes=10)
    with pytest.raises(rm.UnsupportedModuleError) as info:
        rm.convert(model)
    message = str(info.value)
    assert "layer4.0.downsample.0" in message and "AvgPool2dSame" in message


def test_anti_aliased_block_names_module():
    model = TimmResNet(TimmBasicBlock, [1, 1, 1, 1], aa_layer=BlurPool2d, num_classes=10)
    with pytest.raises(rm.UnsupportedModuleError, match=r"'(maxpool|layer2\.0\.aa)'"):
        rm.convert(model)


def test_squeeze_excitation_block_names_module():
    model = timm.create_model("seresnet18", num_classes=10)
    with pytest.raises(rm.UnsupportedModuleError, match=r"'layer1\.0\.se'"):
        rm.convert(model)


def test_unknown_model_type_lists_supported_families():
    with pytest.raises(rm.UnsupportedModuleError, match="Supported: .*torchvision ResNet"):
        rm.convert(nn.Sequential(nn.Conv2d(3, 3, 3)))


def test_unsupported_activation_is_named():
    model = torchvision.models.resnet18(num_classes=10)
    model.layer1[0].relu = nn.GELU()
    with pytest.raises(rm.UnsupportedModuleError, match=r"layer1\.0.*GELU"):
        rm.convert(model)


def test_unknown_downsample_type():
    with pytest.raises(ValueError, match="downsample must be one of"):
        rm.convert(torchvision.models.resnet18(), downsample="avgpool")


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("builder", [torchvision.models.resnet18, torchvision.models.mobilenet_v2])
def test_training_mode_model_is_converted_from_eval_behaviour_and_left_unchanged(builder):
    model = builder(num_classes=10)
    randomize_batchnorm_(model, seed=3)
    model = model.double().train()
    before = _snapshot(model)
    plain = rm.convert(model)
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    assert rm.max_error(model, plain, x)["max_rel"] <= 1e-10
    assert model.training  # max_error restores the mode


def test_converted_model_shares_no_storage_with_the_original():
    model = torchvision.models.resnet18(num_classes=10).eval()
    plain = rm.convert(model)
    original = {p.data_ptr() for p in model.parameters()} | {b.data_ptr() for b in model.buffers()}
    assert not original & {p.data_ptr() for p in plain.parameters()}


def test_max_error_reports_a_non_finite_output_as_nan():
    """max(0.0, nan) is 0.0 in Python: a NaN model must not pass a tolerance check."""
    import math

    reference = nn.Identity()
    broken = nn.Sequential(nn.Identity())
    x = torch.ones(2, 3)
    x_nan = x.clone()
    x_nan[0, 0] = float("nan")
    assert rm.max_error(reference, broken, x)["max_abs"] == 0.0
    for inputs in (x_nan, [x, x_nan]):
        error = rm.max_error(reference, broken, inputs)
        assert math.isnan(error["max_rel"]) and error["finite"] == 0.0
        assert not error["max_rel"] <= 1e-5
