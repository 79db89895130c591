"""makemore: train character-level language models on a file of lines and make more items like them.

Public API (see README):
    DataConfig, ModelConfig, TrainConfig, SampleConfig   configs
    load_dataset, read_items, Vocab                       data
    model_config, train_config, run_config, RunConfig     a family's settings under the options given
    create_model, model_names                             the model zoo
    Trainer                                               the training loop (callbacks plug in)
    train_run, eval_run, sample_run, load_run             whole runs in a run directory (loaded on first use)
    evaluate_split, generate                              exact evaluation, batched sampling
"""

__version__ = "0.1.0"

from .config import DataConfig, ModelConfig, SampleConfig, TrainConfig
from .data import Dataset, Split, Vocab, load_dataset, read_items
from .errors import MakemoreError
from .evaluate import evaluate_split
from .models import create_model, model_config, model_names, n_params
from .options import RunConfig, run_config, train_config
from .sampling import generate
from .train import Trainer

# The whole-run functions load on first use: `import makemore.diagnostics` (which runs this file
# first) then brings in no application layer, only what the diagnostics themselves need.
_RUN_API = ("calibrate_run", "eval_run", "load_run", "sample_run", "train_run")


def __getattr__(name: str) -> object:
    if name in _RUN_API:
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module 'makemore' has no attribute {name!r}")


__all__ = [
    "DataConfig", "ModelConfig", "SampleConfig", "TrainConfig", "Dataset", "Split", "Vocab", "load_dataset",
    "read_items", "MakemoreError", "evaluate_split", "create_model", "model_config", "model_names", "n_params",
    "RunConfig", "run_config", "train_config", "calibrate_run", "eval_run", "load_run", "sample_run", "train_run", "generate",
    "Trainer", "__version__",
]
