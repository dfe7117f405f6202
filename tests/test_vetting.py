"""What a vetting pair measures: the augmented block is the base block plus the candidate, both
halves show the skills section, and a placebo arm separates a block's presence from its content.

The policy here is a test double that reads its whole prompt except the skill lines: where a
skill says nothing it can act on, a faithful measurement gives u = 0 on every pair."""

from __future__ import annotations

import hashlib
import re
from types import SimpleNamespace

import pytest

from skillvet.config import HouseholdConfig
from skillvet.envs.household import HouseholdSource
from skillvet.policy.hf import Generation
from skillvet.prompts import build_prompt
from skillvet.skills.text import Skill, augmented_blocks, placebo_skill, skills_block
from skillvet.skills.vet import vet

torch = pytest.importorskip("torch")


class SkillBlindPolicy:
    """Chooses an admissible action from a hash of its prompt with the listed skills removed
    (the section's header stays, so it reacts to a block being there) and its own draw."""

    device = torch.device("cpu")
    tokenizer = SimpleNamespace(all_special_tokens=[])

    def __init__(self) -> None:
        self.texts: list[str] = []

    def encode_prompt(self, text: str) -> list[int]:
        self.texts.append(text)
        return [len(self.texts) - 1]

    def generate(
        self,
        prompts,
        max_new_tokens,
        temperature=1.0,
        generator=None,
        row_generators=None,
        stop_text=None,
    ):
        out = []
        for b, ids in enumerate(prompts):
            text = self.texts[ids[0]]
            seen = re.sub(r"(?m)^- .*\n?", "", text)  # every listed skill, "- (none)" included
            actions = re.findall(r"'([^']+)'", text.split("Admissible actions:")[1])
            draw = float(torch.rand((), generator=row_generators[b])) if row_generators else 0.0
            h = int(hashlib.sha256(seen.encode()).hexdigest(), 16)
            action = actions[(h + int(draw * 7)) % len(actions)]
            out.append(Generation([1, 2], [-0.1, -0.1], f"<action>{action}</action>", "stop"))
        return out


LONG = [Skill(f"Skill {c}", "the task is to do a thing", "x" * 340).text() for c in "ABC"]


def test_the_augmented_block_is_the_base_block_plus_the_candidate_even_with_long_skills():
    candidate = Skill("New", "the task is to do a thing", "y" * 340).text()
    base, augmented = augmented_blocks(candidate, LONG, max_skill_chars=400, max_block_chars=1200)
    assert augmented[0].startswith("New") and augmented[1:] == base and len(base) >= 1
    # filling the whole budget with retrieved skills, as a plain block does, would lose one to
    # the candidate
    plain = skills_block(LONG, 400, 1200)
    assert len(plain) == 3 and skills_block([candidate, *LONG], 400, 1200)[1:] != plain
    with pytest.raises(ValueError, match="no room"):
        augmented_blocks(candidate, LONG, max_skill_chars=400, max_block_chars=300)


def test_an_empty_skills_section_keeps_its_header():
    args = ("put a mug on desk", "You see a desk.", [], ["look"])
    empty = build_prompt(*args, skills_section=True)
    shown = build_prompt(
        *args, skills=["Carry. When: always. Procedure: take it"], skills_section=True
    )
    assert "Skills that may help" in empty and "- (none)" in empty
    assert empty.replace("- (none)", "- Carry. When: always. Procedure: take it") == shown
    assert "Skills that may help" not in build_prompt(*args)


@pytest.mark.parametrize("base_skills", [[], LONG[:1]])
def test_a_skill_the_policy_cannot_act_on_measures_zero_on_every_pair(base_skills):
    source = HouseholdSource(HouseholdConfig(), max_steps=8)
    tasks = source.tasks("eval")[:6]
    nothing = Skill("Note", "any task", "there is nothing to say here")
    result = vet(
        SkillBlindPolicy(), source, tasks, nothing, pairs=3, base_skills=base_skills, placebo=True
    )
    assert result["identical_pairs"] == result["pairs"] == 18
    assert result["U"] == 0.0 and all(t["u"] == 0.0 for t in result["per_task"])
    assert result["placebo"]["U"] == 0.0 and result["U_vs_placebo"]["U"] == 0.0
    assert result["base_skills"] == base_skills


def test_the_placebo_is_as_long_as_the_skill_and_says_nothing_of_it():
    skill = Skill(
        "Heat then place",
        "the task is to put a hot X in Y",
        "find X; take X; go to microwave; heat X with microwave; go to Y; move X to Y",
    )
    neutral = placebo_skill(skill)
    assert len(neutral.text()) == len(skill.text())
    words = set(re.findall(r"[a-z]+", neutral.text().lower()))
    assert not words & {"heat", "microwave", "take", "find", "move", "go", "put", "hot"}
    assert len(placebo_skill(Skill("A", "b", "c" * 300)).text()) == len(
        Skill("A", "b", "c" * 300).text()
    )
