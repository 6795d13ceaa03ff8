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
# # The RM operation, step by step
#
# A residual block computes `relu(conv2(relu(conv1(x))) + x)`. RM removes the addition without changing
# the output: **reserve** the input through the first conv with Dirac filters (paper Eq. 1), keep it
# through BN with an identity BN (Eq. 2) and through ReLU (the input is already non-negative), then
# **merge** it into the last conv with Dirac input channels (Eq. 3).

# %%
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.resnet import BasicBlock, conv1x1

from replication import rm
from replication.rm.verify import randomize_batchnorm_

torch.manual_seed(0)

# %% [markdown]
# ## Dirac filters copy channels
# A 3x3 Dirac filter with padding 1 returns its input; with stride 2 it samples every other pixel,
# exactly as a strided 1x1 conv would.

# %%
x = torch.randn(1, 4, 6, 6, dtype=torch.float64)
dirac = rm.dirac_filters(4, 3, like=x)
print("stride 1 equal:", torch.equal(F.conv2d(x, dirac, padding=1), x))
print("stride 2 equal:", torch.equal(F.conv2d(x, dirac, stride=2, padding=1), x[:, :, ::2, ::2]))

# %% [markdown]
# ## Identity BN (Eq. 2)
# With weight `sqrt(var + eps)` and bias `mean`, a BatchNorm returns its input for any statistics.

# %%
bn = rm.identity_batchnorm(4, running_mean=torch.randn(4), running_var=torch.rand(4) + 0.5, like=x)
print("max |BN(x) - x| =", (bn(x) - x).abs().max().item())

# %% [markdown]
# ## A whole block, both downsampling schemes
# A BasicBlock that halves the resolution and doubles the channels (C -> 2C) has a 1x1 projection on
# its shortcut. Type 2 ("dirac") carries the input with stride-2 Dirac filters and pads the projection
# into the second conv: C -> 3C -> 2C, 81 C^2 weights. Type 1 ("prelu") puts the padded projection in
# the first conv and passes it through a PReLU with slope 1: C -> 4C -> 2C, 108 C^2 + 4C weights.

# %%
C = 16
block = BasicBlock(C, 2 * C, stride=2, downsample=nn.Sequential(conv1x1(C, 2 * C, 2), nn.BatchNorm2d(2 * C)))
randomize_batchnorm_(block, seed=1)  # default BN statistics would hide mistakes
block = block.double().eval()
inputs = torch.relu(torch.randn(4, C, 16, 16, dtype=torch.float64))  # blocks follow a ReLU

for scheme in ("dirac", "prelu"):
    plain = rm.convert_block(block, scheme)
    weights = sum(m.weight.numel() for m in plain if isinstance(m, (nn.Conv2d, nn.PReLU)))
    widths = [m.out_channels for m in plain if isinstance(m, nn.Conv2d)]
    print(f"{scheme:>5}: widths {widths}, weights {weights} "
          f"(81C^2={81 * C * C}, 108C^2+4C={108 * C * C + 4 * C}), "
          f"relative error {rm.max_error(block, plain, inputs)['max_rel']:.1e}")
    print(plain)

# %% [markdown]
# ### What the converted block looks like
# The weights of the type-2 block's two convs, as |W| summed over each 3x3 kernel (rows: output
# channels, columns: input channels). The first conv (left) computes the block's C -> 2C channels
# above the line and copies its C inputs below it (Dirac filters: one tap each); the second conv (right)
# reads the 2C computed channels and, right of the line, merges the reserved channels through the
# padded 1x1 projection of the shortcut.

# %%
import matplotlib.pyplot as plt

plain = rm.convert_block(block, "dirac")
convs = [m for m in plain if isinstance(m, nn.Conv2d)]
fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
for ax, conv, title in zip(axes, convs, ("conv 1: C -> 2C computed + C reserved", "conv 2: 2C + C reserved -> 2C"),
                           strict=True):
    ax.imshow(conv.weight.detach().abs().sum(dim=(2, 3)), cmap="viridis")
    ax.set(title=title, xlabel="input channel", ylabel="output channel")
axes[0].axhline(2 * C - 0.5, color="white", lw=1)
axes[1].axvline(2 * C - 0.5, color="white", lw=1)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Where the input can be negative: MobileNetV2
# MobileNetV2 blocks take the previous block's linear output, which can be negative, and cap
# activations at 6. Reserved channels therefore go through a channel-wise clamp: ReLU6 on computed
# channels, identity on reserved ones. Replacing ReLU6 by ReLU (as the official code does) breaks
# equivalence as soon as an activation exceeds 6.

# %%
from torchvision.models.mobilenetv2 import InvertedResidual

ir = randomize_batchnorm_(InvertedResidual(8, 8, stride=1, expand_ratio=6), seed=2).double().eval()
signed_inputs = 20 * torch.randn(2, 8, 10, 10, dtype=torch.float64)  # negative and saturating
plain_ir = rm.convert_block(ir)
print(plain_ir)
print("relative error:", rm.max_error(ir, plain_ir, signed_inputs)["max_rel"])

# %% [markdown]
# The clamp on the reserved channels is what keeps the conversion exact: the figure compares, per
# block input value, the block's own output with the converted block's (exact, on the diagonal) and
# with a conversion that puts ReLU6 on the reserved channels too (the official code's choice), which
# departs as soon as a reserved value leaves [0, 6].

# %%
wrong = rm.convert_block(ir)
for index, layer in enumerate(wrong):
    if isinstance(layer, rm.ChannelwiseClamp):
        wrong[index] = nn.ReLU6()
with torch.no_grad():
    expected, exact_out, wrong_out = ir(signed_inputs), plain_ir(signed_inputs), wrong(signed_inputs)
fig, ax = plt.subplots(figsize=(5, 4.5))
ax.scatter(expected.flatten()[::7], wrong_out.flatten()[::7], s=3, alpha=0.4, label="ReLU6 on reserved channels")
ax.scatter(expected.flatten()[::7], exact_out.flatten()[::7], s=3, alpha=0.4, label="ChannelwiseClamp (RM)")
ax.set(xlabel="InvertedResidual output", ylabel="converted block output", title="MobileNetV2 block, converted")
ax.legend()
plt.show()
print("max error with ReLU6 on reserved channels:", (expected - wrong_out).abs().max().item())
