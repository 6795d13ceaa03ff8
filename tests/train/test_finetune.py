"""Fine-tuning after conversion starts exactly where the converted model is (Appendix A.3)."""

import pytest
import timm
import torch
from torch.utils.data import DataLoader

import replication  # noqa: F401
from replication import rm
from replication.data import DataConfig, build_datasets
from replication.rm.verify import randomize_batchnorm_
from replication.train import TrainConfig, evaluate, train
from replication.train.finetune import prepare_for_finetuning, reserved_batchnorms

NARROW = {"channels": (8, 16, 32, 64), "stem_width": 8}


def test_calibrated_batchnorms_keep_the_network_exact_with_measured_statistics():
    model = randomize_batchnorm_(timm.create_model("resnet18_cifar", num_classes=10), seed=0).double().eval()
    calibration = [torch.relu(torch.randn(4, 3, 32, 32, dtype=torch.float64)) * 3 for _ in range(2)]
    plain = prepare_for_finetuning(model, "bn", calibration)
    bns = reserved_batchnorms(plain)
    assert bns, "the unfused form keeps BN on reserved channels"
    start, stop = bns[0].rm_reserved
    assert not torch.allclose(bns[0].running_mean[start:stop], torch.zeros(stop - start, dtype=torch.float64))
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    assert rm.max_error(model, plain, x)["max_rel"] <= 1e-10
    assert all(p.requires_grad for p in plain.parameters())


@pytest.mark.parametrize("mode", ["bn", "fused"])
def test_finetuning_starts_at_the_converted_models_accuracy(fashion_root, tmp_path, mode):
    data = DataConfig("fashion_mnist", root=str(fashion_root), image_size=16)
    config = TrainConfig(model="resnet18_cifar", data=data, overrides={"epochs": 2, "batch_size": 32},
                         output_dir=str(tmp_path / "base"), device="cpu", model_kwargs=NARROW)
    train(config)
    model = timm.create_model("resnet18_cifar", num_classes=10, in_chans=1, **NARROW)
    state = torch.load(tmp_path / "base" / "checkpoint.pt", weights_only=True)["model"]
    model.load_state_dict(state)
    model.eval()
    _, test_set, _ = build_datasets(data)
    loader = DataLoader(test_set, batch_size=64)
    train_set, _, _ = build_datasets(DataConfig("fashion_mnist", root=str(fashion_root), image_size=16, augment=False))
    calibration = [images for images, _ in DataLoader(train_set, batch_size=64)]
    plain = prepare_for_finetuning(model, mode, calibration)
    before, after_conversion = evaluate(model, loader, "cpu"), evaluate(plain, loader, "cpu")
    assert after_conversion["top1"] == before["top1"]  # step 0 is the converted model, exactly
    assert after_conversion["loss"] == pytest.approx(before["loss"], rel=1e-5)
    tuned = TrainConfig(model=f"resnet18_cifar-plain-{mode}", data=data, preset="embedded",
                        overrides={"epochs": 1, "batch_size": 32, "lr": 0.01}, output_dir=str(tmp_path / mode),
                        device="cpu")
    last = train(tuned, model=plain)
    assert last["epoch"] == 1 and 0 <= last["top1"] <= 100
