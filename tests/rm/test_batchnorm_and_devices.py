"""BatchNorms without affine parameters or without running statistics, and models on the meta device."""

import pytest
import torch
import torchvision
from torch import nn

from replication import rm, zoo
from replication.rm.verify import randomize_batchnorm_


def _replace_batchnorms(model: nn.Module, **options) -> nn.Module:
    """Every BatchNorm2d of ``model`` rebuilt with ``options``, keeping its running statistics."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                new = nn.BatchNorm2d(child.num_features, eps=child.eps, **options).to(child.running_mean)
                if new.running_mean is not None:
                    new.running_mean.copy_(child.running_mean)
                    new.running_var.copy_(child.running_var)
                setattr(parent, name, new)
    return model


def _narrow_mobilenet_v2(num_classes=10):
    return torchvision.models.mobilenet_v2(num_classes=num_classes, width_mult=0.5)


@pytest.mark.parametrize("fuse_bn", [True, False])
@pytest.mark.parametrize("dtype, bound", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("builder, downsample", [(torchvision.models.resnet18, "dirac"),
                                                 (torchvision.models.resnet18, "prelu"),
                                                 (_narrow_mobilenet_v2, "dirac")])
def test_affine_free_batchnorm_converts_exactly(builder, downsample, dtype, bound, fuse_bn):
    """affine=False is BN with weight 1 and bias 0: exact, with BN folded or kept (was an
    AttributeError inside concat_batchnorms with fuse_bn=False)."""
    model = randomize_batchnorm_(builder(num_classes=10), seed=7)
    model = _replace_batchnorms(model, affine=False).to(dtype).eval()
    plain = rm.convert(model, downsample, fuse_bn=fuse_bn)
    x = 3 * torch.randn(2, 3, 16, 16, dtype=dtype)  # negative and large inputs
    assert rm.max_error(model, plain, x)["max_rel"] <= bound
    assert all(m.weight is None for m in model.modules() if isinstance(m, nn.BatchNorm2d))  # caller's model untouched


@pytest.mark.parametrize("fuse_bn", [True, False])
@pytest.mark.parametrize("where, path", [("layer2.0.bn1", "layer2.0.bn1"), ("bn1", "bn1"),
                                         ("layer3.0.downsample.1", "layer3.0.downsample.1")])
def test_batchnorm_without_running_statistics_is_refused_by_path(where, path, fuse_bn):
    """track_running_stats=False normalises by each batch's statistics, even in eval mode: no plain
    network equals it (was a TypeError from inside torch)."""
    model = torchvision.models.resnet18(num_classes=10)
    parent_name, _, name = where.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, name, nn.BatchNorm2d(getattr(parent, name).num_features, track_running_stats=False))
    with pytest.raises(rm.UnsupportedModuleError, match=rf"'{path}' \(BatchNorm2d\).*track_running_stats=False"):
        rm.convert(model, fuse_bn=fuse_bn)


def test_batchnorm_without_running_statistics_in_a_single_block_is_named():
    block = torchvision.models.resnet.BasicBlock(8, 8)
    block.bn2 = nn.BatchNorm2d(8, track_running_stats=False)
    with pytest.raises(rm.UnsupportedModuleError, match=r"'layer9\.bn2'"):
        rm.convert_block(block, path="layer9")


def test_mobilenet_v2_keeps_its_batchnorms_by_default_when_asked():
    """fuse_bn=False used to fail with the MobileNetV2 default fuse_pointwise=True."""
    model = randomize_batchnorm_(_narrow_mobilenet_v2(), seed=2).double().eval()
    plain = rm.convert(model, fuse_bn=False)
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert rm.max_error(model, plain, torch.randn(2, 3, 16, 16, dtype=torch.float64))["max_rel"] <= 1e-12


@pytest.mark.parametrize("name", ["rmnet26x3_32_cifar", "repvgg_a2_cifar", "resnet18_cifar"])
@pytest.mark.parametrize("fuse_bn", [True, False])
def test_models_on_the_meta_device_build_and_convert(name, fuse_bn):
    """Shapes without memory: RMNet's RepVGG stem was re-parameterised by timm onto the default device
    (a set_data error), and zoo.create(device=...) reached RMNet's constructor (a TypeError)."""
    meta = zoo.create(name, device="meta")
    assert {p.device.type for p in meta.parameters()} == {"meta"}
    plain = rm.convert(meta, fuse_bn=fuse_bn)
    assert {t.device.type for t in [*plain.parameters(), *plain.buffers()]} == {"meta"}
    reference = rm.convert(zoo.create(name), fuse_bn=fuse_bn)
    assert [(type(m), tuple(p.shape)) for m in plain.modules() for p in m.parameters(recurse=False)] == \
        [(type(m), tuple(p.shape)) for m in reference.modules() for p in m.parameters(recurse=False)]
    assert plain(torch.empty(2, 3, 32, 32, device="meta")).shape == (2, meta.num_classes)
