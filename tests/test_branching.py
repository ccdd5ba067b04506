"""Branching-parameter estimators (issue 6) on processes of known m, against mrestimator."""
import numpy as np
import pytest

from lifcore.snn import branching


@pytest.mark.parametrize("m", [0.5, 0.9, 0.98])
def test_estimators_recover_m_and_agree_with_mrestimator(m):
    a = branching.simulate_branching_process(m, drive=20.0 * (1 - m) * 10, steps=40000, seed=1)
    ours = branching.multistep_branching(a, k_max=10)
    reference = branching.multistep_branching(a, k_max=10, use_mrestimator=True)
    simple = branching.regression_branching(a)
    print(f"\nm={m}: regression {simple:.4f}, MR (ours) {ours:.4f}, MR (mrestimator) {reference:.4f}")
    assert abs(simple - m) < 0.02 and abs(ours - m) < 0.02 and abs(reference - m) < 0.02
    assert abs(ours - reference) < 0.02


def test_subsampling_biases_regression_not_multistep():
    """Observing 10% of the events: the slope of A[t+1] on A[t] drops, the MR estimate does not."""
    rng = np.random.default_rng(2)
    full = branching.simulate_branching_process(0.95, drive=10.0, steps=60000, seed=2)
    observed = rng.binomial(full.astype(int), 0.1).astype(float)
    assert branching.regression_branching(observed) < 0.8
    assert abs(branching.multistep_branching(observed, k_max=15) - 0.95) < 0.03


def test_bad_activity_is_rejected():
    with pytest.raises(ValueError, match="activity"):
        branching.regression_branching(np.zeros((2, 2, 2)))
