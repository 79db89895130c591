"""Every check on hand-made records: it fires where it should and stays quiet where it should not."""

from __future__ import annotations

import math

import pytest

from makemore.diagnostics.checks import (
    CHECKS, CODES, DEFAULT, Finding, check_batchnorm_stats, check_bias_before_batchnorm, check_dead_units,
    check_gradient_flow, check_init_loss, check_loss, check_saturation, check_time_flow, check_updates, run_checks,
)
from makemore.diagnostics.records import (
    ActStats, GradStats, Histogram, ModuleInfo, NormStats, ParamStats, Records, StepRecord, TimeStats, UnitMap,
)

H = Histogram(-1.0, 1.0, [1, 2, 2, 1])


def act(sat: float | None = None, zero: float | None = None, units: list[int] | None = None, rows: int = 100) -> ActStats:
    return ActStats(0.0, 0.5, 0.0, H, rows, sat, zero, units)


def grad(std: float, nonfinite: float = 0.0) -> GradStats:
    return GradStats(0.0, std, nonfinite, H)


def param(update: float | None = 1e-3, rms: float = 1e-3, matrix: bool = True, nonfinite: float = 0.0) -> ParamStats:
    return ParamStats(0.1, 0.0, rms, rms, nonfinite, H if matrix else None, update)


TANH = [ModuleInfo("0", "Linear", "linear", 4, "0.bias"), ModuleInfo("1", "Tanh", "saturating", 4),
        ModuleInfo("2", "Linear", "linear", 4, "2.bias"), ModuleInfo("3", "Tanh", "saturating", 4),
        ModuleInfo("4", "Linear", "linear", 27, "4.bias")]


def records(steps: list[StepRecord], losses: list[float] | None = None, modules: list[ModuleInfo] = TANH,
            **kw: object) -> Records:
    r = Records(every=10, window=2, n_classes=27, first_step=0, losses=losses if losses is not None else [3.3],
                steps=steps, modules=modules, output_module="4", **kw)  # type: ignore[arg-type]
    return r


def codes(fs: list[Finding]) -> list[tuple[str, str]]:
    return [(f.code, f.severity) for f in fs]


# -- init.loss_too_high ---------------------------------------------------------------------------


def test_init_loss() -> None:
    assert codes(check_init_loss(records([], [27.4]))) == [("init.loss_too_high", "error")]
    f = check_init_loss(records([], [27.4]))[0]
    assert f.where == "4" and "27.40" in f.evidence and "3.30" in f.evidence and "0.01" in f.fix
    assert codes(check_init_loss(records([], [4.2]))) == [("init.loss_too_high", "info")]  # 0.9 nats over ln 27: 27% over
    assert codes(check_init_loss(records([], [5.2]))) == [("init.loss_too_high", "warning")]  # 58% over: confidently wrong
    assert check_init_loss(records([], [3.35])) == []
    assert check_init_loss(records([], [math.nan])) == []  # a NaN is loss.diverging's business
    resumed = records([], [27.4])
    resumed.first_step = 500
    assert check_init_loss(resumed) == []  # not the step-0 loss
    unknown = records([], [27.4])
    unknown.n_classes = None
    assert check_init_loss(unknown) == []


# -- act.saturated ----------------------------------------------------------------------------------


def test_saturation_at_init() -> None:
    assert codes(check_saturation(records([StepRecord(0, 3.3, {"1": act(0.5), "3": act(0.1)})]))) == [("act.saturated", "warning")]
    f = check_saturation(records([StepRecord(0, 3.3, {"1": act(0.7), "3": act(0.5)})]))[0]
    assert (f.code, f.severity, f.where) == ("act.saturated", "error", "1")
    assert "70%" in f.evidence and "3 50%" in f.evidence and "5/3" in f.fix and "0" in f.fix
    assert check_saturation(records([StepRecord(0, 3.3, {"1": act(0.2), "3": act(0.05)})])) == []


def test_init_loss_reads_the_loss_function_not_the_sum_of_losses() -> None:
    r = records([], [3.3 + 2.0])  # cross-entropy at ln 27 plus an auxiliary loss
    r.init_loss = 3.31
    assert check_init_loss(r) == []
    r.init_loss = 27.4
    assert codes(check_init_loss(r)) == [("init.loss_too_high", "error")]
    regression = records([], [27.4])
    regression.n_classes = 0  # what the monitor records when the loss is a regression loss
    assert check_init_loss(regression) == []


def test_saturation_that_grows_during_training_is_a_note() -> None:
    steps = [StepRecord(s, 3.0, {"1": act(0.1 if s == 0 else 0.7), "3": act(0.1)}) for s in range(0, 60, 10)]
    assert codes(check_saturation(records(steps))) == [("act.saturated", "info")]


# -- act.dead_units -----------------------------------------------------------------------------------

RELU = [ModuleInfo("0", "Linear", "linear", 4, "0.bias"), ModuleInfo("1", "ReLU", "relu", 4), ModuleInfo("4", "Linear", "linear", 27)]


def test_dead_units_over_a_window() -> None:
    steps = [StepRecord(s, 3.0, {"1": act(zero=0.6, units=[0, 5, 0, 3])}) for s in (0, 10)]
    f = check_dead_units(records(steps, modules=RELU))
    assert codes(f) == [("act.dead_units", "warning")]
    assert "2 of 4 units" in f[0].evidence and "200 examples" in f[0].evidence and "bias" in f[0].fix


def test_a_unit_active_anywhere_in_the_window_is_alive() -> None:
    # unit 0 is inactive on the first batch only; every window of two batches sees it active
    steps = [StepRecord(0, 3.0, {"1": act(zero=0.5, units=[0, 5, 1, 3])}),
             StepRecord(10, 3.0, {"1": act(zero=0.5, units=[2, 5, 1, 3])}),
             StepRecord(20, 3.0, {"1": act(zero=0.5, units=[4, 5, 1, 3])})]
    assert check_dead_units(records(steps, modules=RELU)) == []


def test_a_few_dead_units_are_a_note() -> None:
    units = [0] + [7] * 19  # 1 of 20 (5%)
    steps = [StepRecord(s, 3.0, {"1": act(zero=0.5, units=units)}) for s in (0, 10)]
    mods = [ModuleInfo("0", "Linear", "linear", 20), ModuleInfo("1", "ReLU", "relu", 20)]
    assert codes(check_dead_units(records(steps, modules=mods))) == [("act.dead_units", "info")]


def test_a_window_holds_enough_examples_to_call_a_unit_dead() -> None:
    # batches of 32: unit 0 passes gradient on one batch of 40, a sparse unit, not a dead one; five
    # batches (160 examples) would call it dead, the 1,000 examples of 32 batches do not
    steps = [StepRecord(5 * i, 3.0, {"1": act(zero=0.5, units=[1 if i == 20 else 0, 5, 1, 3], rows=32)}) for i in range(40)]
    assert check_dead_units(records(steps, modules=RELU)) == []
    steps[20].acts["1"].unit_active = [0, 5, 1, 3]  # never active: dead
    f = check_dead_units(records(steps, modules=RELU))
    assert codes(f) == [("act.dead_units", "warning")] and "1,024 examples" in f[0].evidence


def _dying(big_step: bool) -> Records:
    """A ReLU layer alive for five recordings, then with 3 of 4 units dead; with `big_step`, an
    update of 10^-0.5 on the step before they die and tiny ones after (else 1e-3 throughout)."""
    steps = []
    for i in range(12):
        ratio = (10**-0.5 if i == 4 else 1e-3 if i < 4 else 1e-5) if big_step else 1e-3
        units = [3, 5, 1, 3] if i <= 4 else [0, 0, 0, 3]
        steps.append(StepRecord(10 * i, 3.0, {"1": act(zero=0.5, units=units, rows=500)},
                                params={"0.weight": param(ratio), "4.weight": param(ratio)}))
    return records(steps, losses=[2.3] * 120, modules=RELU, matrices=["0.weight", "4.weight"])


def test_units_that_die_after_too_large_steps_are_the_learning_rate() -> None:
    fs = run_checks(_dying(big_step=True))
    assert codes(fs) == [("update.too_large", "warning")]  # not the dead units, not the small updates after
    assert "3 of 1's 4 units died" in fs[0].evidence and fs[0].step == 40 and "learning rate" in fs[0].fix
    assert [f.code for f in run_checks(_dying(big_step=False))] == ["act.dead_units"]


def test_always_saturated_tanh_units_are_dead_too() -> None:
    steps = [StepRecord(s, 3.0, {"1": act(0.6, units=[0, 0, 9, 9])}) for s in (0, 10)]
    f = check_dead_units(records(steps))
    assert codes(f) == [("act.dead_units", "warning")] and "saturated" in f[0].evidence


def test_tanh_units_that_saturate_during_training_are_a_note() -> None:
    # alive at first, then 3 of 4 saturated on every example: they still pass a little gradient
    steps = [StepRecord(10 * i, 3.0, {"1": act(0.6, units=[9, 9, 9, 9] if i < 3 else [0, 0, 0, 9], rows=500)})
             for i in range(8)]
    f = check_dead_units(records(steps))
    assert codes(f) == [("act.dead_units", "info")] and "3 of 4 units" in f[0].evidence


# -- grad.vanishing / grad.exploding ------------------------------------------------------------------


def _flow(first: float, last: float) -> Records:
    return records([StepRecord(0, 3.3, grads={"1": grad(first), "3": grad(last)})])


def test_vanishing_gradients() -> None:
    f = check_gradient_flow(_flow(1e-4, 1e-2))
    assert codes(f) == [("grad.vanishing", "warning")] and f[0].where == "1" and "10^-2" in f[0].evidence
    assert codes(check_gradient_flow(_flow(1e-6, 1e-2))) == [("grad.vanishing", "error")]
    assert codes(check_gradient_flow(_flow(0.0, 1e-2))) == [("grad.vanishing", "error")]  # nothing gets through


def test_exploding_gradients() -> None:
    assert codes(check_gradient_flow(_flow(1.0, 1e-2))) == [("grad.exploding", "warning")]


def test_healthy_gradient_flow_is_quiet() -> None:
    assert check_gradient_flow(_flow(3e-3, 1e-2)) == []
    assert check_gradient_flow(records([StepRecord(0, 3.3)])) == []  # nothing recorded


def test_nan_gradients_are_an_error() -> None:
    r = records([StepRecord(0, 3.3, grads={"1": grad(1e-2), "3": grad(1e-2)}),
                 StepRecord(10, 3.3, grads={"1": grad(math.nan, 1.0), "3": grad(1e-2)})])
    f = check_gradient_flow(r)
    assert codes(f) == [("grad.exploding", "error")] and f[0].step == 10
    r2 = records([StepRecord(0, 3.3, params={"0.weight": param(nonfinite=1.0)})])
    assert codes(check_gradient_flow(r2)) == [("grad.exploding", "error")]


def test_nan_gradients_on_steps_the_optimizer_skipped_are_not_exploding() -> None:
    # GradScaler: Inf in the scaled gradients, the step skipped, the scale lowered: healthy mixed precision
    skipped = StepRecord(0, 3.3, grads={"1": grad(math.inf, 1.0), "3": grad(math.inf, 1.0)}, skipped=True)
    fine = StepRecord(10, 3.2, grads={"1": grad(1e-2), "3": grad(1e-2)})
    assert check_gradient_flow(records([skipped, fine])) == []


# -- gradients through time -----------------------------------------------------------------------------


def _time(gain: float, T: int = 16) -> Records:
    ts = TimeStats([gain ** (T - 1 - t) for t in range(T)], [gain] * (T - 1))
    return records([StepRecord(s, 3.0, time={"rnn.layer0": ts}) for s in (0, 10, 20)])


def test_gradients_vanishing_through_time() -> None:
    f = check_time_flow(_time(0.03))
    assert codes(f) == [("grad.vanishing", "warning")] and f[0].where == "rnn.layer0"
    assert "0.03" in f[0].evidence and "10^-22.8" in f[0].evidence  # 15 steps of 0.03


def test_gradients_exploding_through_time() -> None:
    assert codes(check_time_flow(_time(2.0))) == [("grad.exploding", "warning")]


def test_healthy_recurrence_is_quiet() -> None:
    assert check_time_flow(_time(0.5)) == [] and check_time_flow(_time(1.0)) == []


# -- update.too_large / update.too_small ---------------------------------------------------------------


def _updates(ratios: list[float]) -> Records:
    steps = [StepRecord(10 * i, 3.0, params={"0.weight": param(x), "2.weight": param(x), "0.bias": param(10.0, matrix=False),
                                               "wte.weight": param(10.0)})
             for i, x in enumerate(ratios)]
    return records(steps, losses=[3.3] * (10 * len(ratios)), matrices=["0.weight", "2.weight"])  # a flat loss


def test_healthy_updates_are_quiet() -> None:
    assert check_updates(_updates([1e-3] * 8)) == []  # biases and the embedding table are not judged


def test_updates_too_large() -> None:
    f = check_updates(_updates([10**-0.5] * 8))
    assert codes(f) == [("update.too_large", "warning")]
    assert "10^-0.5" in f[0].evidence and "about 100x" in f[0].fix


def test_one_update_larger_than_the_weights_is_an_error() -> None:
    f = check_updates(_updates([10**0.5] + [1e-3] * 7))
    assert codes(f) == [("update.too_large", "error")] and f[0].step == 0


def test_updates_too_small() -> None:
    f = check_updates(_updates([10**-4.5] * 8))
    assert codes(f) == [("update.too_small", "warning")] and "about 100x" in f[0].fix


def test_small_updates_are_the_learning_rate_only_when_the_loss_agrees() -> None:
    r = _updates([10**-3.3] * 8)
    r.losses = [3.3 - 0.001 * i for i in range(200)]  # 6% lower at the end: too slow
    assert codes(check_updates(r)) == [("update.too_small", "warning")]
    r.losses = [3.3 - 0.005 * i for i in range(200)]  # 30% lower: learning (weights initialized large, a fine-tuning)
    assert check_updates(r) == []
    r.losses = [3.3] * 10  # ten steps say nothing about the loss yet
    assert check_updates(r) == []


def test_a_decaying_schedule_at_the_end_is_not_too_small() -> None:
    assert check_updates(_updates([1e-3] * 8 + [1e-6] * 2)) == []  # the last fifth is left out


def test_updates_during_a_warm_up_are_not_judged() -> None:
    r = _updates([10**-5] * 5 + [1e-3] * 5)
    assert codes(check_updates(r)) == [("update.too_small", "warning")]  # no learning rates recorded
    for i, step in enumerate(r.steps):
        step.lr = 1e-5 if i < 5 else 1e-3  # the first five early in a warm-up
    assert check_updates(r) == []


# -- norm.batch_stats_mismatch -------------------------------------------------------------------------

BN = [ModuleInfo("0", "Linear", "linear", 4), ModuleInfo("1", "BatchNorm1d", "batchnorm", 4, "1.bias"), ModuleInfo("2", "Tanh", "saturating", 4)]


def test_batchnorm_statistics_mismatch() -> None:
    steps = [StepRecord(s, 3.0, norms={"1": NormStats(0.6, 0.001)}) for s in (0, 50, 100)]
    f = check_batchnorm_stats(records(steps, modules=BN))
    assert codes(f) == [("norm.batch_stats_mismatch", "warning")]
    assert "0.60" in f[0].evidence and "1000 steps" in f[0].evidence and "momentum" in f[0].fix


def test_batchnorm_statistics_are_judged_only_once_they_had_time() -> None:
    early = [StepRecord(s, 3.0, norms={"1": NormStats(0.9, 0.1)}) for s in (0, 10, 20)]
    assert check_batchnorm_stats(records(early, modules=BN)) == []
    calibrated = [StepRecord(s, 3.0, norms={"1": NormStats(0.9 if s == 0 else 0.08, 0.1)}) for s in (0, 100, 200)]
    assert check_batchnorm_stats(records(calibrated, modules=BN)) == []


def test_batchnorm_mismatch_is_judged_against_the_batch_sampling_noise() -> None:
    # 16 rows: sampling alone gives a gap of about sqrt(1.5 / 16) = 0.31
    small = [StepRecord(s, 3.0, norms={"1": NormStats(0.35, 0.1, 0.31)}) for s in (0, 100, 200)]
    assert check_batchnorm_stats(records(small, modules=BN)) == []
    stuck = [StepRecord(s, 3.0, norms={"1": NormStats(0.9, 0.001, 0.31)}) for s in (0, 100, 200)]
    f = check_batchnorm_stats(records(stuck, modules=BN))
    assert codes(f) == [("norm.batch_stats_mismatch", "warning")] and "0.31" in f[0].evidence


# -- norm.bias_before_batchnorm ------------------------------------------------------------------------

BIAS_BN = [ModuleInfo("0", "Linear", "linear", 4, "0.bias"), ModuleInfo("1", "BatchNorm1d", "batchnorm", 4, "1.bias")]


def test_bias_before_batchnorm() -> None:
    r = records([StepRecord(0, 3.3, params={"0.bias": param(rms=1e-10, matrix=False), "0.weight": param(rms=1e-3)})], modules=BIAS_BN)
    f = check_bias_before_batchnorm(r)
    assert codes(f) == [("norm.bias_before_batchnorm", "warning")] and f[0].where == "0.bias" and "bias=False" in f[0].fix


def test_a_bias_that_gets_gradient_or_no_batchnorm_is_fine() -> None:
    live = records([StepRecord(0, 3.3, params={"0.bias": param(rms=1e-3, matrix=False), "0.weight": param(rms=1e-3)})], modules=BIAS_BN)
    assert check_bias_before_batchnorm(live) == []
    assert check_bias_before_batchnorm(records([], modules=TANH)) == []
    no_bias = [ModuleInfo("0", "Linear", "linear", 4, None), BIAS_BN[1]]
    assert check_bias_before_batchnorm(records([], modules=no_bias)) == []


# -- loss.diverging / loss.plateau ---------------------------------------------------------------------


def falling(n: int = 200) -> list[float]:
    return [3.3 * math.exp(-i / 100) + 1.5 for i in range(n)]


def test_healthy_loss_is_quiet() -> None:
    assert check_loss(records([], falling())) == []


def test_nan_loss_is_an_error() -> None:
    f = check_loss(records([], falling()[:50] + [math.nan] * 5))
    assert codes(f) == [("loss.diverging", "error")] and f[0].step == 50


def test_loss_above_its_start_is_an_error() -> None:
    assert codes(check_loss(records([], [3.3] + [50.0] * 99))) == [("loss.diverging", "error")]


def test_loss_rising_from_its_best() -> None:
    L = [3.0 - i / 100 for i in range(100)] + [2.0 + i / 100 for i in range(100)]  # down to 2.0, back to 3.0
    assert codes(check_loss(records([], L))) == [("loss.diverging", "warning")]


def test_loss_spike_that_comes_back_down() -> None:
    L = [3.3, 3.3, 6.0, 6.0, 6.0, 6.0, 5.0] + falling(193)
    f = check_loss(records([], L))
    assert codes(f) == [("loss.diverging", "warning")] and "rose from 3.300" in f[0].evidence


def test_plateau() -> None:
    flat = [3.3 + 0.01 * math.sin(i) for i in range(200)]
    f = check_loss(records([], flat))
    assert codes(f) == [("loss.plateau", "warning")]
    assert check_loss(records([], flat[:50])) == []  # too short to call


def test_a_plateau_with_a_named_cause_is_that_cause() -> None:
    flat = [3.3 + 0.01 * math.sin(i) for i in range(200)]
    steps = [StepRecord(s, 3.0, {"1": act(zero=1.0, units=[0, 0, 0, 0])}) for s in (0, 10)]
    fs = run_checks(records(steps, flat, modules=RELU))
    assert [f.code for f in fs] == ["act.dead_units"]
    assert "loss.plateau" in [f.code for f in run_checks(records([], flat))]


# -- the whole set ------------------------------------------------------------------------------------


def test_run_checks_orders_by_severity_and_codes_are_stable() -> None:
    steps = [StepRecord(0, 27.4, {"1": act(0.5), "3": act(0.1)})]
    fs = run_checks(records(steps, [27.4] + falling(10)))
    assert codes(fs) == [("init.loss_too_high", "error"), ("act.saturated", "warning")]
    assert {f.code for f in fs} <= set(CODES)
    assert len(CHECKS) == 9 and DEFAULT.update_max == -1.0


def test_fix_texts_name_no_command_line_option() -> None:
    # the diagnostics speak PyTorch; the makemore CLI adds its own flags (makemore.doctor.with_flags)
    flat = [3.3 + 0.01 * math.sin(i) for i in range(200)]
    cases = [records([StepRecord(0, 27.4, {"1": act(0.7), "3": act(0.1)})], [27.4] + falling(30)), records([], flat),
             _updates([10**-0.5] * 8), _updates([10**-4.5] * 8), _time(0.03), _time(2.0), _flow(1e-2, 1.0)]
    fixes = [f.fix for r in cases for f in run_checks(r)]
    assert len(fixes) >= 7 and not [fx for fx in fixes if "--" in fx or "makemore" in fx]


def test_empty_records_give_no_findings() -> None:
    assert run_checks(Records(every=10, window=5, n_classes=None, first_step=0)) == []


# -- records ------------------------------------------------------------------------------------------


def test_records_json_round_trip(tmp_path) -> None:
    r = records([StepRecord(0, 3.3, {"1": act(0.5, units=[1, 2, 3, 4])}, {"1": grad(1e-3)}, {"0.weight": param()},
                            {"1": NormStats(0.2, 0.1)})], falling(20), matrices=["0.weight"],
                unit_maps={"1": [UnitMap(0, [[0, 1], [1, 0]])]}, meta={"model": "X"})
    path = tmp_path / "r.json"
    r.save(path)
    assert Records.load(path) == r
    nan = records([], [3.3, math.nan])
    nan.save(path)
    assert math.isnan(Records.load(path).losses[1])


def test_records_reject_other_files(tmp_path) -> None:
    p = tmp_path / "x.json"
    p.write_text('{"hello": 1}')
    with pytest.raises(ValueError):
        Records.load(p)


def test_upto_cuts_the_records_at_a_step() -> None:
    r = records([StepRecord(s, 3.0) for s in (0, 10, 20)], falling(25))
    cut = r.upto(10)
    assert [s.step for s in cut.steps] == [0, 10] and len(cut.losses) == 11 and len(r.losses) == 25


# -- symptoms folded into their causes --------------------------------------------------------------


def test_small_updates_where_gradients_fade_with_depth_are_the_gradients() -> None:
    steps = [StepRecord(10 * i, 3.3, grads={"1": grad(1e-4), "3": grad(1.0)},
                        params={"0.weight": param(10**-4.5), "2.weight": param(10**-4.5)}) for i in range(8)]
    r = records(steps, losses=[3.3] * 80, matrices=["0.weight", "2.weight"])
    assert "update.too_small" in {f.code for f in check_updates(r)}
    assert [f.code for f in run_checks(r)] == ["grad.vanishing"]  # the early weights get no gradient to move by


def _blown(first_std: float, losses: list[float]) -> Records:
    # a ReLU layer whose outputs have std `first_std` at step 0, half its units dead from the start
    steps = [StepRecord(10 * i, losses[10 * i], {"1": ActStats(0.0, first_std, 0.0, H, 500, None, 0.5, [0, 0, 5, 5])})
             for i in range(len(losses) // 10)]
    return records(steps, losses=losses, modules=RELU)


def test_a_huge_step_0_loss_from_a_blown_up_first_layer_is_the_inputs() -> None:
    falls = [500.0] + [3.0] * 99
    fs = run_checks(_blown(2000.0, falls))
    assert codes(fs) == [("init.loss_too_high", "error")]  # the dead units: the same huge inputs
    assert "standardize the inputs" in fs[0].fix and "std 2e+03" in fs[0].evidence
    fs = run_checks(_blown(0.5, falls))  # the first layer is fine: the output layer, and dead units of their own
    assert [f.code for f in fs] == ["init.loss_too_high", "act.dead_units"] and "standardize" not in fs[0].fix


def test_a_loss_that_never_recovered_from_its_initialization_is_the_initialization() -> None:
    stuck = [400.0] + [12.0] * 150 + [20.0] * 49  # rises, but never came near ln(27) = 3.3
    assert [f.code for f in run_checks(_blown(0.5, stuck))] == ["init.loss_too_high", "act.dead_units"]
    recovered = [400.0] + [3.0] * 150 + [20.0] * 49
    assert "loss.diverging" in [f.code for f in run_checks(_blown(0.5, recovered))]


def _overflow(losses: list[float], first_std: float = 1.5) -> Records:
    # a ReLU MLP whose gradients hold NaN from step 10 on; `losses` per step
    steps = [StepRecord(10 * i, losses[10 * i], {"1": ActStats(0.0, first_std, 0.0, H, 500, None, 0.4, [5, 5, 5, 5]),
                                                 "3": ActStats(0.0, 20.0, 0.0, H, 500, None, 0.4, [5, 5, 5, 5])},
                        grads={"1": grad(1e-2 if i == 0 else math.nan, 0.0 if i == 0 else 1.0), "3": grad(1e-2)})
             for i in range(len(losses) // 10)]
    return records(steps, losses=losses, modules=RELU)


def test_gradients_that_overflow_before_a_huge_step_0_loss_came_down_are_the_weights() -> None:
    blew = [150.0, 9e3, 5e5, 1e18] + [math.nan] * 46  # from a huge step-0 loss straight to NaN
    raw = [f.code for check in CHECKS for f in check(_overflow(blew))]
    assert {"init.loss_too_high", "grad.exploding", "loss.diverging"} <= set(raw)
    fs = run_checks(_overflow(blew))
    assert codes(fs) == [("grad.exploding", "error")]  # one cause: the weights' scale
    assert "150.00 against ln 27" in fs[0].evidence and "initialization scale" in fs[0].fix
    # the loss came down to ln(27) first: the NaN later is another matter, and the init stays a finding
    recovered = [150.0] + [3.0] * 30 + [math.nan] * 19
    assert {"init.loss_too_high", "grad.exploding"} <= {f.code for f in run_checks(_overflow(recovered))}
    # a first layer that outputs std 2,000: the inputs, which the step-0 loss finding names
    assert "init.loss_too_high" in {f.code for f in run_checks(_overflow(blew, first_std=2000.0))}
