"""Reserved channels as a type: a BN-kept converted network saves, loads and is still exact."""

import torch
import torchvision

from replication import rm
from replication.rm.plain_io import load_plain, save_plain
from replication.rm.verify import randomize_batchnorm_
from replication.train.finetune import reserved_batchnorms


def test_reserved_span_survives_state_dict():
    bn = rm.ReservedBatchNorm2d(12, (8, 12))
    state = bn.state_dict()
    assert torch.equal(state["reserved_span"], torch.tensor([8, 12]))
    fresh = rm.ReservedBatchNorm2d(12)
    assert fresh.rm_reserved == (12, 12)
    fresh.load_state_dict(state)
    assert fresh.rm_reserved == (8, 12)


def test_bn_kept_deploy_model_saves_and_loads_for_fine_tuning(tmp_path):
    torch.manual_seed(0)
    model = randomize_batchnorm_(torchvision.models.resnet18(num_classes=10), seed=0).eval()  # plain_io: float32
    with_bn = rm.convert(model, fuse_bn=False)
    spans = [bn.rm_reserved for bn in reserved_batchnorms(with_bn)]
    assert spans and all(start < stop for start, stop in spans)
    loaded = load_plain(save_plain(with_bn, tmp_path / "with_bn.pt"))
    assert [bn.rm_reserved for bn in reserved_batchnorms(loaded)] == spans
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(x), with_bn(x))
    assert rm.max_error(model, loaded, x)["max_rel"] <= 1e-5
    # trainable again, and a training step moves the reserved BN channels like any other
    loaded.train()
    for param in loaded.parameters():
        param.requires_grad_(True)
    loaded(x).sum().backward()
    first = reserved_batchnorms(loaded)[0]
    start, stop = first.rm_reserved
    assert first.weight.grad is not None and first.weight.grad[start:stop].abs().sum() > 0
