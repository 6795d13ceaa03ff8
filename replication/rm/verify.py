"""Numerical equivalence checks between a residual model and its converted plain form, and the BatchNorm
statistics that make such a check meaningful (:func:`randomize_batchnorm_`)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def _as_batches(inputs: torch.Tensor | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    batches = list(inputs)
    if not batches or not all(isinstance(b, torch.Tensor) for b in batches):
        raise TypeError("inputs must be a tensor or a non-empty iterable of tensors")
    return batches


def _output_pairs(expected: object, actual: object) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Matching output tensors of two models: one tensor each, or lists / tuples of them (feature maps)."""
    if isinstance(expected, torch.Tensor) and isinstance(actual, torch.Tensor):
        if expected.shape != actual.shape:
            raise ValueError(f"output shapes differ: {tuple(expected.shape)} vs {tuple(actual.shape)}")
        return [(expected, actual)]
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        if len(expected) != len(actual):
            raise ValueError(f"the models return {len(expected)} and {len(actual)} outputs")
        return [pair for e, a in zip(expected, actual) for pair in _output_pairs(e, a)]
    raise ValueError(f"outputs differ in kind: {type(expected).__name__} vs {type(actual).__name__}")


@torch.no_grad()
def max_error(reference: nn.Module, candidate: nn.Module,
              inputs: torch.Tensor | Iterable[torch.Tensor]) -> dict[str, float]:
    """Largest output difference of two models over some inputs, both run in eval mode.

    Outputs are tensors, or lists / tuples of tensors (a feature extractor's feature maps), compared
    element by element. Returns a dict with:
        ``max_abs``: max |reference(x) - candidate(x)| over all inputs and elements;
        ``max_rel``: ``max_abs`` divided by max |reference(x)| (a scale-free error; per-element
        ratios are meaningless near zero outputs);
        ``reference_scale``: max |reference(x)|; ``num_inputs``: number of input batches;
        ``finite``: 1.0 when every output of both models is finite. A NaN or infinite output on either
        side makes ``max_abs`` and ``max_rel`` NaN, so every ``error <= bound`` check fails.
    Every module's train/eval flag is restored afterwards, as it was (mixed models included).
    """
    batches = _as_batches(inputs)
    # Every submodule's own flag: a model may mix training and eval submodules on purpose.
    modes = [(m, m.training) for model in (reference, candidate) for m in model.modules()]
    reference.eval()
    candidate.eval()
    try:
        max_abs = 0.0
        scale = 0.0
        finite = True
        for x in batches:
            for expected, actual in _output_pairs(reference(x), candidate(x)):
                # Python's max(0.0, nan) is 0.0: a non-finite output must not vanish into the maximum.
                finite = finite and bool(torch.isfinite(expected).all()) and bool(torch.isfinite(actual).all())
                max_abs = max(max_abs, (expected - actual).abs().max().item())
                scale = max(scale, expected.abs().max().item())
    finally:
        for module, training in modes:
            module.training = training
    if not finite:
        max_abs = float("nan")
    return {"max_abs": max_abs, "max_rel": max_abs / scale if scale > 0 else max_abs,
            "reference_scale": scale, "num_inputs": float(len(batches)), "finite": float(finite)}


@torch.no_grad()
def randomize_batchnorm_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random running statistics and affine parameters, in place.

    Default statistics (mean 0, var 1, weight 1, bias 0) make BN the identity and hide conversion
    bugs. Weights are drawn from [0.5, 1.5] (random sign), biases from N(0, 0.5), means from N(0, 0.5),
    variances from [0.5, 2]: scales stay near one, so deep networks neither vanish nor explode.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            running_mean, running_var = module.running_mean, module.running_var
            assert running_mean is not None and running_var is not None, "BN without running statistics"

            def draw(fn, n: int = n, like: torch.Tensor = running_mean) -> torch.Tensor:
                return fn(n, generator=generator).to(like)

            sign = torch.where(torch.rand(n, generator=generator) < 0.2, -1.0, 1.0).to(running_mean)
            running_mean.copy_(0.5 * draw(torch.randn))
            running_var.copy_(0.5 + 1.5 * draw(torch.rand))
            if module.affine:
                module.weight.copy_(sign * (0.5 + draw(torch.rand)))
                module.bias.copy_(0.5 * draw(torch.randn))
    return model
