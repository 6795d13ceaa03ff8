# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Converting a ResNet and a MobileNetV2
#
# `replication.rm.convert` returns a new `nn.Sequential` equal to the model in eval mode. Load your
# trained weights first; here BN statistics are randomised instead (untrained BN is the identity).

# %%
import timm
import torch
import torchvision

import replication  # noqa: F401  (registers the RMNet family with timm)
from replication import rm
from replication.measure import count_macs, count_params
from replication.rm.verify import randomize_batchnorm_

torch.manual_seed(0)

# %% [markdown]
# ## ResNet-18 -> plain network

# %%
resnet = randomize_batchnorm_(torchvision.models.resnet18(num_classes=10), seed=0).eval()
plain = rm.convert(resnet)
x = torch.randn(2, 3, 64, 64)
print(rm.max_error(resnet, plain, x))
print(f"params {count_params(resnet) / 1e6:.2f} M -> {count_params(plain) / 1e6:.2f} M, "
      f"MACs {count_macs(resnet, (3, 64, 64)) / 1e9:.3f} G -> {count_macs(plain, (3, 64, 64)) / 1e9:.3f} G")
print(plain[:8])

# %% [markdown]
# ## MobileNetV2 -> RMNetV1 -> MobileNetV1
# The CIFAR MobileNetV2 of this project is designed so that RM followed by fusing consecutive 1x1
# convs (paper Eq. 4) gives exactly MobileNetV1's depth and widths.

# %%
v2 = randomize_batchnorm_(timm.create_model("mobilenetv2_rm_cifar"), seed=1).eval()
rmnet_v1 = rm.convert(v2, fuse_pointwise=False)
v1_form = rm.convert(v2)
x = 5 * torch.randn(2, 3, 32, 32)
for name, model in (("RMNetV1", rmnet_v1), ("MobileNetV1 form", v1_form)):
    print(f"{name}: {sum(isinstance(m, torch.nn.Conv2d) for m in model)} convs, "
          f"{count_macs(model, (3, 32, 32)) / 1e6:.1f} M MACs, relative error "
          f"{rm.max_error(v2, model, x)['max_rel']:.1e}")

# %% [markdown]
# ### What RM costs, and what it removes
# Params, MACs and the number of layers before and after, for the models above: RM removes every
# residual addition and BatchNorm, and pays with the reserved channels (ResNet-18 at 64x64) or, for
# MobileNetV2, buys a deeper fusion (Eq. 4) into MobileNetV1's structure.

# %%
import matplotlib.pyplot as plt

rows = {"ResNet-18": (resnet, plain, (3, 64, 64)), "MobileNetV2 (CIFAR)": (v2, v1_form, (3, 32, 32))}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for ax, (quantity, count) in zip(axes, (("params (M)", lambda m, s: count_params(m) / 1e6),
                                        ("MACs (M)", lambda m, s: count_macs(m, s) / 1e6)), strict=True):
    names = list(rows)
    before = [count(model, size) for model, _, size in rows.values()]
    after = [count(converted, size) for _, converted, size in rows.values()]
    positions = range(len(names))
    ax.bar([p - 0.2 for p in positions], before, width=0.4, label="residual (as trained)")
    ax.bar([p + 0.2 for p in positions], after, width=0.4, label="plain (RM)")
    ax.set_xticks(list(positions), names)
    ax.set(ylabel=quantity, title=quantity)
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The RMNet family and paper Table 4

# %%
rmnet = timm.create_model("rmnet26x3_32_cifar", num_classes=10).eval()
print(rm.convert(rmnet))
