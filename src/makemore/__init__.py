"""makemore: train character-level language models on a file of lines and make more items like them.

Public API (see README):
    DataConfig, ModelConfig, TrainConfig, SampleConfig   configs
    load_dataset, read_items, Vocab                       data
    model_config, create_model, model_names               the model zoo
    Trainer                                               the training loop (callbacks plug in)
    train_run, eval_run, sample_run, load_run             whole runs in a run directory
    evaluate_split, generate                              exact evaluation, batched sampling
"""

__version__ = "0.1.0"

from .config import DataConfig, ModelConfig, SampleConfig, TrainConfig
from .data import Dataset, Split, Vocab, load_dataset, read_items
from .errors import MakemoreError
from .evaluate import evaluate_split
from .models import create_model, model_config, model_names, n_params
from .run import eval_run, load_run, sample_run, train_run
from .sampling import generate
from .train import Trainer

__all__ = [
    "DataConfig", "ModelConfig", "SampleConfig", "TrainConfig", "Dataset", "Split", "Vocab", "load_dataset",
    "read_items", "MakemoreError", "evaluate_split", "create_model", "model_config", "model_names", "n_params",
    "eval_run", "load_run", "sample_run", "train_run", "generate", "Trainer", "__version__",
]
