"""Exact or refused: modules whose output is not what their type computes (hooks, an instance-level
forward) are refused by name; a plain-network file builds only the layer types of its format."""

import pytest
import torch
from timm.models.resnet import BasicBlock, ResNet
from torch import nn

from replication import rm
from replication.rm.file_io import CheckpointError
from replication.rm.plain_io import FORMAT, load_plain, save_plain
from replication.rm.verify import randomize_batchnorm_


def _small() -> nn.Module:
    model = ResNet(BasicBlock, [1, 1, 1, 1], channels=(8, 16, 32, 64), stem_width=8, num_classes=10)
    randomize_batchnorm_(model, seed=1)
    return model.eval()


def _double_output(module, inputs, output):
    return output * 2


def _shift_input(module, inputs):
    return (inputs[0] + 1,)


@pytest.mark.parametrize("patch, path, words", [
    (lambda m: m.layer2[0].conv1.register_forward_hook(_double_output), "layer2.0.conv1", "forward hook"),
    (lambda m: m.layer3[0].register_forward_pre_hook(_shift_input), "layer3.0", "forward pre-hook"),
    (lambda m: m.layer1[0].bn2.register_forward_hook(_double_output, with_kwargs=False), "layer1.0.bn2",
     "forward hook"),
    (lambda m: setattr(m.layer1[0].conv2, "forward", lambda x: 2 * nn.Conv2d.forward(m.layer1[0].conv2, x)),
     "layer1.0.conv2", "forward is replaced"),
], ids=["forward-hook", "forward-pre-hook", "bn-hook", "instance-forward"])
def test_a_module_that_does_not_compute_what_its_type_says_is_refused_by_name(patch, path, words):
    model = _small()
    patch(model)
    with pytest.raises(rm.UnsupportedModuleError, match=words) as info:
        rm.convert(model)
    assert f"cannot convert module '{path}'" in str(info.value)


def test_the_refusal_names_the_module_path():
    model = _small()
    handle = model.layer2[0].conv1.register_forward_hook(_double_output)
    with pytest.raises(rm.UnsupportedModuleError, match=r"'layer2\.0\.conv1' \(Conv2d\)"):
        rm.convert(model)
    handle.remove()  # the way out the message names: the clean model converts exactly
    x = torch.randn(2, 3, 32, 32)
    assert rm.max_error(model, rm.convert(model), x)["max_rel"] <= 1e-5


def test_a_global_forward_hook_is_refused():
    handle = nn.modules.module.register_module_forward_hook(lambda module, inputs, output: None)
    try:
        with pytest.raises(rm.RMConversionError, match="global forward hook"):
            rm.convert(_small())
    finally:
        handle.remove()


def test_convert_block_refuses_a_hooked_block_with_its_path():
    block = _small().layer1[0]
    block.conv1.register_forward_pre_hook(_shift_input)
    with pytest.raises(rm.UnsupportedModuleError, match=r"'stage1\.conv1'"):
        rm.convert_block(block, path="stage1")


def test_backward_hooks_do_not_change_outputs_and_are_accepted():
    model = _small()
    model.layer1[0].conv1.register_full_backward_hook(lambda module, grad_in, grad_out: None)
    x = torch.randn(2, 3, 32, 32)
    assert rm.max_error(model, rm.convert(model), x)["max_rel"] <= 1e-5


def _plain_file(tmp_path, edit):
    path = save_plain(rm.convert(_small()), tmp_path / "plain.pt")
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["layers"].__setitem__(1, {"type": "Transformer"}), r"layer 1 has type 'Transformer', which is not "
                                                                    rf"a layer of the {FORMAT} format"),
    (lambda p: p["layers"].__setitem__(1, {"type": "Module"}), "type 'Module'"),
    (lambda p: p["layers"].__setitem__(0, {**p["layers"][0], "padding_mode": "circular"}),
     r"layer 0 \(Conv2d\) has field\(s\) the .* format does not define: padding_mode"),
    (lambda p: p["layers"].__setitem__(0, ["Conv2d"]), "layer 0 is not a layer spec"),
    (lambda p: p["layers"].__setitem__(0, {**p["layers"][0], "in_channels": "three"}), r"layer 0 \(Conv2d\) cannot "
                                                                                      "be built"),
    (lambda p: p["state_dict"].pop("0.weight"), "the weights do not fit its layers"),
    (lambda p: p.__setitem__("layers", "Conv2d"), "holds a list of 'layers'"),
], ids=["unknown-type", "base-class", "unknown-field", "not-a-mapping", "bad-value", "missing-weight", "no-list"])
def test_a_plain_file_builds_only_its_own_layer_types(tmp_path, edit, message):
    path = _plain_file(tmp_path, edit)
    with pytest.raises(CheckpointError, match=message) as info:
        load_plain(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
