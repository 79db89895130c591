"""Speed features against their slow references: cached generation, padding trimming, fused
optimizers, presets, and (with a GPU) the CUDA-graph step."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch
from torch import nn

from makemore.cli import build_parser
from makemore.config import DataConfig, TrainConfig
from makemore.data import BOUNDARY, load_dataset
from makemore.errors import MakemoreError
from makemore.fast import PRESETS, SpeedOptions, StopAtValLoss, accelerate
from makemore.models import create_model, model_config
from makemore.sampling import generate
from makemore.train import Trainer, make_optimizer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CACHED = ["transformer", "rnn", "gru", "lstm"]


class Uncached(nn.Module):
    """The same model without init_cache/forward_step: generation re-runs the whole context."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):  # noqa: ANN201
        return self.inner(idx, targets)


def _model(name: str, vocab: int = 27, block: int = 12, **kw: object) -> nn.Module:
    torch.manual_seed(0)
    m = create_model(model_config(name, vocab_size=vocab, block_size=block, **kw))
    with torch.no_grad():  # away from the near-uniform init, so the samples depend on the context
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.eval()


@pytest.mark.parametrize("name", CACHED)
def test_cached_step_logits_match_a_full_rerun(name: str) -> None:
    m = _model(name)
    idx = torch.randint(1, 27, (5, 12))
    idx[:, 0] = BOUNDARY
    with torch.inference_mode():
        full, _ = m(idx)  # (B, T, V)
        cache = m.init_cache(5)
        for t in range(12):
            step, cache = m.forward_step(idx[:, t], cache)
            assert torch.allclose(step, full[:, t], atol=1e-5, rtol=1e-5), (name, t)


@pytest.mark.parametrize("name", CACHED)
@pytest.mark.parametrize("prefix", ["", "ab"])
def test_cached_generation_gives_the_same_items_as_the_uncached_path(name: str, prefix: str, tiny_file) -> None:
    ds = load_dataset(DataConfig(input=str(tiny_file)))
    m = _model(name, vocab=ds.vocab.size, block=ds.block_size)
    fast = generate(m, ds.vocab, ds.block_size, 64, seed=3, prefix=prefix)
    slow = generate(Uncached(m), ds.vocab, ds.block_size, 64, seed=3, prefix=prefix)
    assert fast == slow
    assert len(set(fast)) > 5  # the samples are not all the same item


def test_transformer_cache_refuses_a_position_past_the_block() -> None:
    m = _model("transformer", block=2)
    cache = m.init_cache(1)
    for _ in range(2):
        _, cache = m.forward_step(torch.zeros(1, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="holds 2 positions"):
        m.forward_step(torch.zeros(1, dtype=torch.long), cache)


# --- the training step ----------------------------------------------------------------------


def _trainer(names_file, name: str = "transformer", trim: bool = True, fused: bool | None = None, **kw: object) -> Trainer:
    ds = load_dataset(DataConfig(input=str(names_file)))
    torch.manual_seed(0)
    m = create_model(model_config(name, vocab_size=ds.vocab.size, block_size=ds.block_size, **kw))
    cfg = TrainConfig(steps=50, batch_size=16, lr=3e-3, schedule="constant", device="cpu")
    t = Trainer(m, ds, cfg, torch.device("cpu"), optimizer=make_optimizer(m, cfg, fused=fused))
    t.trim_padding = trim
    return t


@pytest.mark.parametrize("name", ["transformer", "gru", "mlp", "bow", "bigram"])
def test_skipping_padding_columns_changes_no_loss_or_gradient(names_file, name: str) -> None:
    a, b = _trainer(names_file, name, trim=True), _trainer(names_file, name, trim=False)
    for t in (a, b):  # lr 0: the step leaves the parameters alone and the gradients in .grad
        t.optimizer = torch.optim.SGD(t.model.parameters(), lr=0.0)
    for _ in range(3):
        x, y = a.get_batch()
        b.get_batch()
        la, lb = a.train_step(x, y), b.train_step(x, y)
        assert torch.allclose(la, lb, atol=1e-6)
        for pa, pb in zip(a.model.parameters(), b.model.parameters()):
            assert torch.allclose(pa.grad, pb.grad, atol=1e-6)


def test_trimming_is_off_with_batchnorm(names_file) -> None:
    ds = load_dataset(DataConfig(input=str(names_file)))
    bn = create_model(model_config("mlp", vocab_size=ds.vocab.size, block_size=ds.block_size, norm="batch"))
    plain = create_model(model_config("mlp", vocab_size=ds.vocab.size, block_size=ds.block_size))
    assert not Trainer(bn, ds, TrainConfig(device="cpu"), torch.device("cpu")).trim_padding
    assert Trainer(plain, ds, TrainConfig(device="cpu"), torch.device("cpu")).trim_padding


def test_fused_adamw_matches_the_reference_loop(names_file) -> None:
    a, b = _trainer(names_file, fused=True), _trainer(names_file, fused=False)
    assert a.optimizer.defaults.get("fused") and not b.optimizer.defaults.get("fused")
    # one step from the same gradients (over many steps Adam's g / sqrt(v) magnifies float noise
    # in near-zero gradients, so longer runs agree only loosely)
    x, y = a.get_batch()
    a.train_step(x, y)
    b.train_step(x, y)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_cpu_defaults_to_fused_optimizers() -> None:
    m = nn.Linear(3, 3)
    assert make_optimizer(m, TrainConfig(optimizer="adamw")).defaults["fused"]
    assert make_optimizer(m, TrainConfig(optimizer="sgd")).defaults["fused"]
    assert make_optimizer(m, TrainConfig(optimizer="rmsprop")).defaults["foreach"]


def test_speed_options_reject_what_the_cpu_cannot_do(names_file) -> None:
    t = _trainer(names_file)
    with pytest.raises(MakemoreError, match="bf16 is for CUDA"):
        accelerate(t, SpeedOptions(dtype="bf16"))
    with pytest.raises(MakemoreError, match="--cuda-graph on: CUDA graphs need a CUDA device"):
        accelerate(t, SpeedOptions(cuda_graph="on"))
    accelerate(t, SpeedOptions())  # auto: nothing to capture on the CPU, training stays eager
    assert t.step_fn is None


def test_stop_at_val_loss_stops_the_run(names_file) -> None:
    t = _trainer(names_file, "bigram")
    stop = StopAtValLoss(target=100.0)  # reached at the first evaluation
    t.callbacks.append(stop)
    t.cfg = dataclasses.replace(t.cfg, eval_interval=5, steps=1000)
    t.fit()
    assert t.state.step == 5 and stop.reached_at is not None


def test_preset_fills_only_options_not_given(tmp_path) -> None:
    parse = build_parser().parse_args
    a = parse(["train", "--preset", "fast"])
    for key, value in PRESETS["fast"].items():
        assert getattr(a, key) == value
    b = parse(["train", "--batch-size", "7", "--preset", "fast", "--lr", "0.5"])
    assert b.batch_size == 7 and b.lr == 0.5 and b.model == PRESETS["fast"]["model"]


# --- CUDA -------------------------------------------------------------------------------------


@cuda
@pytest.mark.parametrize("name", ["transformer", "gru", "mlp"])
def test_graph_captured_step_follows_the_eager_step(tiny_file, name: str) -> None:
    ds = load_dataset(DataConfig(input=str(tiny_file))).to(torch.device("cuda"))
    cfg = TrainConfig(steps=30, batch_size=16, lr=3e-3, schedule="cosine", device="cuda")
    runs = []
    for graph in ("on", "off"):
        torch.manual_seed(0)
        m = create_model(model_config(name, vocab_size=ds.vocab.size, block_size=ds.block_size)).cuda()
        t = accelerate(Trainer(m, ds, cfg, torch.device("cuda")), SpeedOptions(cuda_graph=graph, tf32=False))
        assert (t.step_fn is not None) == (graph == "on")
        t.fit()
        runs.append((t.state.last_loss, [p.detach().clone() for p in m.parameters()]))
    (la, pa), (lb, pb) = runs
    # the same kernels in the same order; Adam magnifies float noise, hence the loose bound (a
    # replay that accumulated gradients or skipped the update would miss it by far)
    assert abs(la - lb) < 1e-3
    for x, y in zip(pa, pb):
        assert torch.allclose(x, y, atol=2e-3)


@cuda
def test_the_monitor_keeps_steps_eager_on_cuda(tiny_file) -> None:
    from makemore.diagnostics.doctor import MonitorCallback

    ds = load_dataset(DataConfig(input=str(tiny_file))).to(torch.device("cuda"))
    m = create_model(model_config("mlp", vocab_size=ds.vocab.size, block_size=ds.block_size)).cuda()
    t = Trainer(m, ds, TrainConfig(steps=5, batch_size=8, device="cuda"), torch.device("cuda"), [MonitorCallback(every=2)])
    with pytest.raises(MakemoreError, match="--cuda-graph on: the training-health monitor"):
        accelerate(t, SpeedOptions(cuda_graph="on"))
    out = io.StringIO()
    accelerate(t, SpeedOptions(cuda_graph="auto"), stream=out)
    assert t.step_fn is None and "no CUDA graph: the training-health monitor" in out.getvalue()


@cuda
@pytest.mark.parametrize("name", ["transformer", "gru", "mlp", "bigram"])
def test_an_eager_training_step_never_waits_for_the_gpu(tiny_file, name: str) -> None:
    # batches drawn and gathered on the device, the loss left there: no host synchronization
    # (a BatchNorm model's row selection is the known exception, hence not in this list)
    ds = load_dataset(DataConfig(input=str(tiny_file))).to(torch.device("cuda"))
    m = create_model(model_config(name, vocab_size=ds.vocab.size, block_size=ds.block_size)).cuda()
    t = Trainer(m, ds, TrainConfig(steps=10, batch_size=16, schedule="cosine", device="cuda"), torch.device("cuda"))
    t.train_step(*t.get_batch())  # lazy optimizer state first
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            t.train_step(*t.get_batch())
            t.state.step += 1
    finally:
        torch.cuda.set_sync_debug_mode(0)
