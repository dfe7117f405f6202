"""The household world: groups, invalid actions, experts, splits and rules."""

import random

import pytest

from skillvet.config import ConfigError, HouseholdConfig
from skillvet.envs import make_group
from skillvet.envs.household import (
    HouseholdSource,
    admissible_actions,
    expert_plan,
    generate,
    state_key,
)
from skillvet.envs.protocol import NOTHING_HAPPENS
from skillvet.types import SUCCESS_REWARD, TASK_TYPES


@pytest.fixture(scope="module")
def source():
    return HouseholdSource(max_steps=30)


def play(env, actions):
    results = [env.reset()]
    for action in actions:
        if results[-1].done:
            break
        results.append(env.step(action))
    return results


def test_group_copies_are_identical(source):
    rng = random.Random(0)
    for task in source.tasks("train")[:24]:
        group = make_group(source, task, 4)
        firsts = [env.reset() for env in group]
        assert all(r == firsts[0] for r in firsts)
        # the same actions give the same results in every copy
        actions = [rng.choice(firsts[0].admissible) for _ in range(10)]
        histories = [play(source.make(task), actions) for _ in range(3)]
        assert histories[0] == histories[1] == histories[2]


def test_worlds_are_deterministic_and_seeds_differ(source):
    task_a, _task_b = source.tasks("train")[:2]
    assert generate(task_a.task_type, int(task_a.id), source.cfg) == generate(
        task_a.task_type, int(task_a.id), source.cfg
    )
    first = source.tasks("train")[0]
    other = source.tasks("train")[len(TASK_TYPES)]  # same type, next seed
    assert first.task_type == other.task_type
    assert source.make(first).reset().observation != source.make(other).reset().observation


@pytest.mark.parametrize(
    "action",
    [
        "",
        "   ",
        "asdfgh",
        "go to the moon",
        "x" * 10_000,
        "öffne den Kühlschrank 1",
        "take 🍎 from table",
        "go to\x00cabinet 1",
        "\x1b[31mlook\x1b[0m",
        "<action>look</action>",
        "go to cabinet 99",
    ],
)
def test_invalid_actions_change_nothing(source, action):
    env = source.make(source.tasks("eval")[3])
    start = env.reset()
    result = env.step(action)
    assert result.action_valid is False
    assert result.observation == "Nothing happens."
    assert result.anchor == start.anchor
    assert result.admissible == start.admissible
    assert result.reward == 0.0 and not result.done


def test_case_and_spacing_do_not_matter(source):
    env = source.make(source.tasks("eval")[0])
    first = env.reset()
    target = next(a for a in first.admissible if a.startswith("go to"))
    result = env.step("  " + target.upper().replace(" ", "   ") + " \n")
    assert result.action_valid
    assert result.observation.startswith("You arrive at")


@pytest.mark.parametrize("split", ["train", "eval"])
def test_expert_wins_every_task_type(source, split):
    tasks = source.tasks(split)[:120]
    assert {t.task_type for t in tasks} == set(TASK_TYPES)
    for task in tasks:
        results = play(source.make(task), source.expert(task))
        assert results[-1].won, task
        assert results[-1].reward == SUCCESS_REWARD
        assert all(r.action_valid for r in results)
        assert not any(r.won for r in results[:-1])


def test_random_play_never_breaks_the_rules(source):
    rng = random.Random(1)
    for task in source.tasks("train")[:60]:
        env = source.make(task)
        result = env.reset()
        while not result.done:
            before = result
            result = env.step(rng.choice(result.admissible))
            assert result.action_valid
            assert result.admissible == tuple(sorted(result.admissible))
            if result.anchor == before.anchor:  # look, inventory, examine: nothing moved
                assert result.admissible == before.admissible
        assert result.won or env.steps == env.max_steps


def test_step_limit_ends_the_episode():
    source = HouseholdSource(max_steps=3)
    env = source.make(source.tasks("train")[0])
    env.reset()
    results = [env.step("look") for _ in range(3)]
    assert [r.done for r in results] == [False, False, True]
    assert not results[-1].won
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step("look")


def test_splits_are_disjoint_and_types_can_be_held_out():
    cfg = HouseholdConfig(
        train_types=["pick_and_place", "pick_heat_then_place"], eval_types=["pick_cool_then_place"]
    )
    source = HouseholdSource(cfg)
    train, evals = source.tasks("train"), source.tasks("eval")
    assert {t.task_type for t in train} == {"pick_and_place", "pick_heat_then_place"}
    assert {t.task_type for t in evals} == {"pick_cool_then_place"}
    assert not {t.id for t in train} & {t.id for t in evals}
    with pytest.raises(ValueError, match="no split"):
        source.tasks("test")


def test_config_refuses_unknown_task_types():
    with pytest.raises(ConfigError, match="unknown task types"):
        HouseholdConfig(train_types=["make_coffee"])


def test_difficulty_knobs_shape_the_world():
    for n in (8, 20):
        cfg = HouseholdConfig(num_receptacles=n, closed_share=1.0, distractors=0)
        world, _goal = generate("pick_and_place", 5, cfg)
        assert len(world.receptacles) >= n
        assert all(not is_open for is_open in world.is_open.values())
        assert len(world.otype) == 1  # only the task's object


def test_anchor_is_the_state_not_the_text(source):
    task = source.tasks("train")[0]
    env = source.make(task)
    first = env.reset()
    again = env.step("look")
    assert again.anchor == first.anchor  # looking changes nothing
    world, _ = generate(task.task_type, int(task.id), source.cfg)
    assert first.anchor == state_key(world)
    assert tuple(admissible_actions(world)) == first.admissible


def test_the_search_expert_wins_without_reading_hidden_state():
    source = HouseholdSource(HouseholdConfig(expert="search"), max_steps=40)
    oracle = HouseholdSource(HouseholdConfig(expert="oracle"), max_steps=40)
    longer = 0
    for task in source.tasks("eval")[:120]:
        env = source.make(task)
        result = env.reset()
        for action in source.expert(task):
            # it only ever takes what the current observation shows
            if action.startswith("take "):
                assert action.split(" from ")[0][5:] in result.observation
            result = env.step(action)
            assert result.action_valid
        assert result.won
        longer += len(source.expert(task)) > len(oracle.expert(task))
    assert longer > 30  # searching costs steps the oracle does not take


def test_an_unknown_expert_is_refused():
    source = HouseholdSource()
    task = source.tasks("train")[0]
    world, goal = generate(task.task_type, int(task.id), source.cfg)
    with pytest.raises(ValueError, match="unknown household expert"):
        expert_plan(world, goal, mode="serch")


@pytest.mark.parametrize("expert", ["oracle", "search"])
def test_a_second_heater_gives_heating_two_correct_procedures(expert):
    heat = "pick_heat_then_place"
    two = HouseholdSource(
        HouseholdConfig(expert=expert, heat_appliances=["microwave", "stoveburner"]), max_steps=40
    )
    one = HouseholdSource(HouseholdConfig(expert=expert), max_steps=40)
    used = set()
    for task in [t for t in two.tasks("train") if t.task_type == heat][:40]:
        results = play(two.make(task), two.expert(task))
        assert results[-1].won and all(r.action_valid for r in results[1:])
        heating = [a for a in two.expert(task) if a.startswith("heat ")]
        used.add(heating[0].split(" with ")[1].rsplit(" ", 1)[0])
        goal = generate(heat, int(task.id), two.cfg)[1]
        assert goal.target not in ("microwave", "stoveburner")  # never delivered into a heater
        # ALFWorld's rule by default: heating only at the microwave
        assert all(" with microwave" in a for a in one.expert(task) if a.startswith("heat "))
    assert used == {"microwave", "stoveburner"}  # the seed picks the appliance, both occur


def _heat_at(source: HouseholdSource, task, heater: str) -> str:
    """Play the task's expert up to its heating step, then heat at `heater`: the observation."""
    env = source.make(task)
    env.reset()
    plan = source.expert(task)
    heat = next(i for i, a in enumerate(plan) if a.startswith("heat "))
    for action in plan[:heat]:
        env.step(action)
    station = next(r for r in env.world.receptacles if env.world.rtype[r] == heater)
    if env.world.at != station:
        assert env.step(f"go to {station}").action_valid
    obj = env.world.holding
    result = env.step(f"heat {obj} with {station}")
    assert result.action_valid  # admissible wherever it heats or not
    assert ("hot" in env.world.props.get(obj, set())) is (result.observation != NOTHING_HAPPENS)
    return result.observation


@pytest.mark.parametrize("expert", ["oracle", "search"])
def test_with_one_working_heater_the_expert_heats_there_and_the_other_does_nothing(expert):
    heat = "pick_heat_then_place"
    both = ["microwave", "stoveburner"]
    drawn = HouseholdSource(
        HouseholdConfig(expert=expert, heat_appliances=both, working_heater="drawn"), max_steps=40
    )
    stove = HouseholdSource(
        HouseholdConfig(expert=expert, heat_appliances=both, working_heater="stoveburner"),
        max_steps=40,
    )
    anyone = HouseholdSource(HouseholdConfig(expert=expert, heat_appliances=both), max_steps=40)
    working = set()
    for task in [t for t in drawn.tasks("train") if t.task_type == heat][:30]:
        plan = drawn.expert(task)
        assert plan == anyone.expert(task)  # the drawn heater is the one its expert used before
        results = play(drawn.make(task), plan)
        assert results[-1].won and all(r.action_valid for r in results[1:])
        used = next(a for a in plan if a.startswith("heat ")).split(" with ")[1].rsplit(" ", 1)[0]
        other = next(h for h in both if h != used)
        working.add(used)
        assert _heat_at(drawn, task, used) != NOTHING_HAPPENS
        assert _heat_at(drawn, task, other) == NOTHING_HAPPENS
        assert _heat_at(anyone, task, other) != NOTHING_HAPPENS
        assert " with stoveburner" in next(a for a in stove.expert(task) if a.startswith("heat "))
        assert play(stove.make(task), stove.expert(task))[-1].won
        assert _heat_at(stove, task, "microwave") == NOTHING_HAPPENS
    assert working == set(both)  # which one works differs from task to task
    with pytest.raises(ConfigError, match="working_heater"):
        HouseholdConfig(working_heater="stoveburner")  # not among heat_appliances
    with pytest.raises(ConfigError, match="working_heater"):
        HouseholdConfig(working_heater="drawn")  # nothing to draw from


def test_heating_at_the_stove_is_admissible_only_when_configured():
    for heaters, admissible in ((["microwave"], False), (["microwave", "stoveburner"], True)):
        world, _goal = generate("pick_heat_then_place", 3, HouseholdConfig(heat_appliances=heaters))
        world.holding = next(iter(world.otype))
        world.location.pop(world.holding)
        world.at = next(r for r in world.receptacles if world.rtype[r] == "stoveburner")
        assert any(a.startswith("heat ") for a in admissible_actions(world)) is admissible
    with pytest.raises(ConfigError, match="heat_appliances"):
        HouseholdConfig(heat_appliances=["fridge"])
    with pytest.raises(ConfigError, match="heat_appliances"):
        HouseholdConfig(heat_appliances=[])
