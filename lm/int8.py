"""Int8 weights for CPU inference of the LM.

A frame-by-frame step multiplies one or two rows by every weight matrix of the model, so on a CPU its
time goes to reading weights, not to arithmetic. Int8 weights (per output channel, symmetric) with
dynamically quantized activations, through torch's fbgemm/oneDNN quantized linear, read a quarter of
the bytes. Inference only: the packed weights are not parameters, so a converted model neither trains,
saves nor moves to another device.
"""

from __future__ import annotations

import torch
from torch import nn


class Int8Linear(nn.Module):
    """`nn.Linear` with int8 per-channel weights; activations are quantized per call (7-bit range, so the
    u8 x s8 products cannot saturate on CPUs without VNNI)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float().cpu()
        scale = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
        zero = torch.zeros(weight.shape[0], dtype=torch.long)
        quantized = torch.quantize_per_channel(weight, scale, zero, 0, torch.qint8)
        bias = None if linear.bias is None else linear.bias.detach().float().cpu()
        self.packed = torch.ops.quantized.linear_prepack(quantized, bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self.packed, True)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def int8_linears(module: nn.Module) -> int:
    """Replace every `nn.Linear` under `module` (a CPU model in eval mode) by an `Int8Linear`, in place;
    returns how many were replaced."""
    replaced = 0
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child))
            replaced += 1
        else:
            replaced += int8_linears(child)
    return replaced
