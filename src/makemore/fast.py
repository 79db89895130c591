"""Presets: tuned configurations for `makemore train --preset NAME`."""

from __future__ import annotations

from typing import Any

# `makemore train --preset NAME`: options a preset sets unless given on the command line.
# "fast" is the quickest configuration to a validation NLL of 2.00 on names.txt found on a
# 2-core CPU (bench/time_to_quality.py). The GRU learns fastest per second here: at batch 128
# with a high rate and a cosine decay over 2,000 steps it passed 2.00 at step 1,400 after 46 s
# of training on one busy core; the transformer at batch 64 was still at 2.06 after 160 s.
# One thread: on a shared 2-core machine two OpenMP threads wait on each other and run 5-10x
# slower; on a quiet one they gain little at these sizes.
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {
        "model": "gru", "batch_size": 128, "lr": 1e-2, "schedule": "cosine", "warmup": 100,
        "steps": 1500, "eval_interval": 100, "log_interval": 100, "threads": 1,
    },
}
