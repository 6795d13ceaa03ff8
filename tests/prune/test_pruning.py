"""Network slimming through RM: the pruned plain network equals the masked network exactly."""

import pytest
import timm
import torch
from torch import nn

import replication  # noqa: F401
from replication import rm
from replication.prune import add_shortcut_batchnorms_, prune_plain, slim_and_prune
from replication.rm.verify import randomize_batchnorm_


def _sparse_resnet(seed: int, keep: float = 0.5) -> nn.Module:
    """A ResNet-18 (CIFAR stem) whose BN scales are bimodal, as after sparsity training."""
    torch.manual_seed(seed)
    model = add_shortcut_batchnorms_(timm.create_model("resnet18_cifar", num_classes=10))
    randomize_batchnorm_(model, seed=seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                small = torch.rand(module.num_features) > keep
                module.weight[small] *= 1e-4
    return model.double().eval()


@pytest.mark.parametrize("keep", [0.3, 0.7])
def test_pruned_plain_network_equals_masked_network(keep):
    model = _sparse_resnet(seed=1, keep=keep)
    masked, pruned, report = slim_and_prune(model, threshold=1e-3)
    x = torch.relu(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    assert rm.max_error(masked, pruned, x)["max_rel"] <= 1e-10
    assert report.params_pruned == sum(p.numel() for p in pruned.parameters())
    assert report.params_pruned < report.params_plain
    assert report.pruned_ratio == pytest.approx(1 - report.params_pruned / report.params_original)
    assert report.masked_channels > 0


def test_more_masking_prunes_more():
    model = _sparse_resnet(seed=2, keep=0.5)
    ratios = [slim_and_prune(model, threshold)[2].pruned_ratio for threshold in (1e-5, 1e-3, 0.9)]
    assert ratios[0] < ratios[1] < ratios[2]


def test_shortcut_batchnorms_make_reserved_channels_prunable():
    """With a BN on identity shortcuts, masking it removes the reserved channel after RM."""
    model = _sparse_resnet(seed=3, keep=1.0)  # nothing masked except what we set below
    block = model.layer1[0]
    with torch.no_grad():
        block.downsample[0].weight[:10] = 0.0  # shortcut BN of 10 reserved channels
    _, pruned, report = slim_and_prune(model, threshold=1e-6)
    first_block_conv = [m for m in pruned if isinstance(m, nn.Conv2d)][1]
    assert first_block_conv.out_channels == 64 + 64 - 10
    assert report.masked_channels == 10


def test_prune_plain_leaves_a_dense_network_alone():
    plain = rm.convert(randomize_batchnorm_(timm.create_model("resnet18_cifar"), seed=0).eval())
    pruned = prune_plain(plain)
    assert sum(p.numel() for p in pruned.parameters()) == sum(p.numel() for p in plain.parameters())


def test_a_fully_masked_layer_keeps_one_zero_channel():
    """A threshold above every scale of a BN masks the whole layer; the pruned network keeps one
    (all-zero) channel there and still equals the masked network."""
    model = _sparse_resnet(seed=6, keep=0.5)
    masked, pruned, _ = slim_and_prune(model, threshold=100.0)  # above every scale: every channel masked
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    assert rm.max_error(masked, pruned, x)["max_rel"] <= 1e-10
    assert min(m.out_channels for m in pruned if isinstance(m, nn.Conv2d)) >= 1


def test_resnet_baseline_is_pruned_under_residual_constraints():
    pytest.importorskip("torch_pruning")
    from replication.prune.baseline import prune_resnet_baseline

    model = _sparse_resnet(seed=4, keep=0.5).float()
    pruned, info = prune_resnet_baseline(model, 1e-3, (3, 32, 32))
    assert info["params_pruned"] < info["params_original"]
    assert pruned(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # Residual coupling keeps every block's output width equal to its shortcut's.
    for block in (pruned.layer1[0], pruned.layer1[1]):
        assert block.conv2.out_channels == block.downsample[0].num_features


def test_resnet_baseline_applies_the_same_threshold_rule_as_rmnet():
    """Inside a block, a channel goes exactly when its BN scale is below the threshold (RMNet's rule);
    a residual-stream channel goes exactly when every BN scale coupled to it is below it."""
    pytest.importorskip("torch_pruning")
    from replication.prune.baseline import prune_resnet_baseline
    from replication.prune.slimming import bn_keep_masks

    threshold = 1e-3
    model = _sparse_resnet(seed=5, keep=0.5).float()
    keep = bn_keep_masks(model, threshold)
    pruned, _ = prune_resnet_baseline(model, threshold, (3, 32, 32))
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        for index in range(2):
            name = f"{stage}.{index}"
            expected = max(int(keep[f"{name}.bn1"].sum()), 1)
            assert pruned.get_submodule(name).conv1.out_channels == expected, name
    stream = keep["bn1"] | keep["layer1.0.bn2"] | keep["layer1.1.bn2"] | keep["layer1.0.downsample.0"] \
        | keep["layer1.1.downsample.0"]
    assert pruned.layer1[0].conv2.out_channels == int(stream.sum())
