"""One adapter from the workflow's config sections to a TrainConfig (runs, fine-tuning)."""

from replication.data import DataConfig
from replication.train import TrainConfig

RUN = {"model": "resnet18_cifar", "label": "ResNet 18", "sparsity": 1e-3, "shortcut_batchnorms": True,
       "overrides": {"lr": 0.2}, "model_kwargs": {"channels": [8, 16, 32, 64]}}
TRAINING = {"preset": "evidence", "overrides": {"epochs": 6, "batch_size": 128}, "finetune_preset": "cifar_finetune",
            "finetune_overrides": {"epochs": 2, "lr": 0.01}, "seed": 3, "device": "cpu", "workers": 0}
DATA = {"image_size": 28, "train_subset": 1000, "test_subset": 100, "roots": {"fashion_mnist": "/data/fm"}}


def test_a_run_takes_its_spec_the_training_section_and_the_data_section():
    config = TrainConfig.from_mapping(RUN, TRAINING, DATA, dataset="fashion_mnist", output_dir="runs/x",
                                      profile="p")
    assert config.model == "resnet18_cifar" and config.preset == "evidence"
    assert config.overrides == {"epochs": 6, "batch_size": 128, "lr": 0.2}  # the run's own overrides win
    assert config.seed == 3 and config.data == DataConfig(name="fashion_mnist", root="/data/fm", image_size=28,
                                                          train_subset=1000, test_subset=100, seed=3)
    assert config.sparsity == 1e-3 and config.shortcut_batchnorms and config.model_kwargs == RUN["model_kwargs"]
    assert config.device == "cpu" and config.output_dir == "runs/x" and config.profile == "p"
    assert config.recipe.epochs == 6 and config.recipe.lr == 0.2


def test_fine_tuning_uses_the_fine_tuning_recipe_without_sparsity():
    config = TrainConfig.from_mapping(RUN, TRAINING, DATA, dataset="fashion_mnist", output_dir="runs/ft",
                                      profile="p", seed=1, finetune=True, model="resnet18_cifar-rm-bn")
    assert config.model == "resnet18_cifar-rm-bn" and config.preset == "cifar_finetune" and config.seed == 1
    assert config.overrides == {"epochs": 2, "batch_size": 128, "lr": 0.01}
    assert config.sparsity == 0.0 and not config.shortcut_batchnorms and config.model_kwargs == {}
