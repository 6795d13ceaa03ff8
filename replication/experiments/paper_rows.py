"""Which of our models stands for each model row of the paper's Tables 1-3."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperRow:
    table: str          # paper table file stem (replication.paper.TABLES)
    dataset: str        # as written in the paper table
    backbone: str       # as written in the paper table
    model: str          # name for replication.zoo.create
    num_classes: int
    input_size: int     # square input side the paper measures at

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.table, self.dataset, self.backbone)


def _cifar(table: str, dataset: str, classes: int, pairs: list[tuple[str, str]]) -> list[PaperRow]:
    return [PaperRow(table, dataset, backbone, model, classes, 32) for backbone, model in pairs]


_CIFAR_TABLE1 = [("ResNet 34", "resnet34_cifar"), ("DiracNet 34", "diracnet34_cifar"),
                 ("ResDistill 34", "resdistill34_cifar"), ("RepVGG A2", "repvgg_a2_cifar"),
                 ("RMNet 26x3_32", "rmnet26x3_32_cifar")]
_IMAGENET_TABLE1 = [("ResNet 50", "timm:resnet50"), ("ResDistill 50", "resdistill50"),
                    ("RMNet 41x4_8", "rmnet41x4_8"), ("ResNeXt 50", "timm:resnext50_32x4d"),
                    ("RepVGG B1", "timm:repvgg_b1"), ("RMNet 41x5_16", "rmnet41x5_16"),
                    ("ResNet 101", "timm:resnet101"), ("VGG 16", "torchvision:vgg16"),
                    ("RepVGG B2", "timm:repvgg_b2"), ("RMNet 50x5_32", "rmnet50x5_32"),
                    ("ResNet 152", "timm:resnet152"), ("RepVGG B3", "timm:repvgg_b3"),
                    ("RMNet 50x6_32", "rmnet50x6_32"), ("ResNeXt 101", "timm:resnext101_32x8d"),
                    ("RMNet 101x6_16", "rmnet101x6_16"), ("RMNet 152x6_32", "rmnet152x6_32")]
# RMNetV1 is MobileNetV2 converted without training: its numbers are the V2 model's deploy form.
_MOBILENET = [("MobileNetV2", "mobilenetv2_rm_cifar"), ("RMNetV1", "mobilenetv2_rm_cifar"),
              ("MobileNetV1", "mobilenetv1_cifar")]
_TABLE3 = [("ResNet 18", "timm:resnet18"), ("RepVGG 18", "repvgg18"), ("ResNet 34", "timm:resnet34"),
           ("RepVGG 34", "repvgg34")]

PAPER_ROWS: list[PaperRow] = [
    *_cifar("table1_sota", "CIFAR10", 10, _CIFAR_TABLE1),
    *_cifar("table1_sota", "CIFAR100", 100, _CIFAR_TABLE1),
    *[PaperRow("table1_sota", "ImageNet", backbone, model, 1000, 224) for backbone, model in _IMAGENET_TABLE1],
    *_cifar("table2_mobilenet", "CIFAR10", 10, _MOBILENET),
    *_cifar("table2_mobilenet", "CIFAR100", 100, _MOBILENET),
    *[PaperRow("table3_repvgg_vs_resnet", "ImageNet", backbone, model, 1000, 224) for backbone, model in _TABLE3],
]
