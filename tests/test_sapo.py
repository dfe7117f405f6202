"""SAPO with a real (tiny) model: common random numbers, the HTTP teacher against `skillvet
serve` and against servers that are down or slow, the generator loss, likelihood scores,
`skills vet`, and a SAPO run whose resumed bank equals the uninterrupted one."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from helpers import TINY_MODEL, free_port, serving_in_thread

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from skillvet.config import HouseholdConfig, ModelConfig, TinyModelConfig, load_config  # noqa: E402
from skillvet.envs.household import HouseholdSource  # noqa: E402
from skillvet.policy.hf import Policy  # noqa: E402
from skillvet.policy.models import build_tiny, chatml_text  # noqa: E402
from skillvet.rollout import rollout  # noqa: E402
from skillvet.sft import expert_demos  # noqa: E402
from skillvet.skills.induce import Attempt  # noqa: E402
from skillvet.skills.score import likelihood, rerank, similar  # noqa: E402
from skillvet.skills.teacher import HttpTeacher, TeacherError  # noqa: E402
from skillvet.skills.text import Skill  # noqa: E402

TINY = TinyModelConfig(layers=1, hidden=48, heads=2, vocab_size=400, tokenizer_tasks=10)


@pytest.fixture(scope="module")
def source() -> HouseholdSource:
    return HouseholdSource(HouseholdConfig(expert="oracle"), max_steps=4)  # short expert episodes


@pytest.fixture(scope="module")
def policy(tmp_path_factory, source) -> Policy:
    demos = expert_demos(source, source.tasks("train")[:10])
    folder = build_tiny(
        [chatml_text(d.prompt, d.answer) for d in demos],
        TINY,
        tmp_path_factory.mktemp("tiny"),
        seed=0,
    )
    return Policy.load(folder, ModelConfig(tiny=TINY, device="cpu"))


# ---------------------------------------------------------------------------------- CRN


def test_row_generators_make_a_rows_samples_independent_of_its_batch(policy):
    a = policy.encode_prompt("put a mug on the desk")
    b = policy.encode_prompt(
        "a much longer prompt about heating an egg in the microwave and more words"
    )

    def gens(*seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]

    alone = policy.generate([a], 10, 1.0, row_generators=gens(5), stop_text=None)[0]
    batched = policy.generate([b, a], 10, 1.0, row_generators=gens(9, 5), stop_text=None)[1]
    assert alone.ids == batched.ids
    assert np.allclose(alone.logprobs, batched.logprobs, atol=1e-5)
    other = policy.generate([a], 10, 1.0, row_generators=gens(6), stop_text=None)[0]
    assert other.ids != alone.ids  # a different seed samples differently


def test_matched_rollouts_with_the_same_seeds_and_prompts_are_identical(policy, source):
    tasks = source.tasks("train")[:2]
    seeds = [11, 12, 13, 14]
    kw = dict(max_new_tokens=8, temperature=1.0, sampling_seeds=seeds)
    first = rollout(policy, source, tasks, 2, **kw)
    again = rollout(policy, source, tasks, 2, index_offset=2, **kw)
    assert [e.index for e in again] == [2, 3, 2, 3]
    for x, y in zip(first, again):
        assert [s.response_ids for s in x.steps] == [s.response_ids for s in y.steps]
    with pytest.raises(ValueError, match="sampling seeds"):
        rollout(policy, source, tasks, 2, max_new_tokens=8, temperature=1.0, sampling_seeds=[1])


# ---------------------------------------------------------------------------------- HTTP teacher

SKILL_LINES = (
    "Title: Carry\nWhen: the task is to put X on Y\nProcedure: find X; take X; go to Y; move X to Y"
)


def _teacher_prompt(policy: Policy, user: str) -> list[int]:
    """Token ids of the chat `HttpTeacher` sends: its system message, then `user`."""
    from skillvet.skills.teacher import SYSTEM

    text = policy.tokenizer.apply_chat_template(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
        tokenize=False,
        add_generation_prompt=True,
    )
    return policy.tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def writer(tmp_path_factory, policy) -> Policy:
    """The tiny model trained to answer the teacher's chat with one skill, until its greedy
    answer is that skill (the served answer must then be recognisably the trained one)."""
    folder = tmp_path_factory.mktemp("writer")
    policy.save(folder)
    trained = Policy.load(folder, ModelConfig(tiny=TINY, device="cpu"))
    prompt = _teacher_prompt(trained, "Task 1: put a mug on desk.")
    answer = trained.encode_answer(SKILL_LINES)
    optimizer = torch.optim.Adam(trained.parameters(), lr=3e-3)
    for step in range(400):
        trained.model.train()
        logp_all, tokens, mask = trained.answer_distributions([prompt], [answer])
        loss = -(logp_all.gather(-1, tokens[..., None]).squeeze(-1) * mask).sum() / mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 20 == 19:
            trained.model.eval()
            if trained.generate([prompt], 60, 0.0, stop_text=None)[0].text == SKILL_LINES:
                return trained
    raise AssertionError(f"the writer did not learn its skill in 400 steps (loss {float(loss)})")


def test_teacher_over_real_http_against_skillvet_serve(writer):
    from skillvet.serve import make_server

    with serving_in_thread(make_server(writer, "tiny-test", "127.0.0.1", 0)) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        teacher = HttpTeacher(url, "tiny-test", timeout=30, retries=0, max_tokens=60)
        answer = teacher.complete("Task 1: put a mug on desk.")
        ids = _teacher_prompt(writer, "Task 1: put a mug on desk.")
        expected = writer.generate([ids], 60, 0.0, stop_text=None)[0].text
        # the served model's greedy answer
        assert answer == expected and answer.startswith("Title: Carry")
        import urllib.request

        with urllib.request.urlopen(url + "/models", timeout=10) as r:
            assert json.loads(r.read())["data"][0]["id"] == "tiny-test"
        bad = urllib.request.Request(
            url + "/chat/completions",
            data=b'{"messages": "nope"}',
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=10)
        assert err.value.code == 400
        assert "messages" in json.loads(err.value.read())["error"]["message"]


def test_teacher_reports_a_server_that_is_down_after_its_retries():
    teacher = HttpTeacher(
        f"http://127.0.0.1:{free_port()}/v1", "m", timeout=2, retries=2, backoff=0.05
    )
    t0 = time.time()
    with pytest.raises(TeacherError, match=r"no answer .* \(after 3 attempts\)"):
        teacher.complete("hello")
    assert time.time() - t0 < 5


class _Slow(BaseHTTPRequestHandler):
    delay = 2.0
    calls = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        type(self).calls += 1
        time.sleep(self.delay)
        try:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"choices": [{"message": {"content": "late"}}]}')
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Forbidden(BaseHTTPRequestHandler):
    calls = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        type(self).calls += 1
        self.send_response(401)
        self.end_headers()


@contextmanager
def _serving(handler):
    """A test server on a free local port; yields its /v1 base URL."""
    with serving_in_thread(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"


def test_teacher_times_out_on_a_slow_server_and_retries():
    with _serving(_Slow) as url:
        teacher = HttpTeacher(url, "m", timeout=0.3, retries=1, backoff=0.05)
        with pytest.raises(TeacherError, match="timed out"):
            teacher.complete("hello")
        assert _Slow.calls == 2


def test_teacher_does_not_retry_a_client_error():
    with _serving(_Forbidden) as url:
        teacher = HttpTeacher(url, "m", timeout=2, retries=3, backoff=0.05)
        with pytest.raises(TeacherError, match="HTTP 401"):
            teacher.complete("hello")
        assert _Forbidden.calls == 1


class _FixedEmbedder:
    """Test double for MiniLM: a bag of hashed words (the product path loads the real model)."""

    def __call__(self, texts):
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, hash(w) % 64] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_a_failing_teacher_falls_back_to_the_rule_inducer(tmp_path, policy):
    from skillvet.skills.sapo import SkillVetting

    cfg = load_config(
        None,
        [
            "skills.enabled=true",
            "skills.teacher=http",
            f"skills.teacher_url=http://127.0.0.1:{free_port()}/v1",
            "skills.teacher_retries=0",
            "skills.teacher_timeout=1",
        ],
    )
    vetting = SkillVetting(cfg, tmp_path, embedder=_FixedEmbedder())
    attempt = Attempt(
        "1",
        "put a mug on desk.",
        ("go to shelf 1", "take mug 1 from shelf 1", "go to desk 1", "move mug 1 to desk 1"),
        (True,) * 4,
        True,
    )
    written = vetting.write(
        policy, [attempt], "pick_and_place", by_policy=False, generator=torch.Generator()
    )
    assert written.fallback and written.writer == "rule" and "teacher failed" in written.reason
    assert written.skill.procedure == "find X; take X; go to Y; move X to Y"
    by_policy = vetting.write(
        policy,
        [attempt],
        "pick_and_place",
        by_policy=True,
        generator=torch.Generator().manual_seed(0),
    )
    # an untrained tiny model rarely writes a parseable skill
    assert by_policy.writer in ("policy", "rule")
    if by_policy.writer == "policy":
        assert by_policy.induction and by_policy.induction["response_ids"]


# ---------------------------------------------------------------------------- scores, generator


def test_likelihood_scores_and_rerank(policy):
    skills = [
        Skill(
            "Pick and place", "the task is to put X on Y", "find X; take X; go to Y; move X to Y"
        ),
        Skill("zq", "zq zq", "zq zq zq zq"),
    ]
    scores = likelihood(
        policy, [("put a mug on desk.", s) for s in skills] + [("heat an egg.", skills[0])]
    )
    assert scores.shape == (3,) and np.all(scores < 0)
    assert scores[0] != scores[2]  # context-dependent
    q = np.eye(3, dtype=np.float32)[:1]
    bank = np.eye(3, dtype=np.float32)
    assert similar(q, bank, 2) == [[0, 1]]
    assert rerank([0, 1], [0.9, 0.5], [-5.0, -1.0], weight=0.0, k=1) == [0]
    assert rerank([0, 1], [0.9, 0.5], [-5.0, -1.0], weight=0.5, k=1) == [1]


def test_generator_loss_raises_promoted_skills_and_lowers_discarded_ones(policy):
    from skillvet.learner import _generator_backward
    from skillvet.types import GeneratorRows

    prompt = policy.encode_prompt("Task 1: put a mug on desk.\nWrite a skill.")
    skill = policy.encode_answer("Title: Carry\nWhen: always\nProcedure: find X; take X")

    def mean_logp():
        with torch.no_grad():
            logp, _, mask = policy.token_logprobs([prompt], [skill])
        return float((logp * mask).sum() / mask.sum())

    saved = policy.trainable_state()
    for weight in (1.0, -1.0):
        policy.load_trainable_state(saved)
        before = mean_logp()
        opt = torch.optim.SGD(policy.parameters(), lr=0.5)
        opt.zero_grad()
        loss = _generator_backward(
            policy, GeneratorRows([prompt], [skill], [weight], coef=0.1), 1.0
        )
        opt.step()
        after = mean_logp()
        assert loss == pytest.approx(-0.1 * weight * before, rel=1e-4)
        assert (after > before) if weight > 0 else (after < before)
    policy.load_trainable_state(saved)


# ---------------------------------------------------------------------------- vet and a SAPO run


def test_vet_measures_a_skill_with_matched_pairs(policy, source):
    from skillvet.skills.vet import vet

    skill = Skill(
        "Pick and place", "the task is to put X on Y", "find X; take X; go to Y; move X to Y"
    )
    tasks = source.tasks("eval")[:3]
    result = vet(
        policy, source, tasks, skill, pairs=2, max_new_tokens=8, seed=1, placebo=True, episodes=True
    )
    assert result["tasks"] == 3 and result["pairs"] == 6
    assert result["lo"] <= result["U"] <= result["hi"]
    assert result["U"] == pytest.approx(np.mean([t["u"] for t in result["per_task"]]))

    # each arm's play, as its own rollouts record it
    assert result["arms"]["base"]["success"] == result["base_success"]
    assert result["arms"]["placebo"]["success"] == result["placebo"]["success"]
    for arm in ("base", "augmented", "placebo"):
        records = [r for r in result["episodes"] if r["arm"] == arm]
        steps = [s for r in records for s in r["steps"]]
        assert len(records) == 3 * 2 and steps
        assert result["arms"][arm]["invalid"] == pytest.approx(
            sum(not s["valid"] for s in steps) / len(steps)
        )
        assert result["arms"][arm]["steps"] == pytest.approx(len(steps) / len(records))
        shown = [skill.title in " ".join(r["skills"]) for r in records]
        assert all(shown) if arm == "augmented" else not any(shown)
    assert "episodes" not in vet(policy, source, tasks[:1], skill, pairs=1, max_new_tokens=8)


SMALL = [
    *TINY_MODEL,
    "sft.steps=3",
    "sft.tasks=8",
    "sft.batch_size=8",
    "sft.skills_share=0.5",
    "sft.writing_demos=4",
    "train.tasks_per_iteration=4",
    "train.group_size=4",
    "train.micro_batch_size=16",
    "env.max_steps=3",
    "eval.tasks=2",
    "eval.before=false",
    "sampling.max_action_tokens=8",
    "skills.enabled=true",
    "skills.cluster_size=2",
    "skills.promote_every=1",
    "skills.promote_top=1.0",
    "skills.max_skill_tokens=12",
    "train.iterations=3",
    "train.keep_every=1",
]


def _bank_rows(run_dir: Path):
    from skillvet.skills.bank import Bank

    bank = Bank(run_dir / "skills.sqlite")
    rows = [(s.iteration, s.skill.text(), s.status, s.utility) for s in bank.skills()]
    events = [(e["iteration"], e["skill_id"], e["kind"], e["reason"]) for e in bank.events()]
    measurements = [bank.measurements(s.id) for s in bank.skills()]
    bank.close()
    return rows, events, measurements


def test_sapo_run_writes_its_bank_and_a_resumed_run_rebuilds_the_same_bank(tmp_path):
    from skillvet.train import resume_run, start_run, train

    cfg = load_config(None, SMALL)
    run = start_run(cfg, quiet=True, run_dir=tmp_path / "run")
    train(run)
    metrics = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [m["iteration"] for m in metrics] == [1, 2, 3]
    assert all(m["samples"] > 0 and m["skills_candidates"] == 2 for m in metrics)
    assert all("skills_promoted" in m and "skills_U" in m for m in metrics)
    rows, events, measurements = _bank_rows(tmp_path / "run")
    # 2 clusters x 3 iterations, K = 2
    assert len(rows) == 6 and all(len(m) == 2 for m in measurements)
    # N / 2 pairs
    assert all(len(m["base"]) == 2 and len(m["augmented"]) == 2 for ms in measurements for m in ms)

    # as if killed after iteration 3 wrote to the bank but before its checkpoint: back to
    # iteration 2
    ckpt = tmp_path / "run" / "checkpoints"
    (ckpt / "latest.json").write_text(json.dumps({"iteration": 2, "folder": "iter-000002"}) + "\n")
    resumed = resume_run(tmp_path / "run", quiet=True)
    assert resumed.start_iteration == 2
    assert max(r[0] for r in _bank_rows(tmp_path / "run")[0]) == 2  # iteration 3's skills are gone
    train(resumed)
    rows2, events2, measurements2 = _bank_rows(tmp_path / "run")
    assert rows2 == rows
    assert [e[:3] for e in events2] == [e[:3] for e in events]
    assert measurements2 == measurements


def test_revetting_measures_a_gated_candidate_again_on_fresh_tasks_before_it_is_promoted(
    tmp_path, policy, source
):
    from skillvet.skills.bank import Measurement
    from skillvet.skills.sapo import SkillVetting

    pool = source.tasks("train")[:40]
    cfg = load_config(
        None,
        [
            "skills.enabled=true",
            "skills.scoring=false",
            "skills.cluster_size=2",
            "train.tasks_per_iteration=2",
            "train.group_size=4",
            "sampling.max_action_tokens=8",
        ],
    )
    decided = {}
    for revet in (False, True):
        cfg.skills.revet = revet
        (tmp_path / f"revet-{revet}").mkdir()
        vetting = SkillVetting(cfg, tmp_path / f"revet-{revet}")
        task_type = pool[0].task_type
        induced_on = [t.id for t in pool if t.task_type == task_type][:2]
        sid = vetting.bank.add_candidate(
            Skill("Lucky", "the task is to do it", "go somewhere; take something"),
            task_types=[task_type],
            embedding=vetting.embed(["lucky"])[0],
            writer="rule",
            iteration=1,
            sources=[],
            measurements=[Measurement(t, [0.0, 0.0], [10.0, 0.0], 5.0) for t in induced_on],
            utility=5.0,
            utility_lo=1.0,
            utility_hi=9.0,
        )
        _, stats = vetting.promote(policy, 1, source, pool, seed=3)
        event = vetting.bank.events(sid)[-1]
        decided[revet] = event["kind"]
        if revet:
            figures = event["figures"]
            again = vetting.bank.measurements(sid)[2:]
            assert stats["skills_revetted"] == 1 and "re-vetted on 2 fresh tasks" in event["reason"]
            assert [m["task"] for m in again] == figures["revet_tasks"] and len(again) == 2
            assert not set(figures["revet_tasks"]) & set(induced_on)
            assert all(t.task_type == task_type for t in pool if t.id in figures["revet_tasks"])
            assert figures["revet_U"] == pytest.approx(np.mean([m["u"] for m in again]))
            assert (event["kind"] == "promoted") == (figures["revet_U"] > 0)
        vetting.bank.close()
    assert decided[False] == "promoted"  # the first measurement alone passes the gate
    # this untrained policy wins nothing in four steps, so on fresh tasks the lucky skill measures 0
    assert decided[True] == "discarded"


def test_the_placebo_arm_reports_its_utility_and_changes_nothing_the_run_learns_from(tmp_path):
    from skillvet.train import start_run, train

    lines = {}
    for placebo in ("false", "true"):
        cfg = load_config(None, [*SMALL, "train.iterations=1", f"skills.placebo={placebo}"])
        train(start_run(cfg, quiet=True, run_dir=tmp_path / placebo))
        lines[placebo] = json.loads(
            (tmp_path / placebo / "metrics.jsonl").read_text().splitlines()[0]
        )
    on, off = lines["true"], lines["false"]
    assert "skills_placebo_U" in on and "skills_placebo_U" not in off
    assert -10.0 <= on["skills_placebo_U"] <= 10.0
    for key in ("samples", "skills_U", "train_success", "loss", "kl"):
        assert on[key] == off[key], key
