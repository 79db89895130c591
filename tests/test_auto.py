"""`--model auto`: each branch of the rule, its place among the options, what a run records; the
recurrent dropout it may choose, through the speed layer and the model's own code alike."""

from __future__ import annotations

import json
import math

import pytest
import torch

from makemore.auto import RULE, SMALL_CORPUS_DROPOUT, SMALL_CORPUS_ITEMS, choose, count_items, rows_for, usable_cores
from makemore.cli import main
from makemore.models import create_model, model_config
from makemore.models.common import ModelLoss
from makemore.options import run_config
from makemore.speed import fast_loss

BIG = 10 * SMALL_CORPUS_ITEMS


def test_the_rule_is_ordered_and_ends_with_every_budget() -> None:
    assert [r.up_to_s for r in RULE] == sorted(r.up_to_s for r in RULE) and RULE[-1].up_to_s == math.inf
    assert RULE[-1].min_cores == 1  # every machine has a row for every budget


def _rows_for(cores: int) -> list[int]:
    return [RULE.index(r) for r in rows_for(cores)]


def test_one_core_trains_one_model_and_two_cores_an_ensemble_for_every_budget() -> None:
    assert all(RULE[i].options.get("members", 1) == 1 for i in _rows_for(1))
    for cores in (2, 16):
        assert all(RULE[i].options.get("members", 1) > 1 for i in _rows_for(cores))
        assert [RULE[i].up_to_s for i in _rows_for(cores)] == [RULE[i].up_to_s for i in _rows_for(1)]


@pytest.mark.parametrize("cores", [1, 2, 16])
def test_a_time_budget_picks_its_row(cores: int) -> None:
    rows = _rows_for(cores)
    for i, row in enumerate(rows):
        lower = RULE[rows[i - 1]].up_to_s if i else 0.0
        upper = RULE[row].up_to_s
        for seconds in (lower + 1, upper if upper < math.inf else lower + 3600):
            choice = choose(seconds, None, BIG, cores)
            assert choice.options == RULE[row].options and choice.budget_s == seconds
            assert f"{seconds:g} s" in choice.reason and RULE[row].why in choice.reason


@pytest.mark.parametrize("cores", [1, 2])
def test_a_step_budget_is_converted_with_the_rows_step_cost(cores: int) -> None:
    rows = _rows_for(cores)
    for i, row in enumerate(rows):
        # the first row whose own time for the steps is within its budget: just past the previous row's
        prev = RULE[rows[i - 1]] if i else None
        steps = math.floor(prev.up_to_s / prev.step_s) + 1 if prev else 10
        choice = choose(None, steps, BIG, cores)
        assert choice.options == {**RULE[row].options, "warmup": min(RULE[row].options["warmup"], steps // 10)}
        assert choice.budget_s == pytest.approx(steps * RULE[row].step_s)
        assert f"{steps} steps" in choice.reason


@pytest.mark.parametrize("seconds", [60, 300])
def test_an_ensemble_only_on_a_machine_with_several_cores(seconds: float) -> None:
    """The machine's cores enter the rule: with two or more, an ensemble of the model one core trains."""
    one, two = choose(seconds, None, BIG, 1), choose(seconds, None, BIG, 2)
    assert "members" not in one.options and "ensemble" not in one.reason
    k = two.options["members"]
    assert k > 1 and f"an ensemble of {k}" in two.reason and "2 cores" in two.reason
    sizes = ("model", "n_embd", "n_hidden", "batch_size")
    assert [two.options[key] for key in sizes] == [one.options[key] for key in sizes]  # the same model, K times
    for row in RULE:
        assert row.options.get("members", 1) == 1 or row.min_cores >= 2


@pytest.mark.parametrize("cores", [1, 2])
def test_a_small_corpus_gets_dropout_and_a_big_one_none(cores: int) -> None:
    for seconds in (60, 600):  # each row
        small = choose(seconds, None, SMALL_CORPUS_ITEMS - 1, cores)
        assert small.options["dropout"] == SMALL_CORPUS_DROPOUT and "small corpus" in small.reason
        row = next(r for r in RULE if seconds <= r.up_to_s and cores >= r.min_cores)
        assert choose(seconds, None, SMALL_CORPUS_ITEMS, cores).options.get("dropout") == row.options.get("dropout")
        assert choose(seconds, None, None, cores).options.get("dropout") == row.options.get("dropout")  # unreadable input


def test_count_items_counts_non_blank_lines(tmp_path) -> None:
    p = tmp_path / "x.txt"
    p.write_text("a\n\n  \nbb\r\nccc", encoding="utf-8")
    assert count_items(str(p)) == 3
    assert count_items(str(tmp_path / "missing.txt")) is None


def test_auto_is_the_default_and_the_options_given_win(tiny_file) -> None:
    cfg = run_config(input=str(tiny_file), time=200.0)
    row = next(r for r in RULE if 200 <= r.up_to_s and usable_cores() >= r.min_cores)
    assert cfg.auto is not None and cfg.model.name == row.options["model"]
    assert cfg.model.n_hidden == row.options["n_hidden"] and cfg.train.lr == row.options["lr"]
    assert cfg.train.steps is None and cfg.train.time == 200.0  # --time alone: the run ends on time
    given = run_config("auto", input=str(tiny_file), time=200.0, lr=1e-3, n_hidden=32)
    assert (given.train.lr, given.model.n_hidden) == (1e-3, 32)
    assert given.auto is not None and given.auto.reason.endswith("(your options win: --n-hidden 32, --lr 0.001)")
    assert "your options win" not in cfg.auto.reason  # nothing given that auto sets
    same = run_config("auto", input=str(tiny_file), time=200.0, lr=row.options["lr"])
    assert same.auto is not None and "your options win" not in same.auto.reason  # given, but equal to the choice
    assert run_config("gru", input=str(tiny_file)).auto is None


def test_train_prints_the_choice_and_records_it(tiny_file, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", str(tiny_file), "--steps", "3", "--samples", "0", "--threads", "1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["auto"]["reason"] in err and recorded["auto"]["items"] == 10
    assert recorded["model"]["name"] == recorded["auto"]["options"]["model"]
    assert recorded["model"]["dropout"] == SMALL_CORPUS_DROPOUT  # 10 items: a small corpus


@pytest.mark.parametrize("name", ["gru", "rnn"])
def test_recurrent_dropout_is_the_same_through_the_written_out_recurrence(name: str) -> None:
    """In training mode the fast path draws the same dropout masks in the same order as the model's
    own forward: equal losses and gradients in float64 from the same seed."""
    torch.manual_seed(0)
    model = create_model(model_config(name, vocab_size=7, block_size=6, n_embd=8, n_hidden=12, dropout=0.3)).double()
    x = torch.randint(0, 7, (4, 6))
    y = torch.randint(0, 7, (4, 6))
    params = list(model.parameters())
    torch.manual_seed(1)
    fast = fast_loss(model)(x, y)
    g_fast = torch.autograd.grad(fast, params)
    torch.manual_seed(1)
    ref = ModelLoss(model)(x, y)
    g_ref = torch.autograd.grad(ref, params)
    assert abs(fast.item() - ref.item()) < 1e-12
    for g, h in zip(g_fast, g_ref):
        assert torch.allclose(g, h, rtol=1e-9, atol=1e-12)
    model.eval()  # no dropout at evaluation: the same logits twice
    assert torch.equal(model(x)[0], model(x)[0])


def test_auto_trains_one_model_where_an_ensemble_cannot_go(tiny_file, tmp_path) -> None:
    """With an option an ensemble does not combine with, auto chooses as on one core, whatever the machine."""
    out = tmp_path / "run"
    assert main(["train", str(tiny_file), "--steps", "3", "--stop-at-val-loss", "0.5", "--samples", "0", "--threads", "1",
                 "--out", str(out)]) == 0
    recorded = json.loads((out / "config.json").read_text())
    assert "members" not in recorded["auto"]["options"] and not (out / "members").exists()
    assert recorded["auto"]["options"] == choose(None, 3, 10, cores=1).options
