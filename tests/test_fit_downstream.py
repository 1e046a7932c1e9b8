"""Two-step downstream prediction on synthetic runs with a known bpb law and a known accuracy sigmoid."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.errors import ScalingError
from scaling.fit.downstream import SigmoidFit, fit_accuracy_sigmoid, predict_accuracy

TRUE_LAW = {"E": 0.6, "A": 40.0, "B": 60.0, "alpha": 0.3, "beta": 0.3}
TRUE_SIGMOID = SigmoidFit(floor=0.25, ceiling=0.9, k=6.0, x0=1.4)


def _true_bpb(n, d):
    return TRUE_LAW["E"] + TRUE_LAW["A"] / n ** TRUE_LAW["alpha"] + TRUE_LAW["B"] / d ** TRUE_LAW["beta"]


def _ladder(noise_bpb: float, noise_acc: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = np.geomspace(3e5, 3e7, 6)
    n = np.repeat(sizes, 3)
    d = n * np.tile([10.0, 20.0, 40.0], sizes.size)
    bpb = _true_bpb(n, d) * np.exp(rng.normal(0, noise_bpb, n.size))
    acc = TRUE_SIGMOID.predict(bpb) + rng.normal(0, noise_acc, n.size)
    return n, d, bpb, acc


def test_sigmoid_recovers_known_parameters_with_the_floor_at_chance():
    bpb = np.linspace(0.6, 1.8, 25)
    fit = fit_accuracy_sigmoid(bpb, TRUE_SIGMOID.predict(bpb), chance=0.25)
    assert fit.floor == 0.25
    assert fit.ceiling == pytest.approx(0.9, abs=1e-3)
    assert fit.k == pytest.approx(6.0, rel=1e-2)
    assert fit.x0 == pytest.approx(TRUE_SIGMOID.x0, abs=1e-3)


def test_two_step_prediction_recovers_the_true_accuracy_at_a_larger_target_inside_its_interval():
    n, d, bpb, acc = _ladder(noise_bpb=0.005, noise_acc=0.01)
    target_n, target_d = 6e7, 1.2e9  # 2x the largest size, its predicted bpb below every run's
    truth_bpb = float(_true_bpb(target_n, target_d))
    truth_acc = float(TRUE_SIGMOID.predict(truth_bpb))
    pred = predict_accuracy(n, d, bpb, acc, target_n, target_d, chance=0.25, n_boot=30, seed=1)
    assert pred.bpb == pytest.approx(truth_bpb, rel=0.01)
    assert pred.acc == pytest.approx(truth_acc, abs=0.015)
    assert pred.bpb_ci[0] <= truth_bpb <= pred.bpb_ci[1]
    assert pred.acc_ci[0] <= truth_acc <= pred.acc_ci[1]
    assert pred.acc_ci[1] - pred.acc_ci[0] < 0.08
    assert pred.n_boot >= 25
    assert "below every fitted run" in pred.notes[0]  # the target lies past the fitted bpb range


@pytest.mark.slow
def test_noisier_runs_give_a_wider_accuracy_interval():
    target = (6e7, 1.2e9)
    quiet = predict_accuracy(*_ladder(0.002, 0.005), *target, chance=0.25, n_boot=20, seed=2)
    noisy = predict_accuracy(*_ladder(0.02, 0.04), *target, chance=0.25, n_boot=20, seed=2)
    assert noisy.acc_ci[1] - noisy.acc_ci[0] > quiet.acc_ci[1] - quiet.acc_ci[0]


def test_too_few_points_for_the_sigmoid_is_a_one_line_error():
    with pytest.raises(ScalingError, match="at least 3"):
        fit_accuracy_sigmoid([1.0, 1.2], [0.5, 0.4], chance=0.25)
