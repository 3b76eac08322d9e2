"""Learning-rate schedule: linear warm-up from a small start value, then cosine annealing to 0."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, start_factor: float) -> float:
    """LR multiplier at optimizer ``step`` (0-based).

    Rises linearly from ``start_factor`` (step 0) to 1 at ``warmup_steps``, then follows
    0.5 (1 + cos(π (step − warmup) / (total − warmup))) down to 0 at ``total_steps``.
    """
    if step < warmup_steps:
        return start_factor + (1.0 - start_factor) * step / warmup_steps
    decay = max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps, decay) / decay))
