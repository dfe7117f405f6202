import pytest

from skillvet.prompts import Turn, build_prompt, parse_action


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("<think>hm</think><action>go to cabinet 1</action>", "go to cabinet 1"),
        (
            "<action>look</action> then <action>  take  mug 1 from desk 1 </action>",
            "take mug 1 from desk 1",
        ),
        ("<ACTION>open fridge 1</ACTION>", "open fridge 1"),
        ("<action>\ngo to\n desk 1\n</action>", "go to desk 1"),
        ("no tags at all", None),
        ("<action></action>", None),
        ("<action>   </action>", None),
        ("<action>go to desk 1", None),  # unclosed and not stopped at the tag: invalid
        ("<think><action>x</action></think> <action>y", "x"),
    ],
)
def test_parse_action(answer, expected):
    assert parse_action(answer) == expected


def test_parse_action_when_generation_stopped_at_the_closing_tag():
    assert (
        parse_action("<think>ok</think><action>go to desk 1", stopped_at_close=True)
        == "go to desk 1"
    )
    assert (
        parse_action("<action>look</action><action>inventory", stopped_at_close=True) == "inventory"
    )
    assert parse_action("just words", stopped_at_close=True) is None


def test_prompt_shows_last_h_steps_actions_and_skills():
    history = [Turn(f"o{i}", f"a{i}") for i in range(5)]
    prompt = build_prompt(
        "put a mug in desk.",
        "You arrive at desk 1.",
        history,
        ["look", "inventory"],
        skills=["Find the object first."],
        history_length=2,
    )
    assert "Your task is to: put a mug in desk." in prompt
    assert "[step 4] observation: o3\naction: a3" in prompt
    assert "[step 5] observation: o4\naction: a4" in prompt
    assert "a2" not in prompt and "o2" not in prompt
    assert "You have taken 5 step(s)" in prompt
    assert "Current observation (step 6)" in prompt
    assert "'look', 'inventory'" in prompt
    assert "- Find the object first." in prompt
    assert prompt.rstrip().endswith("</action> tags.")


def test_prompt_restates_the_task_after_the_current_observation():
    prompt = build_prompt(
        "heat some egg and put it in countertop.",
        "You pick up the egg 1 from the fridge 1.",
        [Turn("You arrive at fridge 1.", "take egg 1 from fridge 1")],
        ["go to microwave 1", "go to fridge 1"],
    )
    head, tail = prompt.split("Current observation (step 2)")
    assert head.startswith("You are an agent in a text world. Your task is to: heat some egg")
    assert tail.count("Your task is to: heat some egg and put it in countertop.") == 1
    assert tail.index("Admissible actions") < tail.index("Your task is to:")
    assert tail.index("Your task is to:") < tail.index("Think about the situation")


def test_prompt_without_history_actions_or_skills():
    prompt = build_prompt("push every box onto a target.", "grid", [], None)
    assert "step(s)" not in prompt and "Admissible" not in prompt and "Skills" not in prompt
    assert "Current observation (step 1)" in prompt
