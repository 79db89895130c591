"""One member of an ensemble, in its own process: `python -m makemore.member` reads its job (JSON)
from stdin and trains it as an ordinary run (`makemore.run.train_members` writes the jobs and
starts these processes).

Exit status: 0 done; 2 an error, said in one sentence as the last line of its output ("error: ...");
128 + the signal's number when a signal stopped it (its last step saved in last.pt).
"""

from __future__ import annotations

import json
import sys

import torch

from .config import DataConfig, ModelConfig, TrainConfig, from_dict
from .errors import MakemoreError
from .run import train_run
from .speed import SpeedOptions


def main() -> int:
    job = json.loads(sys.stdin.read())
    torch.set_num_threads(job["threads"])
    try:
        train_run(from_dict(DataConfig, job["data"]), from_dict(ModelConfig, job["model"]),
                  from_dict(TrainConfig, job["train"]), job["out"], resume=job["resume"], n_samples=0,
                  speed=SpeedOptions(**job["speed"]))
    except MakemoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # makemore.signals.Interrupted after its last checkpoint, or a second Ctrl-C
        return 128 + getattr(e, "signum", 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
