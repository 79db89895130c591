"""`makemore lab`: every experiment runs at its quick size, with the expected table and the lesson in its numbers."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch

from conftest import full_names_txt
from makemore.cli import main
from makemore.config import DataConfig
from makemore.corpora import builtin_names
from makemore.data import Vocab, lecture_split
from makemore.lab import EXPERIMENTS, LabResult, LabSettings, run_experiment
from makemore.lab.common import Lab, Table, fmt
from makemore.lab.init_ladder import LECTURE_SEED, RUNGS, build
from makemore.lab.wavenet_log import ROWS, PerPositionBatchNorm
from makemore.lab import wavenet_log

_RESULTS: dict[str, LabResult] = {}
ITEMS = builtin_names()[:300]
# the vocabulary comes from the training split: its characters + the boundary token
VOCAB = Vocab.from_items(lecture_split(ITEMS, DataConfig.seed)[0]).size


@pytest.fixture
def lab(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Run an experiment at its quick size on 300 real names, once per test session."""

    def get(name: str) -> LabResult:
        if name not in _RESULTS:
            root = tmp_path_factory.mktemp(name)
            corpus = root / "names.txt"
            corpus.write_text("\n".join(ITEMS) + "\n", encoding="utf-8")
            settings = LabSettings(input=str(corpus), quick=True, out=root / "out")
            _RESULTS[name] = run_experiment(name, settings, stream=io.StringIO(), echo=io.StringIO())
        return _RESULTS[name]

    return get


def rows(t: Table) -> list[dict]:  # type: ignore[type-arg]
    return t.records()


# ---------------------------------------------------------------------------------------------
# every experiment: table shape and files


EXPECTED = {  # name -> (columns of the main table, rows of the main table at the quick size)
    "bigram-counts": (["smoothing", "pairs", "NLL (float64 sum)", "NLL (float32 running sum)", "lecture"], 2),
    "bigram-neural": (["quantity", "ours", "lecture"], 5),
    "mlp": (["split", "loss", "lecture", "difference"], 4),
    "init-ladder": (["init", "step-0 loss", "ln(vocab)", "saturated at init", "train loss", "lecture train", "val loss",
                     "lecture val", "findings"], 5),
    "wavenet-log": (["model", "parameters", "lecture parameters", "train loss", "lecture train", "val loss", "lecture val"],
                    5),
    "deep-tanh": (["norm", "gain", "saturated per layer", "grad std first/last", "step-0 loss", "val loss", "findings"], 8),
    "update-ratio": (["lr", "train loss", "val loss", "log10 update:data", "findings"], 7),
    "batchnorm-coupling": (["norm", "mode", "max |change|", "coupled"], 8),
    "cross-entropy": (["scale", "naive", "makemore", "torch", "naive finite", "makemore finite", "makemore grad finite",
                       "|makemore - torch|"], 5),
    "embedding": (["case", "ids", "vocab", "n_embd", "value max|diff|", "grad max|diff|", "one-hot ms", "lookup ms",
                   "one-hot/lookup"], 3),
}


def test_registry_has_every_experiment() -> None:
    assert sorted(EXPERIMENTS) == sorted(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_experiment_table_and_files(lab, name: str) -> None:  # type: ignore[no-untyped-def]
    result = lab(name)
    columns, n_rows = EXPECTED[name]
    assert result.table.columns == columns
    assert len(result.table.rows) == n_rows
    assert all(len(r) == len(t.columns) for t in result.tables for r in t.rows)
    out = result.page.parent
    saved = json.loads((out / "results.json").read_text())
    assert saved["experiment"] == name and saved["tables"][0]["columns"] == columns
    assert len(saved["tables"][0]["rows"]) == n_rows
    html = result.page.read_text()
    assert result.figures and all(p.is_file() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in result.figures)
    assert html.count("data:image/png;base64,") == len(result.figures)  # self-contained
    assert f"makemore lab {name}" in html and "--steps" in html  # the command that reproduces it
    assert all(c in html for c in columns if "<" not in c and "&" not in c)


# ---------------------------------------------------------------------------------------------
# the lessons


def test_init_ladder_step0_loss_and_saturation(lab) -> None:  # type: ignore[no-untyped-def]
    r = rows(lab("init-ladder").table)
    ln_v = r[0]["ln(vocab)"]
    assert ln_v == pytest.approx(math.log(VOCAB))
    # randn output layer: a confidently wrong softmax (the lecture's 27 vs 3.3)
    assert r[0]["step-0 loss"] > 4 * ln_v
    for row in r[1:]:
        assert abs(row["step-0 loss"] - ln_v) < 0.5, row
    # randn W1 saturates most tanh units; scaling it by 0.2 fixes that
    assert r[0]["saturated at init"] > 0.3 and r[2]["saturated at init"] < 0.5 * r[0]["saturated at init"]
    assert "init.loss_too_high" in r[0]["findings"]
    assert all("init.loss_too_high" not in row["findings"] for row in r[1:])
    assert all(math.isfinite(row["val loss"]) and row["val loss"] < r[0]["val loss"] for row in r[1:])


def lecture_cell(scales: tuple, seed: int) -> tuple[torch.Generator, list[torch.Tensor | None]]:
    """Part 3's parameter cell, verbatim but for the factors: C, W1, b1, W2, b2 from one generator."""
    c, w1, b1, w2, b2 = scales
    g = torch.Generator().manual_seed(seed)
    C = torch.randn((27, 10), generator=g) * c
    W1 = torch.randn((30, 200), generator=g) * w1
    B1 = None if b1 is None else torch.randn(200, generator=g) * b1
    W2 = torch.randn((200, 27), generator=g) * w2
    B2 = torch.randn(27, generator=g) * b2
    return g, [C, W1, B1, W2, B2]


@pytest.mark.parametrize("k", range(len(RUNGS)))
def test_init_ladder_draws_the_lectures_parameters_then_its_batches(k: int) -> None:
    rung = RUNGS[k]
    gen = torch.Generator().manual_seed(LECTURE_SEED)
    model = build(rung, 27, 16, gen)
    g, (C, W1, B1, W2, B2) = lecture_cell(rung.scales, LECTURE_SEED)
    first, last = model.hidden[0], model.lm_head
    assert torch.equal(model.wte.weight, C) and torch.equal(first.weight, W1.T)
    assert torch.equal(last.weight, W2.T) and torch.equal(last.bias, B2)
    assert first.bias is None if B1 is None else torch.equal(first.bias, B1)
    # the generator is left where the lecture draws its first batch
    assert torch.equal(torch.randint(182_625, (32,), generator=gen), torch.randint(0, 182_625, (32,), generator=g))
    assert isinstance(model.hidden[1], torch.nn.BatchNorm1d) == (rung.norm == "batch")


def test_init_ladder_rungs_are_the_lectures() -> None:
    kaiming = (5 / 3) / math.sqrt(30)
    assert [r.scales for r in RUNGS] == [(1, 1, 1, 1, 1), (1, 1, 1, 0.01, 0), (1, 0.2, 0.01, 0.01, 0),
                                         (1, kaiming, 0.01, 0.01, 0), (1, kaiming, None, 0.01, 0)]
    assert [r.norm for r in RUNGS] == ["none"] * 4 + ["batch"]


def test_init_ladder_first_step_is_the_lectures_on_names_txt() -> None:
    """The lecture's first rung prints a step-0 loss of 27.8817: its draws, its split, its first batch."""
    lab = Lab(LabSettings(input=str(full_names_txt()), seed=LECTURE_SEED), 1, io.StringIO())
    gen = torch.Generator().manual_seed(LECTURE_SEED)
    model = build(RUNGS[0], lab.dataset.vocab.size, lab.dataset.block_size, gen)
    t = lab.train(model, lab.recipe(), batches_from=gen)
    assert round(t.step0_loss, 4) == 27.8817
    other = build(RUNGS[0], lab.dataset.vocab.size, lab.dataset.block_size, torch.Generator().manual_seed(LECTURE_SEED))
    assert round(lab.train(other, lab.recipe()).step0_loss, 4) != 27.8817  # the Trainer's own batches: another batch


def lecture_bigram_nll(words: list[str]) -> tuple[float, int]:
    """Part 1's counting bigram with +1 smoothing, in plain Python and float64: (mean NLL, pairs)."""
    counts: dict[tuple[str, str], int] = {}
    for w in words:
        cs = "." + w + "."
        for a, b in zip(cs, cs[1:]):
            counts[a, b] = counts.get((a, b), 0) + 1
    chars = sorted(set("".join(words))) + ["."]
    rows = {a: sum(counts.get((a, b), 0) + 1 for b in chars) for a in chars}
    nll = -sum(n * math.log((n + 1) / rows[a]) for (a, b), n in counts.items())
    pairs = sum(counts.values())
    return nll / pairs, pairs


def test_bigram_counts_is_the_lectures_on_names_txt() -> None:
    path = full_names_txt()
    result = run_experiment("bigram-counts", LabSettings(input=str(path)), stream=io.StringIO(), echo=io.StringIO())
    smoothed = rows(result.table)[0]
    nll, pairs = lecture_bigram_nll(path.read_text().splitlines())
    assert smoothed["smoothing"] == "+1" and smoothed["pairs"] == pairs == 228_146
    assert smoothed["NLL (float64 sum)"] == pytest.approx(nll, abs=1e-6)  # float32 log-probabilities, summed in float64
    assert round(nll, 4) == 2.4546
    # the lecture's loop adds float32 log-probabilities one at a time: its printed 2.4544
    assert round(smoothed["NLL (float32 running sum)"], 4) == smoothed["lecture"] == 2.4544


def test_bigram_counts_variants_against_plain_python(lab) -> None:  # type: ignore[no-untyped-def]
    """The variants table: per pair, per line and without the closing '.', each against a plain-Python count."""
    counts: dict[tuple[str, str], int] = {}
    lines = ["." + w + "." for w in ITEMS]
    for cs in lines:
        for a, b in zip(cs, cs[1:]):
            counts[a, b] = counts.get((a, b), 0) + 1
    chars = sorted(set("".join(lines)))

    def logp(a: str, b: str, k: float) -> float:
        return math.log((counts.get((a, b), 0) + k) / sum(counts.get((a, c), 0) + k for c in chars))

    pairs = [(a, b) for cs in lines for a, b in zip(cs, cs[1:])]
    per_line = [sum(-logp(a, b, 1) for a, b in zip(cs, cs[1:])) / (len(cs) - 1) for cs in lines]
    not_closing = [-logp(a, b, 1) for a, b in pairs if b != "."]
    got = {r["variant"]: r for r in rows(lab("bigram-counts").tables[1])}
    for k in (0.0, 1.0, 10.0):
        row = got[f"+{k:g} smoothing, whole file, mean over pairs"]
        assert row["pairs scored"] == len(pairs) and row["NLL"] == pytest.approx(sum(-logp(a, b, k) for a, b in pairs) / len(pairs), abs=1e-9)
    assert got["+1 smoothing, whole file, mean over lines of each line's mean"]["NLL"] == pytest.approx(sum(per_line) / len(per_line), abs=1e-9)
    row = got["+1 smoothing, whole file, the closing '.' not scored"]
    assert row["pairs scored"] == len(not_closing) and row["NLL"] == pytest.approx(sum(not_closing) / len(not_closing), abs=1e-9)


def test_bigram_neural_starts_at_the_lectures_loss_and_learns_the_counts() -> None:
    path = full_names_txt()
    result = run_experiment("bigram-neural", LabSettings(input=str(path), steps=3, seed=2147483647),
                            stream=io.StringIO(), echo=io.StringIO())
    r = {x["quantity"]: x for x in rows(result.table)}
    step0 = r["step-0 loss (randn W)"]
    assert round(step0["ours"], 4) == step0["lecture"] == 3.7686  # the lecture's W, drawn from its generator
    assert r["final loss (NLL + 0.01 mean(W^2))"]["ours"] < step0["ours"]
    assert r["counting bigram NLL (+1 smoothing)"]["ours"] == pytest.approx(2.45458, abs=1e-5)


def test_mlp_is_the_lectures(lab) -> None:  # type: ignore[no-untyped-def]
    r = {x["split"]: x for x in rows(lab("mlp").table)}
    # C (V x 10), W1 (30 x 200), b1, W2 (200 x V), b2: the lecture's 11,897 at V = 27
    params = lambda v: 10 * v + 30 * 200 + 200 + 200 * v + v  # noqa: E731
    assert r["parameters"]["loss"] == params(VOCAB) and r["parameters"]["lecture"] == params(27) == 11_897
    assert (r["train"]["lecture"], r["val"]["lecture"]) == (2.1260, 2.1701)
    for split in ("train", "val", "test"):
        assert math.isfinite(r[split]["loss"])
    assert lab("mlp").runs["mlp"].records.steps  # the monitor watched it


def test_wavenet_log_models_have_the_lectures_sizes(lab) -> None:  # type: ignore[no-untyped-def]
    r = rows(lab("wavenet-log").table)
    assert [x["model"] for x in r] == [row.name for row in ROWS]
    # embedding, linear layers (no bias before BatchNorm), BatchNorm gain and shift, output layer
    mlp = lambda v, c: 10 * v + 10 * c * 200 + 2 * 200 + 201 * v  # noqa: E731
    tree = lambda v, e, h: e * v + 2 * e * h + 2 * (2 * h * h) + 3 * 2 * h + (h + 1) * v  # noqa: E731
    sizes = lambda v: [mlp(v, 3), mlp(v, 8), tree(v, 10, 68), tree(v, 10, 68), tree(v, 24, 128)]  # noqa: E731
    assert [x["parameters"] for x in r] == sizes(VOCAB)
    assert [x["lecture parameters"] for x in r] == sizes(27) == [12_097, 22_097, 22_397, 22_397, 76_579]
    assert all(math.isfinite(x["val loss"]) for x in r)
    buggy = wavenet_log.build(ROWS[2], 27, 16, seed=0)
    assert [type(level.norm).__name__ for level in buggy.levels] == ["PerPositionBatchNorm", "PerPositionBatchNorm",
                                                                     "BatchNorm1d"]


def test_per_position_batchnorm_is_the_lectures_bug() -> None:
    """BatchNorm over dimension 0 only of (N, L, H): one mean and variance per position and channel."""
    torch.manual_seed(0)
    bn = PerPositionBatchNorm(4, 6).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    x = torch.randn(32, 4, 6, dtype=torch.float64) * torch.arange(1, 5, dtype=torch.float64).view(1, 4, 1)
    out = bn(x.reshape(32 * 4, 6)).view(32, 4, 6)
    mean, var = x.mean(0, keepdim=True), x.var(0, unbiased=False, keepdim=True)  # (1, 4, 6): the bug's shapes
    ref = bn.weight * (x - mean) / torch.sqrt(var + 1e-5) + bn.bias
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_deep_tanh_gains_and_batchnorm(lab) -> None:  # type: ignore[no-untyped-def]
    result = lab("deep-tanh")
    layers = rows(result.tables[1])
    assert len(layers) == 8 * 5

    def col(norm: str, gain: str, key: str) -> list[float]:
        return [x[key] for x in layers if x["norm"] == norm and x["gain"] == gain]

    # without a norm: too small a gain shrinks the activations layer by layer, too large saturates them
    std_small = col("none", "0.5", "act std")
    assert std_small[-1] < std_small[0] / 4
    assert all(a > b for a, b in zip(col("none", "3", "saturated"), col("none", "1", "saturated")))
    # BatchNorm undoes the gain: the same statistics whatever the gain
    for g in ("0.5", "1", "3"):
        assert col("batch", g, "saturated") == pytest.approx(col("batch", "5/3", "saturated"), abs=1e-3)
        assert col("batch", g, "act std") == pytest.approx(col("batch", "5/3", "act std"), rel=1e-3)


def test_update_ratio_follows_the_learning_rate(lab) -> None:  # type: ignore[no-untyped-def]
    r = rows(lab("update-ratio").table)
    ratios = [x["log10 update:data"] for x in r]
    lrs = [x["lr"] for x in r]
    # plain SGD: the update is lr * grad, so the ratio grows about a decade per decade of lr
    assert all(b > a for a, b in zip(ratios, ratios[1:]))
    slope = (ratios[2] - ratios[0]) / math.log10(lrs[2] / lrs[0])
    assert 0.6 < slope < 1.4
    assert "update.too_small" in r[0]["findings"]
    assert any("Best learning rate" in n for n in lab("update-ratio").notes)


def test_batchnorm_coupling_only_in_train_mode(lab) -> None:  # type: ignore[no-untyped-def]
    result = lab("batchnorm-coupling")
    for x in rows(result.table):
        if (x["norm"], x["mode"]) == ("batch", "train"):
            assert x["max |change|"] > 1e-4 and x["coupled"]
        else:
            assert x["max |change|"] == 0.0 and not x["coupled"]
    calib = rows(result.tables[1])
    assert [x["split"] for x in calib] == ["train", "val"]
    for x in calib:
        assert x["change"] == pytest.approx(x["calibrated"] - x["running stats"])


def test_cross_entropy_naive_overflows_fused_does_not(lab) -> None:  # type: ignore[no-untyped-def]
    r = rows(lab("cross-entropy").table)
    by_scale = {x["scale"]: x for x in r}
    for s in (1, 10):
        assert by_scale[s]["naive finite"]
        assert by_scale[s]["naive"] == pytest.approx(by_scale[s]["torch"], rel=1e-5)
    for s in (1000, 10000):
        assert not by_scale[s]["naive finite"]  # inf or nan
    for x in r:
        assert x["makemore finite"] and x["makemore grad finite"]
        assert x["makemore"] == pytest.approx(x["torch"], rel=1e-5)


def test_embedding_one_hot_matmul_equals_lookup(lab) -> None:  # type: ignore[no-untyped-def]
    r = rows(lab("embedding").table)
    assert r[0]["vocab"] == VOCAB and r[0]["ids"] == 96  # the lecture's 32 x 3 context ids
    for x in r:
        assert x["value max|diff|"] == 0.0
        assert x["grad max|diff|"] < 1e-12
        assert x["one-hot ms"] > 0 and x["lookup ms"] > 0


# ---------------------------------------------------------------------------------------------
# reproducibility and the command line


def test_same_seed_same_table(tmp_path: Path, names_file: Path) -> None:
    tables = []
    for k in range(2):
        s = LabSettings(input=str(names_file), steps=12, seed=3, out=tmp_path / f"run{k}")
        tables.append(run_experiment("batchnorm-coupling", s, stream=io.StringIO(), echo=io.StringIO()).tables)
    assert [t.rows for t in tables[0]] == [t.rows for t in tables[1]]


def test_cli_list_and_run(tmp_path: Path, names_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in EXPECTED)
    out = tmp_path / "ce"
    assert main(["lab", "cross-entropy", str(names_file), "--steps", "1", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "naive finite" in printed and (out / "index.html").is_file() and (out / "results.json").is_file()


@pytest.mark.parametrize("argv, message", [
    (["lab"], "name an experiment"),
    (["lab", "nope"], "unknown experiment 'nope'"),
    (["lab", "embedding", "missing.txt"], "does not exist"),
    (["lab", "embedding", "--threads", "0"], "--threads"),
])
def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    out = tmp_path / "out"
    assert main(argv + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()  # nothing written


def test_fmt_cells() -> None:
    assert fmt(None) == "-" and fmt(True) == "yes" and fmt(float("nan")) == "nan" and fmt(0.0) == "0"
    assert fmt(2.5) == "2.5000" and fmt(1e-5) == "1.00e-05" and fmt(["a", "b"]) == "a b"
