"""A phase locked to the sinusoids the predicted amplitudes show, for the istft decoder.

A phase predicted afresh each frame from a steady latent is steady, and with the decoder's framing (window
two hops, frame t centred on sample t * hop) a steady spectrum is a signal periodic in the hop: lines at
multiples of the frame rate only, whatever the amplitudes say. A sinusoid at w rad/sample instead turns
its phase at the window's centre by w * hop from frame to frame, and every bin k of its main lobe has that
centre phase minus pi * k (the rfft's reference is the window's start, half a window of 2 hops earlier).

So where the amplitudes show a sinusoid, the phase is made rather than predicted (Laroche and Dolson's
identity phase locking): each frame's peaks of log-amplitude give their sinusoids' frequencies (parabolic
interpolation), each bin belongs to its nearest peak, and a bin's phase is its peak's centre phase minus
pi * k, the centre phase turning by pi times the peak's frequency in bins from frame to frame. A bin is
locked when its peak stands out (`PROMINENCE_NATS` over the bins two away) and held its frequency since
the frame before; elsewhere (noise, onsets, smeared spectra) the predicted phase plays, and a bin's centre
phase restarts from it, so a tone that becomes steady continues the phase it began with. A steady tone
between two bins keeps its pitch. The state (`PhaseState`: each bin's centre phase and the frequency it
turned at last) is carried by streaming, so streaming equals offline. The locked phase is a function of
the amplitudes that training treats as given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

FLOOR_NATS = 60.0 / 20.0 * math.log(10.0)  # peaks more than 60 dB under the frame's loudest bin are not sinusoids
PROMINENCE_NATS = 1.5  # a peak 13 dB over the bins two away from it is a sinusoid (the window's lobe is 3 bins)
STEADY_BINS = 0.5  # ... when its frequency moved less than half a bin since the frame before


@dataclass
class PhaseState:
    """Per bin [B, F]: the centre phase of the last frame (wrapped) and the frequency (in bins) it turned at."""

    phase: torch.Tensor
    frequency: torch.Tensor


def peak_frequencies(log_amplitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[B, T, F] log-amplitudes -> (frequency, owner, prominence), each [B, T, F]: the frequency in bins of
    the peak each bin belongs to (its nearest local maximum above the floor; without one, the bin's own
    centre), that peak's bin, and how far the peak stands over the bins two away from it (0 without one)."""
    la = log_amplitude.detach()
    bins = la.shape[-1]
    index = torch.arange(bins, device=la.device)
    left, mid, right = la[..., :-2], la[..., 1:-1], la[..., 2:]
    loud = mid > la.amax(dim=-1, keepdim=True) - FLOOR_NATS
    is_peak = torch.zeros_like(la, dtype=torch.bool)
    is_peak[..., 1:-1] = (mid > left) & (mid >= right) & loud
    curvature = left - 2 * mid + right
    offset = torch.where(curvature < -1e-6, 0.5 * (left - right) / curvature.clamp(max=-1e-6), torch.zeros_like(mid))
    frequency = index.to(la.dtype).expand_as(la).clone()
    frequency[..., 1:-1] += torch.where(is_peak[..., 1:-1], offset.clamp(-0.5, 0.5), torch.zeros_like(mid))
    padded = torch.nn.functional.pad(la, (2, 2), mode="replicate")
    prominence = torch.where(is_peak, la - torch.maximum(padded[..., :-4], padded[..., 4:]), torch.zeros_like(la))
    # nearest peak: the last one at or below each bin and the first one at or above it
    below = torch.where(is_peak, index, torch.full_like(index, -1)).cummax(dim=-1).values
    above = torch.where(is_peak, index, torch.full_like(index, bins)).flip(-1).cummin(dim=-1).values.flip(-1)
    use_above = (below < 0) | ((above < bins) & (above - index < index - below))
    owner = torch.where(use_above, above, below)
    owner = torch.where((owner >= 0) & (owner < bins), owner, index.expand_as(owner))  # no peak: itself
    return frequency.gather(-1, owner), owner, prominence.gather(-1, owner)


def locked_phase(log_amplitude: torch.Tensor, predicted: torch.Tensor,
                 state: PhaseState | None = None) -> tuple[torch.Tensor, torch.Tensor, PhaseState]:
    """(phase, locked, state): the phase [B, T, F] to play for frames with `log_amplitude` and `predicted`
    phase [B, T, F], which bins are locked (bool [B, T, F]), and the state after the last frame; `state`
    continues a stream (None: the start of the audio, where nothing is locked yet)."""
    frequency, owner, prominence = peak_frequencies(log_amplitude)
    f64 = frequency.double()
    bins = torch.arange(log_amplitude.shape[-1], device=log_amplitude.device, dtype=torch.float64)
    before = torch.cat([f64[:, :1] if state is None else state.frequency.double()[:, None], f64[:, :-1]], dim=1)
    steady = (f64 - before).abs() < STEADY_BINS
    if state is None:
        steady[:, 0] = False
    tonal = steady & (prominence > PROMINENCE_NATS)
    # Each bin's centre phase: the predicted one where the bin is not tonal; else the frame before's turned
    # by pi * frequency (the mean of both frames'). A scan that restarts at every untonal frame, from cumsums.
    turn = torch.where(tonal, math.pi * 0.5 * (before + f64), torch.zeros_like(f64)).remainder(2 * math.pi)
    total = turn.cumsum(dim=1)
    frames = torch.arange(1, f64.shape[1] + 1, device=f64.device)[None, :, None].expand_as(f64)
    last = torch.where(tonal, torch.zeros_like(frames), frames).cummax(dim=1).values  # 1 + last restart, or 0
    at = (last - 1).clamp(min=0)
    restart = (predicted.detach().double() + math.pi * bins).gather(1, at)
    start = state.phase.double()[:, None] if state is not None else torch.zeros_like(f64[:, :1])
    centre = torch.where(last > 0, restart + total - total.gather(1, at), start + total)
    centre = centre.remainder(2 * math.pi)
    locked = tonal.gather(-1, owner) & tonal
    phase = torch.where(locked, centre.gather(-1, owner) - math.pi * bins, predicted.double())
    new_state = PhaseState(centre[:, -1].to(log_amplitude.dtype), frequency[:, -1])
    return phase.to(log_amplitude.dtype), locked, new_state
