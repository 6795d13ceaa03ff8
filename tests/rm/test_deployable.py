"""Every converted network is deployable: torch.jit.script, torch.export and ONNX (ONNX Runtime), one model
of every family with an RM reader, each checked against the source model; and timm's EfficientNet class
and features_only models convert exactly."""

import warnings

import pytest
import timm
import torch
import torchvision
from torch import nn

from replication import rm
from replication.rm.registry import supported_families
from replication.rm.verify import randomize_batchnorm_


def _tiny_vgg() -> nn.Module:
    model = torchvision.models.vgg.VGG(torchvision.models.vgg.make_layers([8, "M", 16, "M"], batch_norm=True))
    model.classifier = nn.Sequential(nn.Linear(16 * 7 * 7, 10))  # VGG's own head is 100 M parameters
    return model


def _tiny_tv_resnet() -> nn.Module:
    from torchvision.models.resnet import BasicBlock, ResNet

    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)


# one model per reader (description prefix -> builder, input side)
FAMILIES = {
    "replication RMNet": (lambda: timm.create_model("rmnet26x3_32_cifar", num_classes=10), 32),
    "replication RepVGG-from-ResNet": (lambda: timm.create_model("repvgg_depth21_cifar", num_classes=10), 32),
    "replication MobileNetV1": (lambda: timm.create_model("mobilenetv1_cifar", num_classes=10), 32),
    "replication DiracNet": (lambda: timm.create_model("diracnet34_cifar", num_classes=10), 32),
    "timm features_only models": (lambda: timm.create_model("resnet10t", features_only=True), 64),
    "timm EfficientNet class with features_only": (lambda: timm.create_model("mobilenetv2_035", features_only=True),
                                                   64),
    "timm EfficientNet class with ReLU": (lambda: timm.create_model("mobilenetv2_035", num_classes=10), 64),
    "timm RepVGG": (lambda: timm.create_model("repvgg_a0", num_classes=10), 32),
    "timm RegNetX": (lambda: timm.create_model("regnetx_002", num_classes=10), 32),
    "timm ResNet family": (lambda: timm.create_model("resnet10t", num_classes=10), 64),  # ResNet-D: a size guard
    "torchvision VGG": (_tiny_vgg, 32),
    "torchvision RegNetX": (lambda: torchvision.models.regnet_x_400mf(num_classes=10), 32),
    "torchvision MobileNetV2": (lambda: torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.5), 32),
    "torchvision ResNet": (_tiny_tv_resnet, 32),
}


def test_every_reader_has_a_model_in_the_deployability_test():
    missing = [d for d in supported_families() if not any(d.startswith(prefix) for prefix in FAMILIES)]
    assert not missing, f"add a model of these families to FAMILIES: {missing}"


def _converted(family: str) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    build, side = FAMILIES[family]
    model = randomize_batchnorm_(build(), seed=3).eval()
    plain = rm.convert(model)
    return model, plain, torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(0))


def _flat(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _close(expected, actual, tolerance: float = 1e-4) -> float:
    pairs = list(zip(_flat(expected), _flat(actual), strict=True))
    return max(((e - a).abs().max() / e.abs().max()).item() for e, a in pairs) if pairs else 0.0


def test_converted_mobilenet_v2_scripts():  # ChannelwiseClamp under `from __future__ import annotations`
    model, plain, x = _converted("torchvision MobileNetV2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, still in use
        scripted = torch.jit.script(plain)
    assert _close(model(x), scripted(x)) <= 1e-5


def test_bn_kept_form_scripts():
    plain = rm.convert(_tiny_tv_resnet().eval(), fuse_bn=False)  # ReservedBatchNorm2d
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(plain)
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(scripted(x), plain(x))


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_converted_network_scripts_exports_and_runs_in_onnx_runtime(family, tmp_path):
    pytest.importorskip("onnxruntime")
    from replication.deploy.onnx import session

    model, plain, x = _converted(family)
    with torch.no_grad():
        expected = model(x)
        assert _close(expected, plain(x)) <= 1e-5
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.script(plain)
        assert _close(expected, scripted(x)) <= 1e-5
        program = torch.export.export(plain, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        assert _close(expected, program.module()(x)) <= 1e-5
    from replication.deploy.formats import write_checked

    written = write_checked(plain, tmp_path / "plain.onnx", model, x)
    run = session(written.path)
    outputs = run.run(None, {run.get_inputs()[0].name: x.numpy()})
    assert _close(expected, [torch.from_numpy(o) for o in outputs]) <= 1e-4


EFFICIENTNET_CLASS = ["mobilenetv2_035", "mobilenetv2_110d", "efficientnet_lite0", "mnasnet_050", "spnasnet_100",
                      "fbnetc_100", "mobilenetv1_100"]


@pytest.mark.parametrize("name", EFFICIENTNET_CLASS[:1] + [pytest.param(n, marks=pytest.mark.slow)
                                                           for n in EFFICIENTNET_CLASS[1:]])
def test_timm_efficientnet_class_converts_exactly(name):
    model = randomize_batchnorm_(timm.create_model(name, pretrained=False), seed=1).double().eval()
    plain = rm.convert(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64) * 3
    assert rm.max_error(model, plain, x)["max_rel"] <= 1e-10


@pytest.mark.parametrize("name, kwargs", [("mobilenetv2_035", {}), ("resnet18", {"out_indices": (1, 3, 4)})])
def test_timm_features_only_models_convert_exactly(name, kwargs):
    model = randomize_batchnorm_(timm.create_model(name, features_only=True, **kwargs), seed=2).double().eval()
    plain = rm.convert(model)
    assert isinstance(plain, rm.PlainFeatures)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    expected, actual = model(x), plain(x)
    assert [t.shape for t in expected] == [t.shape for t in actual]
    assert rm.max_error(model, plain, x)["max_rel"] <= 1e-10


@pytest.mark.parametrize("name, path, kind", [
    ("semnasnet_050", "blocks.2.0.se", "SqueezeExcite"),
    ("efficientnet_b0", "bn1.act", "SiLU"),
    ("tf_efficientnet_lite0", "conv_stem", "Conv2dSame"),
])
def test_other_efficientnet_class_models_are_refused_naming_the_module(name, path, kind):
    with torch.device("meta"):
        model = timm.create_model(name)
    with pytest.raises(rm.UnsupportedModuleError) as caught:
        rm.convert(model)
    assert caught.value.path == path and caught.value.module_type == kind
