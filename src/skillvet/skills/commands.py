"""`skillvet skills ...`: list, show, export and import the skills of a run's bank, and vet one
skill with matched rollouts. `add_skills_commands` adds the `skills` subparser and its actions;
cli.py calls it when it builds the parser. The work happens in skills/bank.py and skills/vet.py.
"""

from __future__ import annotations

import argparse
import json

from skillvet.cliargs import LEVEL, NON_NEGATIVE, POSITIVE, TEMPERATURE, env_config, eval_split
from skillvet.config import SamplingConfig, SkillsConfig, load_config

STATUSES = ["candidate", "promoted", "discarded", "pruned"]


def _bank(run_dir: str, read_only: bool = False):
    from pathlib import Path

    from skillvet.skills.bank import Bank

    path = Path(run_dir) / "skills.sqlite"
    if not path.is_file():
        raise SystemExit(f"skillvet: {run_dir} has no skill bank (skills.sqlite); "
                         "was it a run with skills.enabled?")
    return Bank(path, read_only=read_only)


def _interval(lo, hi) -> str:
    if lo is None or hi is None:
        return "[n/a]"
    return f"[{lo:+.2f}, {hi:+.2f}]"


def _skill_record(s) -> dict:
    return {
        "id": s.id, "title": s.skill.title, "when": s.skill.when, "procedure": s.skill.procedure,
        "task_types": s.task_types, "writer": s.writer, "status": s.status,
        "iteration": s.iteration, "utility": s.utility, "utility_lo": s.utility_lo,
        "utility_hi": s.utility_hi, "uses": s.uses, "sources": s.sources,
    }


def cmd_skills_list(args: argparse.Namespace) -> int:
    bank = _bank(args.run_dir, read_only=True)
    rows = bank.skills(args.status)
    if args.json:
        print(json.dumps([_skill_record(s) for s in rows], indent=2))
        return 0
    print(f"{'id':>4}  {'status':<9} {'U':>7} {'interval':<17} {'writer':<7} {'uses':>4}  title")
    for s in rows:
        u = "n/a" if s.utility is None else f"{s.utility:+.2f}"
        interval = _interval(s.utility_lo, s.utility_hi)
        print(f"{s.id:>4}  {s.status:<9} {u:>7} {interval:<17} {s.writer:<7} {s.uses:>4}  "
              f"{s.skill.title}")
    counts = bank.counts()
    print(" · ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_skills_show(args: argparse.Namespace) -> int:
    bank = _bank(args.run_dir, read_only=True)
    try:
        s = bank.get(args.skill_id)
    except KeyError as err:
        raise SystemExit(f"skillvet: {err.args[0]}") from None
    measurements, events = bank.measurements(s.id), bank.events(s.id)
    if args.json:
        record = {**_skill_record(s), "measurements": measurements, "events": events}
        print(json.dumps(record, indent=2))
        return 0
    u = "n/a" if s.utility is None else f"{s.utility:+.3f}"
    print(f"skill {s.id} · {s.status} · written by {s.writer} in iteration {s.iteration} · "
          f"used {s.uses} times")
    print(f"\n{s.skill.lines()}\n")
    print(f"task types: {', '.join(s.task_types)}")
    print(f"U = {u} {_interval(s.utility_lo, s.utility_hi)}")
    print("sources: " + "; ".join(s.sources))
    if measurements:
        print("\nmeasurements (iteration, task: base rewards -> augmented rewards, u):")
        for m in measurements:
            print(f"  {m['iteration']:>4}  {m['task']}: {m['base']} -> {m['augmented']}  "
                  f"u {m['u']:+.2f}")
    print("\nevents:")
    for e in events:
        print(f"  {e['at']}  iteration {e['iteration']:>4}  {e['kind']:<9} {e['reason']}")
    return 0


def cmd_skills_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    bank = _bank(args.run_dir, read_only=True)
    rows = bank.skills(args.status)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for s in rows:
            f.write(json.dumps(_skill_record(s)) + "\n")
    print(f"exported {len(rows)} skill(s) to {out}")
    return 0


def _import_record(line: str, where: str, max_skill_chars: int):
    """The (skill, task types) of one JSONL line of `skills import`; SystemExit says what is
    wrong with it."""
    from skillvet.skills.text import Skill, sanitize

    try:
        r = json.loads(line)
    except json.JSONDecodeError as err:
        raise SystemExit(f"{where}: not JSON ({err.msg})") from None
    if not isinstance(r, dict):
        raise SystemExit(f"{where}: expected a JSON object with title, when, procedure")
    parts = [r.get(k) for k in ("title", "when", "procedure")]
    if not all(isinstance(p, str) for p in parts):
        raise SystemExit(f"{where}: title, when and procedure must be strings")
    skill = Skill(*(sanitize(p, max_chars=max_skill_chars) for p in parts))
    if not all((skill.title, skill.when, skill.procedure)):
        raise SystemExit(f"{where}: title, when and procedure must not be empty")
    types = r.get("task_types", [])
    if not isinstance(types, list) or not all(isinstance(t, str) and t.strip() for t in types):
        raise SystemExit(f"{where}: task_types must be a list of task type names, got {types!r}")
    return skill, [t.strip() for t in types]


def cmd_skills_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from skillvet.skills.embed import Embedder

    saved = Path(args.run_dir) / "config.yaml"
    cfg = load_config(saved) if saved.is_file() else load_config()
    bank = _bank(args.run_dir)
    records = [
        _import_record(line, f"skillvet: {args.file} line {n}", cfg.skills.max_skill_chars)
        for n, line in enumerate(Path(args.file).read_text().splitlines(), start=1)
        if line.strip()
    ]
    embed = Embedder(cfg.skills.embedder)
    vectors = embed([s.text() for s, _ in records])
    for (skill, types), vector in zip(records, vectors):
        bank.import_skill(skill, task_types=types, embedding=vector, source=str(args.file))
    print(f"imported {len(records)} skill(s) into {bank.path} (status promoted)")
    return 0


def _read_skill(path: str):
    from pathlib import Path

    from skillvet.skills.text import parse_skill

    skill = parse_skill(Path(path).read_text())
    if skill is None:
        raise SystemExit(f"skillvet: {path} is not a skill: write three lines, "
                         "'Title: ...', 'When: ...', 'Procedure: ...'")
    return skill


def cmd_skills_vet(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from skillvet.envs import make_source
    from skillvet.policy.sampler import make_sampler
    from skillvet.runs import load_model
    from skillvet.skills.vet import vet

    skill = _read_skill(args.skill)
    base_skills = [_read_skill(path).text() for path in args.base_skill or []]
    if args.episodes is not None:
        try:  # now, not after every arm is played
            open(args.episodes, "w").close()
        except OSError as err:
            raise SystemExit(f"skillvet: cannot write --episodes {args.episodes}: {err}") from None
    cfg, policy, run_dir = load_model(args.model)
    source = make_source(env_config(args, cfg.env if run_dir is not None else None))
    split = args.split or eval_split(source, cfg.env.eval_split)
    tasks = [t for t in source.tasks(split) if not args.type or t.task_type in args.type]
    tasks = tasks[: args.tasks]
    if not tasks:
        raise SystemExit(f"skillvet: no {split} tasks of type {args.type}")
    held = args.admissible_only or cfg.sampling.admissible_only
    engine = args.engine or cfg.sampling.engine
    sampler = make_sampler(policy, replace(cfg.sampling, admissible_only=held, engine=engine))
    result = vet(
        sampler, source, tasks, skill, pairs=args.pairs, base_skills=base_skills,
        max_new_tokens=cfg.sampling.max_action_tokens, temperature=args.temperature,
        history_length=cfg.sampling.history_length, seed=args.seed, confidence=args.confidence,
        max_skill_chars=cfg.skills.max_skill_chars, max_block_chars=cfg.skills.max_block_chars,
        placebo=args.placebo, admissible_only=held, episodes=args.episodes is not None,
    )
    if args.episodes is not None:
        with open(args.episodes, "w") as f:
            f.writelines(json.dumps(record) + "\n" for record in result.pop("episodes"))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _print_vetting(result, base_skills, split, args.pairs)
    return 0


def _print_vetting(result: dict, base_skills: list[str], split: str, pairs: int) -> None:
    print(f"skill: {result['skill']}")
    for text in base_skills:
        print(f"shown in both halves: {text}")
    print(
        f"U = {result['U']:+.3f}  {result['confidence']:.0%} interval "
        f"[{result['lo']:+.3f}, {result['hi']:+.3f}]"
        f"  over {result['tasks']} {split} tasks x {pairs} matched pairs"
    )
    print(
        f"success without the skill {result['base_success']:.1%} · "
        f"with it {result['augmented_success']:.1%}"
        f" · identical pairs {result['identical_pairs']}/{result['pairs']}"
    )
    if "placebo" in result:
        p, v = result["placebo"], result["U_vs_placebo"]
        print(f"placebo (a neutral skill of the same length): U = {p['U']:+.3f} "
              f"[{p['lo']:+.3f}, {p['hi']:+.3f}] · success {p['success']:.1%}")
        print(f"the skill against the placebo: U = {v['U']:+.3f} "
              f"[{v['lo']:+.3f}, {v['hi']:+.3f}]")
    arms = result["arms"]
    named = {"base": "without", "augmented": "with", "placebo": "placebo"}
    print("invalid actions " + " · ".join(f"{named[a]} {p['invalid']:.1%}" for a, p in arms.items())
          + " · steps per episode " + " / ".join(f"{p['steps']:.1f}" for p in arms.values()))


def add_skills_commands(sub) -> None:
    """The `skills` command and its actions, on `sub` (the parser's subparsers)."""
    skills = sub.add_parser("skills", help="inspect, move and vet skills (SAPO's bank)")
    actions = skills.add_subparsers(dest="skills_command", required=True, metavar="ACTION")

    sk_list = actions.add_parser(
        "list", help="id, title, status, U with its interval, writer, uses")
    sk_list.add_argument("run_dir")
    sk_list.add_argument("--status", choices=STATUSES)
    sk_list.add_argument("--json", action="store_true")
    sk_list.set_defaults(func=cmd_skills_list)

    sk_show = actions.add_parser(
        "show", help="a skill's text, provenance, measurements and events")
    sk_show.add_argument("run_dir")
    sk_show.add_argument("skill_id", type=POSITIVE)
    sk_show.add_argument("--json", action="store_true")
    sk_show.set_defaults(func=cmd_skills_show)

    sk_export = actions.add_parser("export", help="skills as JSONL")
    sk_export.add_argument("run_dir")
    sk_export.add_argument("out", help="JSONL file to write")
    sk_export.add_argument("--status", default="promoted", choices=STATUSES)
    sk_export.set_defaults(func=cmd_skills_export)

    sk_import = actions.add_parser("import", help="JSONL skills into a run's bank (as promoted)")
    sk_import.add_argument("run_dir")
    sk_import.add_argument("file", help="JSONL with title, when, procedure (and task_types)")
    sk_import.set_defaults(func=cmd_skills_import)

    _add_vet_command(actions)


def _add_vet_command(actions) -> None:
    vet = actions.add_parser(
        "vet", help="marginal utility of one skill, with matched rollouts")
    vet.add_argument("--model", required=True, help="run directory, HF folder, or model name")
    vet.add_argument("--env", required=True, help="environment name")
    vet.add_argument("--skill", required=True,
                     help="text file: 'Title: ...', 'When: ...', 'Procedure: ...' lines")
    vet.add_argument("--base-skill", action="append", metavar="FILE",
                     help="a skill both halves show, as the bank's retrieved skills would "
                          "(repeatable): U is then the skill's utility on top of them")
    vet.add_argument("--tasks", type=POSITIVE, default=20,
                     help="tasks to measure on (the split's first)")
    vet.add_argument("--pairs", type=POSITIVE, default=4, help="matched pairs per task")
    vet.add_argument("--type", action="append", help="only tasks of this type (repeatable)")
    vet.add_argument("--data", help="game folder for file-based environments (ALFWorld)")
    vet.add_argument("--split", help="split (default: env.eval_split)")
    vet.add_argument("--max-steps", type=POSITIVE, help="episode step limit")
    vet.add_argument("--set", action="append", metavar="KEY=VALUE", help="env config override")
    vet.add_argument("--temperature", type=TEMPERATURE, default=SamplingConfig().temperature,
                     help="sampling temperature of both halves")
    vet.add_argument("--confidence", type=LEVEL, default=SkillsConfig().confidence,
                     help="interval level")
    vet.add_argument("--seed", type=NON_NEGATIVE, default=0)
    vet.add_argument("--placebo", action="store_true",
                     help="a third arm with a neutral skill of the same length: the block's own "
                          "effect, and the skill's utility against it")
    vet.add_argument("--admissible-only", action="store_true",
                     help="answers sampled among the admissible actions (sampling.admissible_only)")
    vet.add_argument("--engine", choices=["hf", "vllm"],
                     help="rollout engine (default: the run's); every arm plays on it")
    vet.add_argument("--episodes", metavar="FILE",
                     help="write every arm's rollouts (answers, actions, observations) as JSONL")
    vet.add_argument("--json", action="store_true")
    vet.set_defaults(func=cmd_skills_vet)
