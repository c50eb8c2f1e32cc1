"""prelu_tutorial.benchmark.timing: summary statistics and the bimodality test, by hand."""

import pytest

from prelu_tutorial.benchmark import timing


def test_summarize_gives_the_minimum_and_the_quartiles_of_five_samples():
    # Sorted: 1 2 3 4 5; NumPy's linear quartiles of five values are the 2nd and the 4th.
    summary = timing.summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (summary.minimum, summary.q1, summary.median, summary.q3) == (1.0, 2.0, 3.0, 4.0)


def test_summarize_interpolates_the_quartiles_of_four_samples():
    # Positions 0.75, 1.5 and 2.25 of the sorted 1 2 3 4: 1.75, 2.5, 3.25.
    summary = timing.summarize([1.0, 2.0, 3.0, 4.0])
    assert (summary.q1, summary.median, summary.q3) == pytest.approx((1.75, 2.5, 3.25))
    assert summary.iqr == pytest.approx(1.5)


def test_summarize_keeps_the_samples_in_the_order_taken():
    assert timing.summarize([3.0, 1.0, 2.0]).samples == (3.0, 1.0, 2.0)


def test_two_tight_groups_far_apart_are_bimodal_with_each_groups_median():
    # The throttled machine: a step takes about 70 ms or about 129 ms.
    samples = [0.070, 0.129, 0.071, 0.130, 0.072, 0.131]
    assert timing.modes(samples) == pytest.approx((0.071, 0.130))
    assert timing.summarize(samples).bimodal


def test_one_slow_outlier_is_not_a_second_mode():
    assert timing.modes([70.0, 71.0, 72.0, 73.0, 129.0]) == (72.0,)


def test_evenly_spread_samples_are_unimodal():
    assert not timing.summarize([float(value) for value in range(70, 81)]).bimodal


def test_a_gap_no_wider_than_twice_a_groups_spread_is_not_a_mode_split():
    # The only split with two samples a side: gap 15, spreads 10 and 10.
    assert len(timing.modes([70.0, 80.0, 95.0, 105.0])) == 1


def test_a_gap_under_a_tenth_of_the_lower_group_is_jitter():
    assert len(timing.modes([100.0, 100.0, 105.0, 105.0])) == 1
    assert timing.modes([100.0, 100.0, 115.0, 115.0]) == (100.0, 115.0)


def test_of_three_groups_the_split_is_the_gap_that_dwarfs_the_others():
    # After 2: gap 9, high side's spread 91. After 4: gap 79, low side's spread 11.
    assert timing.modes([10.0, 11.0, 20.0, 21.0, 100.0, 101.0]) == (15.5, 100.5)


def test_three_evenly_spaced_groups_are_not_called_bimodal():
    # After 2: gap 28, spread 32; after 4: gap 30, spread 30.
    assert len(timing.modes([10.0, 11.0, 39.0, 40.0, 70.0, 71.0])) == 1


@pytest.mark.parametrize("samples", [[], [1.0, float("nan")], [float("inf")]])
def test_modes_rejects_empty_or_non_finite_samples(samples):
    with pytest.raises(ValueError, match="samples"):
        timing.modes(samples)


def test_interleave_starts_each_round_one_candidate_later():
    order = []
    calls = {key: (lambda key=key: order.append(key)) for key in "abc"}
    samples = timing.interleave(calls, dict.fromkeys("abc", 1), rounds=3)
    assert "".join(order) == "abc" + "bca" + "cab"
    assert {key: len(times) for key, times in samples.items()} == {"a": 3, "b": 3, "c": 3}


def test_calls_per_sample_repeats_a_short_call_up_to_the_limit():
    assert timing.calls_per_sample(lambda: None, min_seconds=10.0, limit=7) == 7


def test_modes_rejects_a_gap_factor_below_one():
    with pytest.raises(ValueError, match="gap_factor"):
        timing.modes([1.0, 2.0], gap_factor=0.5)
