import pytest

from skillvet.config import AlgoConfig, Config, ConfigError, describe, load_config, to_yaml

RECIPE = "recipes/household-tiny.yaml"


def test_defaults_match_the_method():
    cfg = load_config()
    assert cfg.algo.estimator == "gigpo"
    assert (cfg.algo.gamma, cfg.algo.step_weight, cfg.algo.clip_eps, cfg.algo.kl_coef) == (
        0.95,
        1.0,
        0.2,
        0.01,
    )


def test_dotted_overrides_are_parsed_as_yaml():
    cfg = load_config(RECIPE, ["algo.step_weight=0.5", "algo.similarity=0.9", "run.name=x y"])
    assert cfg.algo.step_weight == 0.5
    assert cfg.algo.similarity == 0.9
    assert cfg.run.name == "x y"
    assert load_config(RECIPE, ["algo.similarity=null"]).algo.similarity is None
    assert isinstance(load_config(RECIPE, ["algo.gamma=1"]).algo.gamma, float)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algo.stepweight=1", "unknown key algo.stepweight; did you mean algo.step_weight"),
        ("algorithm.gamma=1", "unknown key algorithm"),
        ("algo.gamma=abc", "algo.gamma: expected a number"),
        ("algo.gamma=1.5", r"algo.gamma: must be in \[0, 1\]"),
        ("algo.norm=std", "algo.norm: must be one of"),
        ("run.seed=1.5", "run.seed: expected an integer"),
        ("run.seed=true", "run.seed: expected an integer"),
        ("algo=3", "algo: expected a mapping"),
        ("algo.gamma.x=1", "gamma is a value, not a section"),
        ("algo.eps.x=1", "algo.eps: expected a number"),
        ("novalue", "not of the form"),
        ("sft.val_every=0", "sft.val_every: must be >= 1"),
    ],
)
def test_bad_configs_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(RECIPE, [override])


def test_answers_held_to_admissible_actions_need_the_hf_engine():
    assert load_config(RECIPE, ["sampling.admissible_only=true"]).sampling.admissible_only
    with pytest.raises(ConfigError, match=r"admissible_only: needs sampling\.engine=hf"):
        load_config(RECIPE, ["sampling.admissible_only=true", "sampling.engine=vllm"])


def test_resolved_yaml_round_trips_and_carries_docs(tmp_path):
    cfg = load_config(RECIPE, ["algo.step_weight=0.25", "algo.similarity=0.9"])
    text = to_yaml(cfg)
    assert "# w in A = A^E + w * A^S" in text
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert load_config(path) == cfg


def test_every_field_has_a_docstring():
    for cls in (Config, AlgoConfig):
        import dataclasses

        names = {f.name for f in dataclasses.fields(cls)}
        assert names <= set(describe(cls)), names - set(describe(cls))


def test_missing_file_and_bad_top_level(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_exponent_without_a_dot_is_a_number():
    from skillvet.config import ConfigError, load_config

    assert load_config(None, ["train.lr=5e-4"]).train.lr == 5e-4
    with pytest.raises(ConfigError, match=r"train\.lr: expected a number"):
        load_config(None, ["train.lr=fast"])


def test_the_defaults_are_the_default_recipe():
    """`skillvet train` with no recipe runs the defaults; the README says they are this recipe."""
    assert to_yaml(load_config()) == to_yaml(load_config(RECIPE))


def test_a_run_directory_written_before_settings_were_retired_still_loads(tmp_path):
    from skillvet.config import RETIRED, to_yaml

    written = to_yaml(load_config(RECIPE), comments=False)
    old = written.replace("sft:\n", "sft:\n  decoy_share: 0.0\n  save_every: 0\n", 1)
    assert old != written
    (tmp_path / "old.yaml").write_text(old)
    assert load_config(tmp_path / "old.yaml") == load_config(RECIPE)  # off values: dropped
    assert "sft.decoy_share" in RETIRED
    with pytest.raises(ConfigError, match=r"sft\.decoy_share: this setting was removed"):
        load_config(RECIPE, ["sft.decoy_share=0.5"])
    with pytest.raises(ConfigError, match="explore was removed"):
        load_config(RECIPE, ["env.household.expert=explore"])
