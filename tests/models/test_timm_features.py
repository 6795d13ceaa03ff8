"""RMNet backbones through timm: features_only in both forms, deploy=True loading converted weights."""

import pytest
import timm
import torch

import replication  # noqa: F401  (registers the models)
from replication import rm
from replication.models.rmnet import MODEL_ARCHS, checkpoint_filter_fn
from replication.rm.verify import randomize_batchnorm_

RMNETS = sorted(f"{arch}{suffix}" for arch in MODEL_ARCHS for suffix in ("", "_cifar"))
CHANNELS = [64, 64, 128, 256, 512]


def _side(name: str) -> int:
    return 32 if name.endswith("_cifar") else 64


def _reductions(name: str) -> list[int]:
    return [1, 1, 2, 4, 8] if name.endswith("_cifar") else [4, 4, 8, 16, 32]


@pytest.mark.parametrize("deploy", [False, True], ids=["train", "deploy"])
@pytest.mark.parametrize("name", RMNETS)
def test_features_only_has_the_right_reductions_and_channels(name, deploy):
    model = timm.create_model(name, features_only=True, deploy=deploy).eval()
    assert model.feature_info.reduction() == _reductions(name)
    assert model.feature_info.channels() == CHANNELS
    side = _side(name)
    with torch.no_grad():
        features = model(torch.randn(1, 3, side, side))
    assert [tuple(f.shape[1:]) for f in features] == [(c, side // r, side // r)
                                                      for c, r in zip(CHANNELS, _reductions(name))]


def _trained_like(name: str) -> torch.nn.Module:
    """A training-form model with random BN statistics and affine parameters, float64, eval mode."""
    torch.manual_seed(0)
    return randomize_batchnorm_(timm.create_model(name), seed=1).double().eval()


@pytest.mark.parametrize("name", ["rmnet26x3_32_cifar", "rmnet41x4_8", "rmnet50x5_32_cifar"])
def test_reparameterized_features_only_model_keeps_every_feature_map(name):
    torch.manual_seed(0)
    backbone = randomize_batchnorm_(timm.create_model(name, features_only=True), seed=1).double().eval()
    side = _side(name)
    x = torch.rand(2, 3, side, side, dtype=torch.float64)
    with torch.no_grad():
        expected = backbone(x)
        plain = timm.utils.reparameterize_model(backbone)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
        for got, want in zip(plain(x), expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["rmnet26x3_32_cifar", "rmnet41x4_8"])
def test_converted_backbone_feature_maps_equal_the_training_form(name, tmp_path):
    """rm.convert's state_dict, loaded by timm into a deploy-form features_only backbone (a neck's
    input), gives the training form's feature maps, in float64."""
    model = _trained_like(name)
    path = tmp_path / "converted.pth"
    torch.save(rm.convert(model).state_dict(), path)
    backbone = timm.create_model(name, deploy=True, features_only=True, pretrained=True, dtype=torch.float64,
                                 pretrained_cfg_overlay=dict(file=str(path))).eval()
    side = _side(name)
    x = torch.rand(2, 3, side, side, dtype=torch.float64)
    with torch.no_grad():
        _, expected = model.forward_intermediates(x)
        for got, want in zip(backbone(x), expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["rmnet26x3_32", "rmnet26x3_32_cifar", "rmnet41x5_16_cifar"])
def test_deploy_form_loads_converted_state_dicts_and_matches(name):
    model = _trained_like(name)
    deploy = timm.create_model(name, deploy=True).double().eval()
    side = _side(name)
    x = torch.rand(2, 3, side, side, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
        # the state_dict of timm's reparameterize_model, as it is
        deploy.load_state_dict(timm.utils.reparameterize_model(model).state_dict())
        torch.testing.assert_close(deploy(x), expected, rtol=1e-10, atol=1e-10)
        # the flat nn.Sequential of rm.convert, mapped by the model's checkpoint filter
        fresh = timm.create_model(name, deploy=True).double().eval()
        fresh.load_state_dict(checkpoint_filter_fn(rm.convert(model).state_dict(), fresh))
        torch.testing.assert_close(fresh(x), expected, rtol=1e-10, atol=1e-10)
        assert rm.max_error(fresh, rm.convert(fresh), x)["max_rel"] <= 1e-10  # a deploy form converts as it is


def test_a_converted_state_dict_for_the_training_form_is_refused_with_a_hint():
    model = timm.create_model("rmnet26x3_32_cifar").eval()
    with pytest.raises(ValueError, match="deploy=True"):
        checkpoint_filter_fn(rm.convert(model).state_dict(), timm.create_model("rmnet26x3_32_cifar"))
