"""Fuzzing with hypothesis: whatever a model writes (any bytes, tags, unicode, huge texts) goes
through the action parser and each environment's `step` without an exception, and whatever a
skill says reaches the prompt without a chat marker or a special token.

The number of outputs per environment is `SKILLVET_FUZZ` (default 10,000 for the parser and the
built-in worlds and for skill texts; ALFWorld, TextWorld and ScienceWorld take a fiftieth, as a
step of theirs costs milliseconds and an episode's game takes long to load); each test prints
what it tried."""

from __future__ import annotations

import importlib.util
import os
import tempfile

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from skillvet.config import EnvConfig, TextworldConfig  # noqa: E402
from skillvet.envs import make_source  # noqa: E402
from skillvet.prompts import build_prompt, parse_action  # noqa: E402
from skillvet.skills.text import _MARKERS, parse_skill, sanitize, skills_block  # noqa: E402

COUNT = int(os.environ.get("SKILLVET_FUZZ", "10000"))
PIECES = [
    "<action>",
    "</action>",
    "<think>",
    "</think>",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "</s>",
    "[INST]",
    "go to ",
    "take ",
    " from ",
    "cabinet 1",
    "\n",
    "\x00",
    "\u202e",
    "🙂",
    " " * 40,
    "Title:",
    "When:",
    "Procedure:",
    "<",
    ">",
    "|",
    "\ud7ff",
    "ﬁ",
    "İ",
]

answers = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=12)), max_size=40).map("".join),
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", errors="replace")),
    st.integers(1_000, 50_000).map(lambda n: "<action>" + "x" * n),
)
FAST = settings(
    max_examples=COUNT, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
SLOW = settings(
    max_examples=max(COUNT // 50, 1),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@FAST
@given(answers)
def test_the_action_parser_takes_any_answer(answer):
    action = parse_action(answer)
    assert action is None or (
        isinstance(action, str) and action == " ".join(action.split()) and action
    )
    closed = parse_action(answer, stopped_at_close=True)
    assert closed is None or (isinstance(closed, str) and closed == " ".join(closed.split()))


class Stepper:
    """One environment stepped with fuzzed actions; a finished episode starts a new task."""

    def __init__(self, source) -> None:
        # a few tasks in turn: their games load once (TextWorld compiles each game it first plays)
        self.source, self.tasks, self.k, self.tried = (
            source,
            source.tasks(next(iter(source.splits())))[:3],
            0,
            0,
        )
        self.env = None

    def step(self, answer: str) -> None:
        if self.env is None:
            self.env = self.source.make(self.tasks[self.k % len(self.tasks)])
            self.env.reset()
            self.k += 1
        action = parse_action(answer)
        result = self.env.step(action if action is not None else answer)
        self.tried += 1
        assert isinstance(result.observation, str) and result.error is None
        if not result.action_valid:
            assert result.reward == 0
        if result.done:
            self.env.close()
            self.env = None


def _fuzz(source, strength) -> int:
    stepper = Stepper(source)

    @strength
    @given(answers)
    def run(answer):
        stepper.step(answer)

    run()
    print(
        f"\n{source.name}: {stepper.tried} fuzzed outputs stepped, {stepper.k} episodes, "
        "no exception"
    )
    return stepper.tried


def test_household_steps_any_output():
    assert _fuzz(make_source(EnvConfig(name="household", max_steps=30)), FAST) >= COUNT // 2


def test_sokoban_steps_any_output():
    if importlib.util.find_spec("gym_sokoban") is None:
        pytest.skip("gym-sokoban is not installed")
    assert _fuzz(make_source(EnvConfig(name="sokoban", max_steps=30)), FAST) >= COUNT // 2


def test_textworld_steps_any_output(tmp_path_factory):
    if importlib.util.find_spec("textworld") is None:
        pytest.skip("textworld is not installed")
    cfg = TextworldConfig(cache_dir=str(tmp_path_factory.mktemp("tw")), level=1)
    assert _fuzz(make_source(EnvConfig(name="textworld", max_steps=50, textworld=cfg)), SLOW) >= 1


def test_alfworld_steps_any_output(shared):
    if importlib.util.find_spec("alfworld") is None:
        pytest.skip("alfworld is not installed")
    source = make_source(EnvConfig(name="alfworld", data=str(shared / "alfworld"), max_steps=200))
    assert _fuzz(source, SLOW) >= 1


def test_scienceworld_steps_any_output():
    if importlib.util.find_spec("scienceworld") is None:
        pytest.skip("scienceworld is not installed")
    from skillvet.config import ScienceworldConfig

    source = make_source(
        EnvConfig(name="scienceworld", max_steps=100, scienceworld=ScienceworldConfig(workers=1))
    )
    try:
        assert _fuzz(source, SLOW) >= 1
    finally:
        source.close()


skill_texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=20)), max_size=30).map("".join),
)


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from skillvet.config import TinyModelConfig
    from skillvet.policy.models import build_tiny, chatml_text

    folder = build_tiny(
        [chatml_text("put a mug on desk", "<action>go to desk 1</action>")] * 20,
        TinyModelConfig(layers=1, hidden=32, heads=2, vocab_size=300, tokenizer_tasks=1),
        tempfile.mkdtemp(),
        seed=0,
    )
    return AutoTokenizer.from_pretrained(folder)


def test_skill_texts_reach_the_prompt_without_markers(tokenizer):
    specials = list(tokenizer.all_special_tokens)
    plain = build_prompt(
        "put a mug on desk", "You see a desk 1.", [], ["go to desk 1"], skills_section=True
    )
    plain_specials = sum(i in tokenizer.all_special_ids for i in tokenizer(plain)["input_ids"])
    tried = 0

    @FAST
    @given(st.lists(skill_texts, min_size=1, max_size=3), skill_texts)
    def run(texts, answer):
        nonlocal tried
        written = parse_skill(answer)
        shown = skills_block([*texts, *([written.text()] if written else [])], 200, 700, specials)
        for line in shown:
            assert not _MARKERS.search(line) and "\n" not in line and len(line) <= 200
            assert all(token not in line for token in specials if token)
        prompt = build_prompt(
            "put a mug on desk",
            "You see a desk 1.",
            [],
            ["go to desk 1"],
            skills=shown,
            skills_section=True,
        )
        ids = tokenizer(prompt)["input_ids"]
        assert sum(i in tokenizer.all_special_ids for i in ids) == plain_specials
        assert sanitize(sanitize("".join(texts), specials), specials) == sanitize(
            "".join(texts), specials
        )
        tried += 1

    run()
    print(
        f"\nskill texts: {tried} fuzzed blocks into prompts, no marker or special token reached one"
    )
    assert tried >= COUNT // 2
