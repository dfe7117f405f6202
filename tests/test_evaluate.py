import pytest

from skillvet.evaluate import format_summary, summarize
from skillvet.types import Episode, Step, Task


def _episode(actions: list[tuple[str | None, bool]], won: bool) -> Episode:
    e = Episode(Task("household", "eval", "1", "pick_and_place"), 0, 0, "goal")
    for action, valid in actions:
        e.steps.append(Step([1], [2], [-0.1], "a", action, "s", 0.0, valid, "o"))
    e.won = won
    return e


def test_the_summary_counts_invalid_actions_by_first_word_and_the_loops_they_make():
    episodes = [
        _episode(
            [
                ("go to fridge 1", True),
                ("take knife 1 from fridge 1", False),
                ("take knife 1 from fridge 1", False),  # the same again: a loop
                ("take knife 1 from fridge 1", False),
                ("go to fridge 1", False),
            ],
            won=False,
        ),
        _episode([(None, False), (None, False), ("go to cabinet 1", True)], won=True),
    ]
    summary = summarize(episodes)
    assert summary["invalid_rate"] == pytest.approx(6 / 8)
    assert summary["invalid_by_word"] == pytest.approx(
        {"take": 3 / 8, "(none)": 2 / 8, "go": 1 / 8}
    )
    assert list(summary["invalid_by_word"]) == ["take", "(none)", "go"]  # most first
    # two repeated takes and a second answer without an action; an episode's first step
    # repeats nothing
    assert summary["invalid_repeats"] == pytest.approx(3 / 8)
    assert "invalid actions of all steps: take 37.5%, (none) 25.0%, go 12.5%" in format_summary(
        summary
    )
    assert "repeating the step before 37.5%" in format_summary(summary)


def test_a_summary_without_invalid_actions_prints_no_breakdown():
    summary = summarize([_episode([("look", True)], won=True)])
    assert summary["invalid_by_word"] == {} and summary["invalid_repeats"] == 0.0
    assert "invalid actions of all steps" not in format_summary(summary)
