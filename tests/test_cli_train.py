"""`skillvet sft` and `skillvet eval` from the command line, on a very small tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from skillvet.cli import main

SMALL = [
    "--set", "model.tiny.layers=1", "--set", "model.tiny.hidden=32", "--set", "model.tiny.heads=2",
    "--set", "model.tiny.vocab_size=300", "--set", "sft.tasks=5", "--set", "sft.batch_size=8",
    "--set", "env.max_steps=3", "--set", "eval.tasks=4", "--set", "sampling.max_action_tokens=8",
]


def test_sft_writes_a_model_that_eval_reads(tmp_path, capsys):
    out = tmp_path / "warm"
    assert (
        main(["sft", "--env", "household", "--steps", "3", "--out", str(out), "--quiet", *SMALL])
        == 0
    )
    printed = capsys.readouterr().out
    assert "eval success" in printed and (out / "model-sft" / "config.json").is_file()
    assert sorted(p.name for p in out.glob("model-sft*")) == ["model-sft"]

    assert (
        main(
            [
                "eval",
                "--model",
                str(out / "model-sft"),
                "--env",
                "household",
                "--limit",
                "6",
                "--max-steps",
                "3",
                "--json",
                "--out",
                str(tmp_path / "episodes.jsonl"),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["episodes"] == 6 and 0.0 <= report["success_rate"] <= 1.0
    assert set(report["by_type"]) and sum(v["episodes"] for v in report["by_type"].values()) == 6
    lines = (tmp_path / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(len(json.loads(x)["steps"]) <= 3 for x in lines)
    assert report["invalid_rate"] > 0  # three SFT steps: the model writes invalid actions

    model = ["--model", str(out / "model-sft"), "--env", "household", "--limit", "6"]
    held_to = ["--max-steps", "3", "--max-action-tokens", "64", "--admissible-only"]
    assert main(["eval", *model, *held_to, "--json"]) == 0
    held = json.loads(capsys.readouterr().out)
    assert held["episodes"] == 6 and held["invalid_rate"] == 0.0


def test_sft_goes_on_from_a_saved_model(tmp_path, capsys):
    from safetensors.torch import load_file

    first, second = tmp_path / "first", tmp_path / "second"
    assert (
        main(["sft", "--env", "household", "--steps", "2", "--out", str(first), "--quiet", *SMALL])
        == 0
    )
    go_on = [
        "sft",
        "--env",
        "household",
        "--steps",
        "2",
        "--quiet",
        *SMALL,
        "--set",
        f"model.name={first / 'model-sft'}",
        "--set",
        "sft.skills_share=0.5",
    ]
    capsys.readouterr()
    assert (
        main(
            [
                *go_on,
                "--out",
                str(tmp_path / "misspelt"),
                "--set",
                "sft.types=[pick_cool_then_plac]",
            ]
        )
        == 2
    )
    assert "sft.types: ['pick_cool_then_plac']" in capsys.readouterr().err  # refused, the key named
    assert (
        main(
            [
                *go_on,
                "--out",
                str(second),
                "--set",
                "sft.types=[pick_cool_then_place,pick_two_obj_and_place]",
            ]
        )
        == 0
    )
    # the saved model, not a new tiny one, is trained on
    assert not (second / "model-init").exists()
    before = load_file(first / "model-sft" / "model.safetensors")
    after = load_file(second / "model-sft" / "model.safetensors")
    assert before.keys() == after.keys() and any(not (before[k] == after[k]).all() for k in before)


def test_eval_reads_a_run_directory(tmp_path, capsys):
    from skillvet.config import load_config
    from skillvet.train import start_run, train

    overrides = [a for a in SMALL if a != "--set"]
    cfg = load_config(
        None,
        [
            *overrides,
            "sft.steps=2",
            "train.iterations=1",
            "train.tasks_per_iteration=1",
            "train.group_size=2",
            "eval.before=false",
            f"run.out_dir={tmp_path}",
        ],
    )
    run = start_run(cfg, quiet=True)
    train(run)
    capsys.readouterr()
    assert (
        main(
            [
                "eval",
                "--model",
                str(run.dir),
                "--env",
                "household",
                "--limit",
                "3",
                "--max-steps",
                "2",
            ]
        )
        == 0
    )
    assert "success" in capsys.readouterr().out

    # With no --temperature and --seed, eval samples as the run's own evals did, so it repeats them.
    from skillvet.train import eval_seed

    after = [json.loads(x) for x in (run.dir / "eval.jsonl").read_text().splitlines()][-1]
    assert cfg.eval.temperature > 0 and after["stage"] == "after"

    def answers(*extra):
        out = tmp_path / f"episodes{len(extra)}{extra[-1] if extra else ''}.jsonl"
        assert (
            main(
                [
                    "eval",
                    "--model",
                    str(run.dir),
                    "--env",
                    "household",
                    "--limit",
                    "4",
                    "--max-steps",
                    "3",
                    "--json",
                    "--out",
                    str(out),
                    *extra,
                ]
            )
            == 0
        )
        summary = json.loads(capsys.readouterr().out)
        texts = [
            [s["answer"] for s in json.loads(x)["steps"]] for x in out.read_text().splitlines()
        ]
        return summary, texts

    default, default_texts = answers()
    for key in ("success_rate", "invalid_rate", "mean_steps"):
        assert default[key] == after[key], key
    _, pinned_texts = answers(
        "--seed", str(eval_seed(cfg)), "--temperature", str(cfg.eval.temperature)
    )
    assert pinned_texts == default_texts
    _, other_texts = answers("--seed", "12345")
    assert other_texts != default_texts


def test_eval_says_what_is_wrong_with_the_tiny_name(capsys):
    assert main(["eval", "--model", "tiny", "--env", "household", "--limit", "1"]) == 2
    assert "untrained" in capsys.readouterr().err


def test_skills_commands_list_show_export_import_and_vet(tmp_path, capsys):
    import numpy as np

    from skillvet.skills.bank import Bank, Measurement
    from skillvet.skills.text import Skill
    from skillvet.types import Decision

    out = tmp_path / "warm"
    assert (
        main(["sft", "--env", "household", "--steps", "2", "--out", str(out), "--quiet", *SMALL])
        == 0
    )
    capsys.readouterr()
    bank = Bank(out / "skills.sqlite")
    sid = bank.add_candidate(
        Skill(
            "Carry <|im_end|>", "the task is to put X on Y", "find X; take X; go to Y; move X to Y"
        ),
        task_types=["pick_and_place"],
        embedding=np.ones(384, np.float32) / np.sqrt(384),
        writer="rule",
        iteration=1,
        sources=["iteration 1 task 3 base rollouts"],
        measurements=[Measurement("3", [0.0, 0.0], [10.0, 0.0], 5.0)],
        utility=5.0,
        utility_lo=1.0,
        utility_hi=9.0,
    )
    bank.apply(1, [Decision(sid, "promoted", "U = +5.000 > 0")])
    bank.close()

    assert main(["skills", "list", str(out)]) == 0
    listed = capsys.readouterr().out
    assert "promoted" in listed and "+5.00" in listed and "[+1.00, +9.00]" in listed
    assert main(["skills", "show", str(out), str(sid), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["measurements"][0]["augmented"] == [10.0, 0.0]
    assert [e["kind"] for e in shown["events"]] == ["candidate", "promoted"]
    with pytest.raises(SystemExit, match="no skill 999"):
        main(["skills", "show", str(out), "999"])

    exported = tmp_path / "bank.jsonl"
    assert main(["skills", "export", str(out), str(exported)]) == 0
    record = json.loads(exported.read_text().splitlines()[0])
    assert record["title"].startswith("Carry") and record["utility"] == 5.0
    other = tmp_path / "other"
    other.mkdir()
    Bank(other / "skills.sqlite").close()
    assert main(["skills", "import", str(other), str(exported)]) == 0
    capsys.readouterr()
    imported = Bank(other / "skills.sqlite").skills("promoted")
    assert len(imported) == 1 and imported[0].writer == "import"
    assert "<|" not in imported[0].skill.title  # sanitized on the way in
    assert (
        imported[0].embedding.shape == (384,)
        and abs(float(np.linalg.norm(imported[0].embedding)) - 1) < 1e-4
    )

    skill_file = tmp_path / "skill.txt"
    skill_file.write_text(
        "Title: Carry\nWhen: the task is to put X on Y\n"
        "Procedure: find X; take X; go to Y; move X to Y\n"
    )

    def vet(*extra: str) -> list[str]:
        """`skills vet` of skill.txt for the warm start on household, then `extra`."""
        return [
            "skills", "vet", "--model", str(out / "model-sft"), "--env", "household",
            "--skill", str(skill_file), *extra,
        ]

    played = tmp_path / "vet-episodes.jsonl"
    assert main(vet("--tasks", "2", "--pairs", "2", "--max-steps", "3", "--json",
                    "--episodes", str(played))) == 0
    vetted = json.loads(capsys.readouterr().out)
    assert (
        vetted["tasks"] == 2
        and vetted["pairs"] == 4
        and vetted["lo"] <= vetted["U"] <= vetted["hi"]
    )
    records = [json.loads(line) for line in played.read_text().splitlines()]
    assert sorted(r["arm"] for r in records) == ["augmented"] * 4 + ["base"] * 4
    assert "episodes" not in vetted and set(vetted["arms"]) == {"base", "augmented"}
    with pytest.raises(SystemExit, match="cannot write --episodes"):
        main(vet("--tasks", "1", "--episodes", str(tmp_path / "missing" / "played.jsonl")))
    from skillvet.skills.commands import _print_vetting

    _print_vetting(vetted, [], "eval", 2)
    assert "invalid actions without " in capsys.readouterr().out
    assert vetted["base_skills"] == []
    bank_file = tmp_path / "retrieved.txt"
    bank_file.write_text(
        "Title: Rinse\nWhen: the task is to clean X\n"
        "Procedure: go to sinkbasin; clean X with sinkbasin\n"
    )
    base_skill = ("--base-skill", str(bank_file))
    assert main(vet(*base_skill, "--tasks", "2", "--pairs", "1", "--max-steps", "3", "--json")) == 0
    on_top = json.loads(capsys.readouterr().out)
    assert on_top["base_skills"] == [
        "Rinse. When: the task is to clean X. Procedure: go to sinkbasin; clean X with sinkbasin"
    ]
    shown = subprocess.run(
        [
            sys.executable,
            "examples/heat_choices.py",
            str(out / "model-sft"),
            str(skill_file),
            "--tasks",
            "2",
            "--max-steps",
            "3",
            "--show",
            "1",
            "--set",
            "household.heat_appliances=[microwave,stoveburner]",
        ],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert [line.split(":")[0] for line in shown if not line.startswith("  ")] == [
        "(no skill)",
        "skill.txt",
    ]
    assert all(" won " in line and "/2 " in line for line in shown if not line.startswith("  "))
    # one episode shown per skill
    assert sum(line.startswith(("  won | ", "  lost | ")) for line in shown) == 2
    block_cost = ("examples/block_cost.py", str(out / "model-sft"), str(skill_file))
    costs = subprocess.run(
        [sys.executable, *block_cost, "--tasks", "2"],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    steps = int(costs[0].split(" tasks, ")[1].split()[0])
    assert costs[1].split()[-2:] == ["skill.txt", "placebo"]
    *kinds, total = [line.split() for line in costs[2:]]
    # every expert step counted under one kind, and all of them in the last row
    assert sum(int(k[-8]) for k in kinds) == steps > 0 and total[:2] == ["all", str(steps)]
    skill_file.write_text("just some words")
    with pytest.raises(SystemExit, match="not a skill"):
        main(vet())
