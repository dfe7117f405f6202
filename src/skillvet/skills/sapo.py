"""SAPO inside an RL iteration: retrieve, base half, induce, augmented half, utility; and every
P iterations, promotion, pruning and the generator's training rows (METHOD.md section 3).

    vetting = SkillVetting(cfg, run_dir, player=sampler)  # the rollout engine plays the halves
    tasks = vetting.sample_tasks(pool, rng)                          # B tasks, clusters of K
    episodes, stats = vetting.play(policy, source, tasks, iteration)  # N per task, two halves
    gen_rows, stats = vetting.promote(policy, iteration)              # when iteration % P == 0

Choices:
- Matched pairs with common random numbers: rollout n of the base half and rollout n of the
  augmented half of a task start from the same initial state (the task's seed) and draw their
  tokens from the same per-pair generator (inverse CDF, `Policy.generate`; vLLM seeds each row
  from it), so where the skill changes nothing the two rollouts are identical and u measures
  the skill, not the noise. Every half (base, augmented, placebo, re-vetting) is played by the
  run's rollout engine (`player`); retrieval's scores and the policy writer's candidates are
  the learner's own.
- Both halves stay one group of N for the actor update (`Episode.group` is the task); anchors
  are environment states, so they never include the skills block.
- Beyond the paper, so that u measures the candidate and nothing else: the augmented block is
  exactly the base block plus the candidate (the base block leaves room for it), and every
  prompt of a SAPO run shows the skills section, "- (none)" when it is empty, so the halves
  differ only in the candidate's line.
- A pair with a crashed environment on either side is left out of u.
- The induction prompt shows one base trajectory per task (a success when there is one); the
  rule inducer reads all of the cluster's base trajectories.
- Writers: the teacher (rule inducer, or an API teacher that falls back to the rule inducer on
  failure), or the policy (falls back to the rule inducer when its answer is not a skill). The
  schedule hands clusters to the policy with a probability rising linearly from 0 to 1 over
  the first `policy_ramp` of training. Every fallback is an event in the bank with its reason.
- Re-vetting (`skills.revet`, beyond the paper): U is measured on the tasks and seeds the
  candidate was induced from, and promotion takes the top of Q by that noisy figure, which
  favours lucky draws. A candidate that passes the gate is measured again on K fresh tasks of
  its types with fresh seeds (rollouts used for nothing else) and promoted only if that U
  passes too; the bank keeps both measurements.
- The generator loss needs w(U) of promoted vs discarded skills, so it is applied at the
  promotion round that decides them, on the induction prompt and skill tokens kept in the bank.
  Beyond the paper: w is scaled to sum |w| = 1, and a skill with U > 0 discarded only for its
  rank, novelty or lower bound gets w = 0 (`skillvet.skills.gate.generator_weights`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from skillvet.config import Config
from skillvet.distributed import ONE, Dist
from skillvet.envs.protocol import TaskSource
from skillvet.policy.hf import Policy
from skillvet.policy.sampler import Sampler
from skillvet.rollout import rollout
from skillvet.sampling import clustered_tasks
from skillvet.skills.bank import Bank, StoredSkill, paired_measurements
from skillvet.skills.embed import Embedder
from skillvet.skills.gate import (
    matched_rewards,
    pair_seeds,
    utility,
)
from skillvet.skills.induce import Attempt
from skillvet.skills.promote import promote_round, revet
from skillvet.skills.score import likelihood, rerank, similar
from skillvet.skills.teacher import HttpTeacher
from skillvet.skills.text import (
    Skill,
    augmented_blocks,
    placebo_skill,
    skills_block,
)
from skillvet.skills.writer import Written, policy_share, write_candidate
from skillvet.types import Episode, GeneratorRows, Task


def attempt_of(e: Episode) -> Attempt:
    return Attempt(
        task_id=e.task.id,
        goal=e.goal,
        actions=tuple(s.action or "(no action)" for s in e.steps),
        valid=tuple(s.valid for s in e.steps),
        won=e.won,
    )


class SkillVetting:
    def __init__(
        self,
        cfg: Config,
        run_dir: str | Path,
        embedder: Embedder | None = None,
        dist: Dist = ONE,
        player: Sampler | None = None,
    ) -> None:
        """`player`: the rollout engine that plays every half (`make_sampler`); None: the
        policy passed to each call samples for itself."""
        self.cfg = cfg
        self.dist = dist
        self.player = player
        self.sk = cfg.skills
        # one SQLite file, written by the main process alone; the other ranks never open it
        self.bank: Bank = Bank(Path(run_dir) / "skills.sqlite") if dist.main else None  # type: ignore[assignment]
        self.embed = embedder or Embedder(self.sk.embedder)
        self.teacher = (
            HttpTeacher(self.sk.teacher_url, self.sk.teacher_model, key_env=self.sk.teacher_key_env,
                        timeout=self.sk.teacher_timeout, retries=self.sk.teacher_retries,
                        max_bytes=self.sk.teacher_max_bytes)
            if self.sk.teacher == "http" else None
        )

    # ---------------------------------------------------------------- tasks

    def sample_tasks(self, pool: Sequence[Task], rng: np.random.Generator) -> list[Task]:
        """B tasks in B/K clusters of K tasks of one type (`skillvet.sampling.clustered_tasks`)."""
        return clustered_tasks(pool, self.cfg.train.tasks_per_iteration, self.sk.cluster_size, rng)

    # ---------------------------------------------------------------- retrieval

    def retrieve(
        self, policy: Policy, bank: Sequence[StoredSkill], goal: str, task_type: str | None = None
    ) -> list[StoredSkill]:
        """The top-k of `bank` (promoted skills) for a task: cosine top-2k, re-ranked by the
        likelihood score. With `skills.match_type`, only skills of the task's type (or of no
        declared type) compete."""
        if self.sk.match_type and task_type is not None:
            bank = [s for s in bank if not s.task_types or task_type in s.task_types]
        if not bank or self.sk.top_k == 0:
            return []
        query = self.embed([goal])
        bank_E = np.stack([s.embedding for s in bank])
        pool = similar(query, bank_E, 2 * self.sk.top_k)[0]
        sims = [float(bank_E[i] @ query[0]) for i in pool]
        if self.sk.scoring:
            scores = likelihood(policy, [(goal, bank[i].skill) for i in pool])
        else:
            scores = np.zeros(len(pool))
        return [bank[i] for i in rerank(pool, sims, scores, self.sk.rerank_weight, self.sk.top_k)]

    def skills_fn(
        self,
        policy: Policy,
        retrieved: dict[str, list[StoredSkill]] | None = None,
        extra: dict[str, Skill] | None = None,
        matched: bool = False,
        bank: Sequence[StoredSkill] | None = None,
    ):
        """`rollout`'s skills callback: the retrieved skills as a bounded, sanitized block.
        Retrievals are remembered in `retrieved` by task id. With `matched` (the halves of a
        vetting pair), the block leaves room for a candidate, and with `extra` (task id ->
        candidate) it is that same block with the task's candidate first
        (`skillvet.skills.text.augmented_blocks`). `bank`: the promoted skills to retrieve
        from (`promoted()`), read from the bank when omitted."""
        specials = list(policy.tokenizer.all_special_tokens)
        # fixed for the rollout: promotion happens between rollouts
        bank = self.bank.skills("promoted") if bank is None else bank

        def fn(task: Task, goal: str) -> list[str]:
            if retrieved is not None and task.id in retrieved:
                found = retrieved[task.id]
            else:
                found = self.retrieve(policy, bank, goal, task.task_type)
                if retrieved is not None:
                    retrieved[task.id] = found
            texts = [s.skill.text() for s in found]
            if not matched:
                return skills_block(
                    texts, self.sk.max_skill_chars, self.sk.max_block_chars, specials
                )
            candidate = extra[task.id].text() if extra is not None and task.id in extra else ""
            base, augmented = augmented_blocks(
                candidate, texts, self.sk.max_skill_chars, self.sk.max_block_chars, specials
            )
            return augmented if candidate else base

        return fn

    def promoted(self) -> list[StoredSkill]:
        """The bank's promoted skills, as the main process reads them, on every rank (a
        collective: every rank calls it)."""
        return self.dist.broadcast(self.bank.skills("promoted") if self.dist.main else None)

    # ---------------------------------------------------------------- one iteration's rollouts

    def play_half(
        self,
        policy: Policy,
        source: TaskSource,
        tasks: Sequence[Task],
        seeds: Sequence[int],
        retrieved: dict[str, list[StoredSkill]],
        candidates: dict[str, Skill] | None = None,
        bank: Sequence[StoredSkill] | None = None,
        first_group: int = 0,
    ) -> list[Episode]:
        """One half of the matched pairs, N/2 rollouts per task with the pairs' `seeds`: the base
        half with the retrieved skills block, or with `candidates` (task id -> skill) the
        augmented half, that block plus the task's candidate, numbered after the base half.
        `bank` and `first_group` as in `skills_fn` and `rollout`."""
        cfg = self.cfg
        half = cfg.train.group_size // 2
        return rollout(
            self.player if self.player is not None else policy,
            source,
            tasks,
            half,
            skills=self.skills_fn(policy, retrieved, candidates, matched=True, bank=bank),
            index_offset=half if candidates is not None else 0,
            first_group=first_group,
            max_new_tokens=cfg.sampling.max_action_tokens,
            temperature=cfg.sampling.temperature,
            history_length=cfg.sampling.history_length,
            sampling_seeds=seeds,
            skills_section=True,
            admissible_only=cfg.sampling.admissible_only,
        )

    def play(
        self,
        policy: Policy,
        source: TaskSource,
        tasks: Sequence[Task],
        iteration: int,
        seed: int,
        dist: Dist = ONE,
    ) -> tuple[list[Episode], dict]:
        """N rollouts per task: the base half with the retrieved skills, then one candidate per
        cluster induced from it, then the augmented half with the candidate added; the
        candidates are stored with their measured utility. Returns all episodes and figures.

        On several processes (`dist`) each rank plays a contiguous range of whole clusters with
        their seeds; what the bank records (candidates, measurements, retrievals, goals) is
        gathered to the main process, which writes it in cluster order, as one process would.
        Every rank returns its own episodes and the same figures."""
        cfg, sk = self.cfg, self.sk
        half, k = cfg.train.group_size // 2, sk.cluster_size
        clusters = dist.share(len(tasks) // k)
        first, stop = clusters.start * k, clusters.stop * k  # this rank's task groups
        mine = tasks[first:stop]
        seeds = pair_seeds(seed, len(tasks), half)[first * half : stop * half]
        promoted = self.promoted()
        t0 = time.time()
        retrieved: dict[str, list[StoredSkill]] = {}
        base = self.play_half(policy, source, mine, seeds, retrieved, bank=promoted,
                              first_group=first)
        t_base = time.time() - t0

        t1 = time.time()
        share = self.policy_share(iteration)
        written: list[Written] = []
        for c in clusters:
            groups = range(c * k, (c + 1) * k)
            attempts = [
                attempt_of(e) for e in base if e.group in groups and e.error is None and e.steps
            ]
            if not attempts:
                attempts = [
                    Attempt(tasks[g].id, e.goal, (), (), False)
                    for g in groups
                    for e in base
                    if e.group == g
                ][:1]
            rng = np.random.default_rng([seed, 11, c])  # the cluster's own draws
            writer_gen = torch.Generator(device=policy.device).manual_seed(
                int(rng.integers(2**62))
            )
            written.append(
                self.write(
                    policy, attempts, tasks[c * k].task_type, bool(rng.random() < share), writer_gen
                )
            )
        candidate_of = {
            tasks[g].id: written[g // k - clusters.start].skill for g in range(first, stop)
        }
        t_induce = time.time() - t1

        t2 = time.time()
        augmented = self.play_half(policy, source, mine, seeds, retrieved, candidate_of,
                                   bank=promoted, first_group=first)
        t_aug = time.time() - t2
        placebo = (
            self.placebo_utility(policy, source, tasks, base, retrieved, written, seeds)
            if sk.placebo and dist.main and written
            else None
        )

        measured_C = []
        for c, w in zip(clusters, written):
            groups = list(range(c * k, (c + 1) * k))
            base_KP, aug_KP, task_ids = matched_rewards(base, augmented, groups, half)
            m = utility(base_KP, aug_KP, sk.confidence) if base_KP else None
            measured_C.append((w, sorted({tasks[g].task_type for g in groups}), base_KP, aug_KP,
                               task_ids, m))
        parts = dist.gather((
            measured_C,
            [(s.id, tid) for tid, found in retrieved.items() for s in found],
            [(e.task.task_type, e.goal) for e in base if e.index == 0],
            [e.won for e in base],
            [e.won for e in augmented],
            [len(v) for v in retrieved.values()],
        ))
        measured_C = [x for part in parts for x in part[0]]
        all_written = [x[0] for x in measured_C]
        us = [x[5].value for x in measured_C if x[5] is not None]
        if dist.main:
            self._store(iteration, measured_C, [x for p in parts for x in p[1]],
                        [x for p in parts for x in p[2]])
        episodes = sorted([*base, *augmented], key=lambda e: (e.group, e.index))
        base_won = [x for p in parts for x in p[3]]
        aug_won = [x for p in parts for x in p[4]]
        retrieved_counts = [x for p in parts for x in p[5]]
        stats = {
            "skills_candidates": len(us),
            "skills_U_mean": float(np.mean(us)) if us else 0.0,
            "skills_U": [round(u, 4) for u in us],
            "skills_base_success": float(np.mean(base_won)) if base_won else 0.0,
            "skills_augmented_success": float(np.mean(aug_won)) if aug_won else 0.0,
            "skills_retrieved_mean": float(np.mean(retrieved_counts)) if retrieved_counts
            else 0.0,
            "skills_policy_share": share,
            "skills_writers": {
                w: sum(x.writer == w for x in all_written) for w in ("rule", "teacher", "policy")
            },
            "skills_fallbacks": sum(x.fallback for x in all_written),
            "time_base_s": round(t_base, 3),
            "time_induce_s": round(t_induce, 3),
            "time_augmented_s": round(t_aug, 3),
        }
        if sk.placebo:
            stats["skills_placebo_U"] = dist.broadcast(placebo)
        return episodes, stats

    def _store(self, iteration: int, measured_C: list, retrievals: list, goals: list) -> None:
        """The main process writes an iteration's candidates (with their measurements), the
        retrievals and the goals, in cluster order."""
        embeddings = self.embed([x[0].skill.text() for x in measured_C])
        for (w, task_types, base_KP, aug_KP, task_ids, measured), embedding in zip(
            measured_C, embeddings
        ):
            if measured is None:
                continue
            self.bank.add_candidate(
                w.skill,
                task_types=task_types,
                embedding=embedding,
                writer=w.writer,
                iteration=iteration,
                sources=[f"iteration {iteration} task {t} base rollouts" for t in task_ids],
                measurements=paired_measurements(task_ids, base_KP, aug_KP),
                utility=measured.value,
                utility_lo=measured.lo if math.isfinite(measured.lo) else None,
                utility_hi=measured.hi if math.isfinite(measured.hi) else None,
                induction=w.induction,
                reason=w.reason,
            )
        self.bank.log_retrievals(iteration, retrievals)
        self.bank.log_goals(iteration, goals)

    def placebo_utility(
        self,
        policy: Policy,
        source: TaskSource,
        tasks: Sequence[Task],
        base: Sequence[Episode],
        retrieved: dict,
        written: Sequence[Written],
        seeds: Sequence[int],
    ) -> float:
        """U of a neutral skill as long as the first cluster's candidate, on that cluster's tasks,
        paired with their base half (`skills.placebo`; beyond the paper): what a block's line does
        by being there. These rollouts train nothing."""
        k, half = self.sk.cluster_size, self.cfg.train.group_size // 2
        cluster = list(tasks[:k])
        neutral = placebo_skill(written[0].skill)
        shown = self.play_half(  # with the cluster's pairs' seeds
            policy, source, cluster, seeds[: k * half], retrieved, {t.id: neutral for t in cluster}
        )
        base_KP, placebo_KP, _ = matched_rewards(
            [e for e in base if e.group < k], shown, range(k), half
        )
        return round(utility(base_KP, placebo_KP, self.sk.confidence).value, 4) if base_KP else 0.0

    # ---------------------------------------------------------------- promotion

    def revet(self, policy: Policy, source: TaskSource, pool: Sequence[Task], skill: StoredSkill,
              seed: int) -> tuple | None:
        """`skillvet.skills.promote.revet`: U of a stored candidate measured again."""
        return revet(self, policy, source, pool, skill, seed)

    def promote(self, policy: Policy, iteration: int, source: TaskSource | None = None,
                pool: Sequence[Task] = (), seed: int = 0,
                dist: Dist = ONE) -> tuple[GeneratorRows | None, dict]:
        """`skillvet.skills.promote.promote_round`: decide, re-vet, prune; the generator rows.
        On several processes the main one alone runs the round (it holds the bank, and plays
        any re-vetting itself); the generator rows are its own, the figures every rank's."""
        rows, stats = (None, None)
        if dist.main:
            rows, stats = promote_round(self, policy, iteration, source, pool, seed)
        return rows, dist.broadcast(stats)

    # ---------------------------------------------------------------- writing

    def policy_share(self, iteration: int) -> float:
        return policy_share(self.sk, self.cfg.train.iterations, iteration)

    def write(self, policy: Policy, attempts: Sequence[Attempt], task_type: str, by_policy: bool,
              generator: torch.Generator) -> Written:
        """One candidate for a cluster, from its writer, falling back to the rule inducer."""
        return write_candidate(policy, attempts, task_type, by_policy, generator, self.sk,
                               self.cfg.sampling.temperature, self.teacher)
