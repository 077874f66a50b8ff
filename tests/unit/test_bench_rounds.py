"""The headline rounds of ``agentic bench``: who goes first, and how rounds become figures."""

from __future__ import annotations

import math

import pytest
from rich.console import Console

from app.bench.report import print_report
from app.bench.run import combine, paired_ratios, turns


def test_the_systems_take_turns_going_first() -> None:
    assert [turns(n) for n in range(4)] == [
        ("agentic", "celery"),
        ("celery", "agentic"),
        ("agentic", "celery"),
        ("celery", "agentic"),
    ]


def round_(steps_per_s: float, cpu_us: float, failures: list[str]) -> dict[str, object]:
    return {
        "tasks": 10,
        "completed": 10 - len(failures),
        "failures": failures,
        "steps_per_s": steps_per_s,
        "redis_cpu_us_per_step": cpu_us,
        "redis_ceiling_steps_per_s": 1e6 / cpu_us,
        "samples": {"idle_latency_ms": [steps_per_s / 1000], "saturated_latency_ms": [1.0, 2.0]},
    }


def test_each_figure_is_the_median_of_its_rounds() -> None:
    out = combine([round_(5000, 70, []), round_(3000, 90, ["x"]), round_(4000, 60, [])])
    assert out["steps_per_s"] == 4000 and out["redis_cpu_us_per_step"] == 70
    # Counts add up, failures and samples are pooled: nothing a round saw is dropped.
    assert (out["tasks"], out["completed"], out["failures"]) == (30, 29, ["x"])
    assert out["samples"] == {
        "idle_latency_ms": [5.0, 3.0, 4.0],
        "saturated_latency_ms": [1.0, 2.0] * 3,
    }
    # Each round's own numbers stay in the figures, for a reader who wants the spread, with
    # how many failures each round had.
    assert [r["steps_per_s"] for r in out["rounds"]] == [5000, 3000, 4000]
    assert [r["failures"] for r in out["rounds"]] == [0, 1, 0]
    assert "samples" not in out["rounds"][0]


def test_the_ceiling_follows_from_the_median_cpu_not_from_its_own_median() -> None:
    """With an even count, a median is the mean of the two middle rounds, and the mean of two
    ceilings is not the ceiling of the mean CPU."""
    out = combine([round_(5000, 50, []), round_(4000, 100, [])])
    assert out["redis_cpu_us_per_step"] == 75
    assert out["redis_ceiling_steps_per_s"] == 1e6 / 75


@pytest.mark.parametrize("where", [0, 1, 2])
def test_a_round_that_measured_nothing_makes_its_figure_nan_wherever_it_is(where: int) -> None:
    """NaN sorts anywhere: a median taken with it would be a plausible number or NaN
    depending on which round broke."""
    rounds = [round_(5000, 70, []), round_(3000, 90, []), round_(4000, 60, [])]
    rounds[where]["steps_per_s"] = math.nan
    out = combine(rounds)
    assert math.isnan(out["steps_per_s"])
    assert out["redis_cpu_us_per_step"] == 70  # the other figures are unaffected


def test_one_round_is_its_own_figures() -> None:
    one = round_(5000, 70, [])
    out = combine([one])
    assert {k: out[k] for k in one} == one
    assert len(out["rounds"]) == 1


def test_a_ratio_pairs_each_round_of_ours_with_the_same_round_of_theirs() -> None:
    """The systems of a round ran minutes apart at most: a slow stretch of the machine that
    doubles both sides of one round leaves that round's ratio alone, where the ratio of the
    two medians would pair rounds run at different speeds."""
    ours = [round_(5000, 60, []), round_(5000, 120, []), round_(5000, 66, [])]
    theirs = [round_(700, 330, []), round_(700, 660, []), round_(700, 300, [])]
    ratios = paired_ratios(ours, theirs)
    assert ratios["redis_cpu_us_per_step"] == 60 / 330  # rounds' ratios: 0.182, 0.182, 0.22
    assert combine(ours)["redis_cpu_us_per_step"] / combine(theirs)["redis_cpu_us_per_step"] == (
        66 / 330
    )  # what the medians alone would have said
    assert ratios["steps_per_s"] == 5000 / 700
    assert "tasks" not in ratios and "failures" not in ratios and "samples" not in ratios


def test_a_ratio_with_a_round_that_measured_nothing_is_nan() -> None:
    ours = [round_(5000, 60, []), round_(5000, 70, [])]
    theirs = [round_(700, 330, []), round_(700, 340, [])]
    theirs[1]["redis_cpu_us_per_step"] = 0.0  # nothing to divide by
    assert math.isnan(paired_ratios(ours, theirs)["redis_cpu_us_per_step"])


def test_the_report_prints_the_paired_ratio_and_says_so() -> None:
    ours = combine([round_(5000, 60, []), round_(5000, 120, []), round_(5000, 66, [])])
    theirs = combine([round_(700, 330, []), round_(700, 660, []), round_(700, 300, [])])
    ours["vs_celery"] = {"redis_cpu_us_per_step": 60 / 330}
    console = Console(record=True, width=200)
    print_report({"agentic": ours, "celery": theirs}, console)
    text = console.export_text()
    assert "each ratio the median of the rounds' ratios" in " ".join(text.split())  # wrapped
    row = next(line for line in text.splitlines() if "Redis CPU per step" in line)
    assert "0.18x (better)" in row  # the paired ratio, not 66 / 330 = 0.20x
