"""The speed layer against its references: each CPU fast path equals the model's own code
(float64), cached generation equals a full rerun, fused optimizers, presets, and (with a GPU)
the CUDA-graph step."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch
from torch import nn

from makemore.callbacks import StopAtValLoss
from makemore.config import DataConfig, TrainConfig
from makemore.data import BOUNDARY, IGNORE, load_dataset
from makemore.errors import MakemoreError
from makemore.models import create_model, model_config
from makemore.models.common import ModelLoss
from makemore.sampling import generate
from makemore.speed import SpeedOptions, fast_loss
from makemore.speed.optim import LeanAdamW
from makemore.speed.recurrent import RecurrentLoss, applies, pack_rows, written_out
from makemore.speed.rows import PositionwiseLoss, TransformerLoss
from makemore.train import RowSampler, Trainer, make_optimizer

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


# --- the CPU fast paths, each against the model's own code ------------------------------------

FAST = ["mlp", "wavenet", "bow", "transformer", "rnn", "gru", "lstm", "bigram"]
V, T, B = 27, 16, 8


def _ragged_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Padding as in a batch of names: item i ends at position T-3-i%4 (the last two columns are
    padding throughout, so trimming drops them)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, V, (B, T), generator=g)
    y = torch.randint(0, V, (B, T), generator=g)
    for i in range(B):
        y[i, T - 3 - i % 4 :] = IGNORE
    return x, y


def test_every_family_with_a_fast_path_is_registered() -> None:
    kinds = {name: type(fast_loss(create_model(model_config(name, vocab_size=V, block_size=T)))) for name in FAST}
    assert kinds == {"mlp": PositionwiseLoss, "wavenet": PositionwiseLoss, "bow": PositionwiseLoss,
                     "transformer": TransformerLoss, "rnn": RecurrentLoss, "gru": RecurrentLoss,
                     "lstm": RecurrentLoss, "bigram": ModelLoss}
    assert fast_loss(create_model(model_config("mlp-manual", vocab_size=V, block_size=T))) is None


@pytest.mark.parametrize("name", FAST)
def test_fast_path_equals_the_model_in_float64(name: str) -> None:
    """The speed layer's training loss (positions with a target; written-out recurrence) gives the
    model's own loss and every gradient of it, on ragged padding."""
    torch.manual_seed(0)
    model = create_model(model_config(name, vocab_size=V, block_size=T)).double()
    with torch.no_grad():  # away from the near-uniform init
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x, y = _ragged_batch()
    fast, reference = fast_loss(model), ModelLoss(model)
    loss = fast(x, y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    ref = reference(x, y)
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    if model.config.norm != "batch":  # the reference itself: every position's logits, padding ignored
        logits = model(x)[0]
        keep = y != IGNORE
        assert abs(ref.item() - torch.nn.functional.cross_entropy(logits[keep], y[keep]).item()) < 1e-12
    assert abs(loss.item() - ref.item()) < 1e-12
    for (pname, _), g, h in zip(model.named_parameters(), grads, ref_grads):
        assert torch.allclose(g, h, rtol=1e-9, atol=1e-12), pname


@pytest.mark.parametrize("name", FAST)
def test_narrow_batches_equal_full_width_batches_in_float64(names_file, name: str) -> None:
    """The CPU batches of the registered (causal) families stop at their longest item: the model's
    own loss and every gradient equal those of the same items padded to the block size."""
    ds = load_dataset(DataConfig(input=str(names_file)))
    torch.manual_seed(0)
    model = create_model(model_config(name, vocab_size=ds.vocab.size, block_size=ds.block_size)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    split = ds.splits["train"]
    idx = torch.randint(len(split), (16,), generator=torch.Generator().manual_seed(1))
    (xn, yn), (xf, yf) = RowSampler(split, 16, narrow=True).gather(idx), RowSampler(split, 16).gather(idx)
    assert xn.size(1) < xf.size(1) == ds.block_size  # the narrow batch is narrower
    assert torch.equal(xn, xf[:, : xn.size(1)]) and (yf[:, xn.size(1) :] == IGNORE).all()
    ln, lf = model(xn, yn)[1], model(xf, yf)[1]
    gn = torch.autograd.grad(ln, list(model.parameters()), allow_unused=True)
    gf = torch.autograd.grad(lf, list(model.parameters()), allow_unused=True)
    assert abs(ln.item() - lf.item()) < 1e-12
    for (pname, _), a, b in zip(model.named_parameters(), gn, gf):
        assert (a is None) == (b is None), pname
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), pname


def _graph_nodes(t: torch.Tensor) -> set[str]:
    """The names of the autograd nodes that `t` was computed through."""
    seen, todo = set(), [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            todo.extend(f for f, _ in node.next_functions)
    return {node.name() for node in seen}


@pytest.mark.parametrize("kind", ["rnn", "gru"])
@pytest.mark.parametrize("final_state_used", [True, False])
def test_written_out_recurrence_equals_pytorch_in_float64(kind: str, final_state_used: bool) -> None:
    """The CPU RNN's and GRU's hand-written recurrence and backpropagation through time
    (TanhRNNFunction, GRUFunction) give nn.RNN's / nn.GRU's outputs, final state and gradients
    (inputs, start state, every weight and bias)."""
    module, backward = {"rnn": (nn.RNN, "TanhRNNFunctionBackward"), "gru": (nn.GRU, "GRUFunctionBackward")}[kind]
    torch.manual_seed(0)
    rnn = module(4, 6, batch_first=True).double()
    assert applies(rnn)
    x = torch.randn(5, 7, 4, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(1, 5, 6, dtype=torch.double, requires_grad=True)
    g_out, g_last = torch.randn(5, 7, 6, dtype=torch.double), torch.randn(1, 5, 6, dtype=torch.double)
    results = []
    for run in (rnn, lambda a, b: written_out(rnn, a, b)):
        out, last = run(x, h0)
        loss = (out * g_out).sum() + ((last * g_last).sum() if final_state_used else 0)
        results.append((out, last, torch.autograd.grad(loss, [x, h0, *rnn.parameters()])))
    (out_r, last_r, grads_r), (out_m, last_m, grads_m) = results
    assert backward in _graph_nodes(out_m)  # the written-out path ran
    assert torch.allclose(out_m, out_r, atol=1e-13) and torch.allclose(last_m, last_r, atol=1e-13)
    for a, b in zip(grads_m, grads_r):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("name", ["rnn", "gru"])
def test_recurrence_run_to_each_last_target_equals_the_model_in_float64(name: str) -> None:
    """The packed recurrence (each row run up to its last target, rows longest first) gives the
    model's own loss and gradients, also with a row without any target (the start state's rows
    differ from the running rows) and targets missing inside an item."""
    torch.manual_seed(0)
    model = create_model(model_config(name, vocab_size=V, block_size=T)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x, y = _ragged_batch()
    y[2] = IGNORE  # a row without a target
    y[5, 3] = IGNORE  # a hole: the row still runs to its last target
    xp, yp, sizes = pack_rows(x, y)
    assert sizes[0] == B - 1 and sizes == sorted(sizes, reverse=True) and len(sizes) < T
    assert sum(sizes) == xp.numel() == int((y != IGNORE).sum()) + 1  # the hole is run, not scored
    loss = fast_loss(model)(x, y)
    assert {"TanhRNNFunctionBackward", "GRUFunctionBackward"} & _graph_nodes(loss)
    params = list(model.parameters())
    ref = ModelLoss(model)(x, y)
    assert abs(loss.item() - ref.item()) < 1e-12
    for (pname, _), g, h in zip(model.named_parameters(), torch.autograd.grad(loss, params),
                                torch.autograd.grad(ref, params)):
        assert torch.allclose(g, h, rtol=1e-9, atol=1e-12), pname


def test_written_out_recurrence_is_for_one_layer_tanh_only() -> None:
    assert applies(nn.GRU(4, 6, batch_first=True)) and applies(nn.RNN(4, 6, batch_first=True))
    assert not applies(nn.GRU(4, 6, num_layers=2, batch_first=True))  # PyTorch's own stacked kernel
    assert not applies(nn.RNN(4, 6, nonlinearity="relu", batch_first=True))
    assert not applies(nn.LSTM(4, 6, batch_first=True))


# --- the training step ----------------------------------------------------------------------


def _trainer(names_file, name: str = "transformer", fast_paths: bool = True, fused: bool | None = None,
             lr: float = 3e-3, **kw: object) -> Trainer:
    ds = load_dataset(DataConfig(input=str(names_file)))
    torch.manual_seed(0)
    m = create_model(model_config(name, vocab_size=ds.vocab.size, block_size=ds.block_size, **kw))
    cfg = TrainConfig(steps=50, batch_size=16, lr=lr, schedule="constant", device="cpu")
    opt = make_optimizer(m, cfg, fused=fused) if fused is not None else None
    return Trainer(m, ds, cfg, torch.device("cpu"), optimizer=opt, speed=SpeedOptions(fast_paths=fast_paths))


@pytest.mark.parametrize("name", ["transformer", "gru", "mlp", "bow", "bigram"])
def test_fast_paths_change_no_loss_or_gradient_of_a_training_step(names_file, name: str) -> None:
    a, b = _trainer(names_file, name, lr=0.0), _trainer(names_file, name, fast_paths=False, lr=0.0)
    for _ in range(3):  # lr 0: the step leaves the parameters alone and the gradients in .grad
        x, y = a.get_batch()
        b.get_batch()
        la, lb = a.train_step(x, y), b.train_step(x, y)
        assert torch.allclose(la, lb, atol=1e-6)
        for pa, pb in zip(a.model.parameters(), b.model.parameters()):
            assert torch.allclose(pa.grad, pb.grad, atol=1e-6)


def test_fast_paths_choose_the_lean_adamw_and_switch_off(names_file) -> None:
    assert type(_trainer(names_file, "gru").optimizer) is LeanAdamW
    assert type(_trainer(names_file, "gru", fast_paths=False).optimizer) is torch.optim.AdamW


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
    ds = load_dataset(DataConfig(input=str(names_file)))
    m = create_model(model_config("bigram", vocab_size=ds.vocab.size, block_size=ds.block_size))
    cpu, cfg = torch.device("cpu"), TrainConfig(device="cpu")
    with pytest.raises(MakemoreError, match="bf16 is for CUDA"):
        Trainer(m, ds, cfg, cpu, speed=SpeedOptions(dtype="bf16"))
    with pytest.raises(MakemoreError, match="--cuda-graph on: CUDA graphs need a CUDA device"):
        Trainer(m, ds, cfg, cpu, speed=SpeedOptions(cuda_graph="on"))
    out = io.StringIO()
    assert not Trainer(m, ds, cfg, cpu, speed=SpeedOptions(), stream=out).uses_cuda_graph  # auto: stays eager
    assert out.getvalue() == ""  # nothing to say on the CPU


def test_stop_at_val_loss_stops_the_run(names_file) -> None:
    ds = load_dataset(DataConfig(input=str(names_file)))
    m = create_model(model_config("bigram", vocab_size=ds.vocab.size, block_size=ds.block_size))
    stop = StopAtValLoss(target=100.0)  # reached at the first evaluation
    t = Trainer(m, ds, TrainConfig(steps=1000, batch_size=16, eval_interval=5, device="cpu"), torch.device("cpu"), [stop])
    t.fit()
    assert t.state.step == 5 and stop.reached_at is not None and t.stop_requested


def test_nothing_outside_train_py_assigns_to_a_trainer(tiny_file) -> None:
    """The Trainer is built by its constructor alone: no module of the package sets an attribute
    of a makemore Trainer (a callback asks with `request_stop()`, a resume calls `restore()`)."""
    import re
    from pathlib import Path

    import makemore

    ds = load_dataset(DataConfig(input=str(tiny_file)))
    t = Trainer(create_model(model_config("bigram", vocab_size=ds.vocab.size, block_size=ds.block_size)), ds,
                TrainConfig(device="cpu"), torch.device("cpu"))
    names = sorted({*vars(t), *(n for n in dir(Trainer) if not n.startswith("__"))})
    pattern = re.compile(rf"\b(trainer|t)\.({'|'.join(names)})(\.\w+)* *(=(?!=)|\+=|-=)")
    assert pattern.search("trainer.stop_requested = True") and pattern.search("t.state.step += 1")
    root = Path(makemore.__file__).parent
    found = [f"{path.relative_to(root)}:{i}: {line.strip()}" for path in sorted(root.rglob("*.py")) if path.name != "train.py"
             for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if pattern.search(line)]
    assert found == []


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
        t = Trainer(m, ds, cfg, torch.device("cuda"), speed=SpeedOptions(cuda_graph=graph, tf32=False))
        assert t.uses_cuda_graph == (graph == "on")
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
    from makemore.doctor import MonitorCallback

    ds = load_dataset(DataConfig(input=str(tiny_file))).to(torch.device("cuda"))
    m = create_model(model_config("mlp", vocab_size=ds.vocab.size, block_size=ds.block_size)).cuda()
    cfg, cuda_ = TrainConfig(steps=5, batch_size=8, device="cuda"), torch.device("cuda")
    with pytest.raises(MakemoreError, match="--cuda-graph on: the training-health monitor"):
        Trainer(m, ds, cfg, cuda_, monitor=MonitorCallback(every=2), speed=SpeedOptions(cuda_graph="on"))
    out = io.StringIO()
    t = Trainer(m, ds, cfg, cuda_, monitor=MonitorCallback(every=2), speed=SpeedOptions(cuda_graph="auto"), stream=out)
    assert not t.uses_cuda_graph and "no CUDA graph: the training-health monitor" in out.getvalue()


@cuda
@pytest.mark.parametrize("name", ["transformer", "gru", "mlp", "bigram"])
def test_an_eager_training_step_never_waits_for_the_gpu(tiny_file, name: str) -> None:
    # batches drawn and gathered on the device, the loss left there: no host synchronization
    # (a BatchNorm model's row selection is the known exception, hence not in this list)
    ds = load_dataset(DataConfig(input=str(tiny_file))).to(torch.device("cuda"))
    m = create_model(model_config(name, vocab_size=ds.vocab.size, block_size=ds.block_size)).cuda()
    t = Trainer(m, ds, TrainConfig(steps=10, batch_size=16, schedule="cosine", device="cuda"), torch.device("cuda"),
                speed=SpeedOptions(cuda_graph="off"))
    t.train_step(*t.get_batch())  # lazy optimizer state first
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            t.train_step(*t.get_batch())
            t.state.step += 1
    finally:
        torch.cuda.set_sync_debug_mode(0)
