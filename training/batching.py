"""How a step's global batch is split across ranks and into micro-batches (gradient accumulation).

Every rank draws the same global batch (same generator, same seed) and keeps only its part, so a
step sees the same items whatever the world size; each micro-batch's loss is weighted by its share of
the global batch, so the summed gradient is the gradient of the global batch's loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..core.errors import SonorantError

T = TypeVar("T")


@dataclass
class MicroBatch(Generic[T]):
    """One forward/backward of a rank: its data and what it counts for."""

    data: T
    items: int
    tokens: int  # LM: target codes; codec: latent frames x codebooks


def rank_parts(costs: list[int], world_size: int, rank: int, limit: int = 0) -> list[list[int]]:
    """Positions (in the global batch) of this rank's micro-batches.

    Items are dealt to ranks in turn (a batch sorted by length gives each rank similar lengths). Every
    rank runs the same number of micro-batches (FSDP gathers parameters in every forward): enough to keep
    the busiest rank's micro-batches within `limit` (summed `costs`; 0 = one micro-batch per rank).
    """
    if len(costs) < world_size:
        raise SonorantError(f"a batch of {len(costs)} items cannot be shared by {world_size} processes: "
                            "raise the batch size (it is the global batch, over all processes)")
    dealt = [list(range(r, len(costs), world_size)) for r in range(world_size)]
    parts = 1
    if limit > 0:
        parts = max(math.ceil(sum(costs[i] for i in positions) / limit) for positions in dealt)
        parts = max(1, min(parts, min(len(p) for p in dealt)))
    mine = dealt[rank]
    return [mine[j::parts] for j in range(parts)]
