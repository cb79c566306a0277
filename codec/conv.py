"""Causal convolutions with carried streaming state.

Offline, a causal conv pads its input on the left only, so output frame t sees input up to t.
Streaming, it keeps the tail of its input (what the left padding would have held) between calls;
a transposed conv keeps the overlapping part of its output and adds it to the next call's head.
Both give exactly the offline result when the chunks are concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from .streaming import StreamingModule


@dataclass
class ConvState:
    previous: torch.Tensor  # [B, C_in, effective_kernel - stride]: input not yet consumed


@dataclass
class ConvTransposeState:
    partial: torch.Tensor  # [B, C_out, kernel - stride]: output still waiting for later frames


class CausalConv1d(StreamingModule):
    """Weight-normalised causal 1-D conv. Input [B, C_in, N] -> output [B, C_out, ceil(N / stride)]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, bias: bool = True, groups: int = 1) -> None:
        super().__init__()
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, bias=bias,
                         groups=groups)
        self.conv = weight_norm(conv)
        self.stride = stride
        self.effective_kernel = (kernel_size - 1) * dilation + 1
        if self.effective_kernel < stride:
            raise ValueError("kernel must cover the stride")

    @property
    def left_context(self) -> int:
        return self.effective_kernel - self.stride

    def _init_streaming_state(self, batch_size: int) -> ConvState:
        weight = self.conv.weight
        zeros = torch.zeros(batch_size, self.conv.in_channels, self.left_context, device=weight.device,
                            dtype=weight.dtype)
        return ConvState(previous=zeros)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state: ConvState | None = self._streaming_state
        if state is None:
            frames = -(-x.shape[-1] // self.stride)
            right = frames * self.stride - x.shape[-1]
            return self.conv(F.pad(x, (self.left_context, right)))
        x = torch.cat([state.previous, x], dim=-1)
        frames = (x.shape[-1] - self.effective_kernel) // self.stride + 1
        if frames <= 0:
            state.previous = x
            return x.new_zeros(x.shape[0], self.conv.out_channels, 0)
        used = (frames - 1) * self.stride + self.effective_kernel
        y = self.conv(x[..., :used])
        state.previous = x[..., frames * self.stride:]
        return y


class CausalConvTranspose1d(StreamingModule):
    """Weight-normalised causal transposed conv. Input [B, C_in, T] -> output [B, C_out, T * stride]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        if kernel_size < stride:
            raise ValueError("kernel must cover the stride")
        conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride, bias=False)
        self.conv = weight_norm(conv)
        # The bias is added after the overlap-add, so carried partial outputs never hold it twice.
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.stride = stride
        self.overlap = kernel_size - stride

    def _init_streaming_state(self, batch_size: int) -> ConvTransposeState:
        weight = self.conv.weight
        zeros = torch.zeros(batch_size, self.bias.shape[0], self.overlap, device=weight.device, dtype=weight.dtype)
        return ConvTransposeState(partial=zeros)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1] * self.stride
        bias = self.bias[:, None]
        state: ConvTransposeState | None = self._streaming_state
        if length == 0:
            return x.new_zeros(x.shape[0], self.bias.shape[0], 0)
        y = self.conv(x)  # [B, C_out, length + overlap]
        if state is None:
            return y[..., :length] + bias
        head = y[..., : self.overlap] + state.partial
        y = torch.cat([head, y[..., self.overlap:]], dim=-1)
        state.partial = y[..., length:]
        return y[..., :length] + bias
