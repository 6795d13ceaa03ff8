"""Every registered model builds through timm, runs at its paper input size, and converts exactly."""

import re

import pytest
import timm
import torch
from torch import nn

import replication  # noqa: F401  (registers the models)
from replication import rm
from replication.models import registered_models
from replication.paper import table4_text
from replication.rm.verify import randomize_batchnorm_

MODELS = registered_models()
# Above ~20 GMACs per image, float64 checks run at 64x64 instead of 224x224 (CPU budget); the paper
# input size is still exercised by the float32 forward.
LARGE = {"rmnet152x6_32", "rmnet101x6_16", "rmnet50x6_32", "rmnet50x5_32"}


def test_registry_lists_the_paper_families():
    assert set(timm.list_models("rmnet*")) == set(
        f"rmnet{arch}{suffix}" for arch in ("26x3_32", "41x4_8", "41x5_16", "50x5_32", "50x6_32", "101x6_16",
                                            "152x6_32") for suffix in ("", "_cifar"))
    for name in ("resnet34_cifar", "resdistill34_cifar", "resdistill50", "diracnet34_cifar", "repvgg_a2_cifar",
                 "repvgg18", "repvgg34", "mobilenetv2_rm_cifar", "mobilenetv1_cifar", "resnet_depth133_cifar",
                 "repvgg_depth133_cifar"):
        assert name in MODELS


@pytest.mark.parametrize("name", MODELS)
def test_builds_runs_and_converts_exactly(name):
    cfg = timm.models.get_pretrained_cfg(name)
    _, height, width = cfg.input_size
    in_chans = 1  # the usual timm kwargs reach every constructor
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=7, in_chans=in_chans, drop_rate=0.1)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, in_chans, height, width)).shape == (1, 7)  # paper input size
    randomize_batchnorm_(model, seed=1)
    model = model.double()
    side = 64 if name in LARGE else height
    x = torch.randn(2, in_chans, side, side, dtype=torch.float64)
    if "mobilenetv2" in name:
        x = 8 * x  # signed inputs that saturate ReLU6
    plain = rm.convert(model)
    assert rm.max_error(model, plain, x)["max_rel"] <= 1e-10


@pytest.mark.parametrize("name", ["rmnet26x3_32_cifar", "rmnet41x4_8", "repvgg18", "diracnet34_cifar"])
def test_timm_reparameterize_model_matches_rm_convert(name):
    model = randomize_batchnorm_(timm.create_model(name), seed=2).double().eval()
    reparameterized = timm.utils.reparameterize_model(model)
    plain = rm.convert(model)
    side = timm.models.get_pretrained_cfg(name).input_size[-1]
    x = torch.randn(2, 3, side, side, dtype=torch.float64)
    assert rm.max_error(model, reparameterized, x)["max_rel"] <= 1e-10
    assert rm.max_error(reparameterized, plain, x)["max_rel"] <= 1e-10
    if name.startswith("rmnet"):  # every RMNet layer has the hook; other families keep plain conv+BN pairs
        assert sum(p.numel() for p in reparameterized.parameters()) == sum(p.numel() for p in plain.parameters())
        assert not any(isinstance(m, nn.BatchNorm2d) for m in reparameterized.modules())


def test_rmnet_blocks_reparameterize_in_place_and_stay_exact():
    model = randomize_batchnorm_(timm.create_model("rmnet26x3_32_cifar"), seed=3).double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    expected = model(x)
    for block in model.stages.modules():
        if hasattr(block, "reparameterize"):
            block.reparameterize()
    torch.testing.assert_close(model(x), expected, rtol=1e-10, atol=1e-10)
    assert rm.max_error(model, rm.convert(model), x)["max_rel"] <= 1e-10  # already-deployed blocks convert too


def _normalise(text: str) -> list[str]:
    """Layer lines without whitespace or underscores (the paper's PDF text lost the underscores)."""
    compact = re.sub(r"[\s_]", "", text)
    return re.split(r"(?=\(\d+\):)", compact)


def test_rmnet26x3_32_cifar_deploy_form_prints_as_paper_table4():
    plain = rm.convert(timm.create_model("rmnet26x3_32_cifar", num_classes=10).eval())
    assert _normalise(repr(plain)) == _normalise(table4_text())


def test_stems_are_chosen_by_name_or_kwarg_not_class_count():
    cifar = timm.create_model("rmnet26x3_32_cifar", num_classes=1000)
    imagenet = timm.create_model("rmnet26x3_32", num_classes=10)
    assert cifar.stem_type == "cifar" and len(cifar.stem) == 1
    assert imagenet.stem_type == "imagenet" and len(imagenet.stem) == 2
    assert timm.create_model("rmnet26x3_32", stem_type="cifar").stem_type == "cifar"


def test_constructor_kwargs_reach_the_model():
    model = timm.create_model("rmnet26x3_32_cifar", num_classes=3, in_chans=1, drop_rate=0.3)
    assert model.fc.out_features == 3 and model.head_drop.p == 0.3
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 3)


def test_unknown_model_name_is_named():
    with pytest.raises(RuntimeError, match="rmnet27x3_32"):
        timm.create_model("rmnet27x3_32")


def test_group_width_that_does_not_divide_the_hidden_width_is_reported():
    from replication.models.rmnet import RMNet

    with pytest.raises(ValueError, match=r"hidden width 128 .* group width 48"):
        RMNet(depths=(1, 1, 1, 1), expand_ratio=3, group_width=48)


def test_bad_stem_type_and_unknown_kwargs_are_reported():
    with pytest.raises(ValueError, match="stem_type"):
        timm.create_model("rmnet26x3_32", stem_type="tiny")
    with pytest.raises(TypeError, match="widht"):
        timm.create_model("rmnet26x3_32", widht=3)


def test_mobilenet_v2_design_converts_to_the_mobilenet_v1_layout():
    v2 = timm.create_model("mobilenetv2_rm_cifar").eval()
    v1 = timm.create_model("mobilenetv1_cifar").eval()

    def layout(model):
        return [(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.groups)
                for m in model.modules() if isinstance(m, nn.Conv2d)]

    assert layout(rm.convert(v2)) == layout(v1)


@pytest.mark.parametrize("name", MODELS)
def test_fresh_model_output_depends_on_its_input(name):
    """A freshly built model, as training sees it (BN on batch statistics), must not output the same
    logits for different images: a block without a shortcut whose last BN starts at zero (timm's
    zero_init_last) does, and then it never trains."""
    side = 32 if timm.models.get_pretrained_cfg(name).input_size[-1] == 32 else 64
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10).train()
    with torch.no_grad():
        logits = model(torch.randn(4, 3, side, side))
    spread = (logits - logits.mean(dim=0, keepdim=True)).abs().max()
    assert spread > 1e-4 * logits.abs().max().clamp_min(1e-12), "different images give the same logits"


def test_rmnet_blocks_start_as_their_shortcut_like_the_official_code():
    from replication.models.rmnet import RMBlock

    model = timm.create_model("rmnet26x3_32_cifar")
    blocks = [m for m in model.modules() if isinstance(m, RMBlock)]
    assert blocks and all(bool((block.bn3.weight == 0).all()) for block in blocks)
    assert all(bool((block.bn1.weight == 1).all()) for block in blocks)


def test_resdistill_students_keep_their_last_batchnorm():
    for name in ("resdistill34_cifar", "resdistill50"):
        model = timm.create_model(name)
        last = [m for n, m in model.named_modules() if n.endswith(("bn2", "bn3")) and isinstance(m, nn.BatchNorm2d)]
        assert last and all(bool((bn.weight == 1).all()) for bn in last), name
