"""The policy on a Hugging Face causal LM: batched sampling that keeps every token's id and
log-probability, and the learner's log-probabilities of the same tokens.

Choices:
- Our own sampling loop over the model's KV cache (not `generate`): it records the exact
  log-probability of each sampled token under the distribution it was drawn from (logits /
  temperature), stops a row at `</action>`, at end of turn, or at the token limit, and drops
  finished rows from the cache so no compute is spent on them. A row may be held to a list of
  answers (the admissible actions: `skillvet.policy.choices`); the learner then scores its
  tokens under the same restriction.
- Prompts are left-padded with position ids counted from each row's first real token, both at
  sampling and in the learner, so the learner sees every token where the sampler saw it: their
  log-probabilities agree to float rounding (tests/test_policy.py).
- The learner computes the LM head only on the response positions (`logits_to_keep`), and the
  prompt prefix that all rows of a batch share (the learner batches rows of one task and skills
  block together) only once: the rows continue from its cached keys and values, with gradients.
- LoRA (peft): the KL reference is the same model with its adapters disabled, no second copy.
  Full fine-tuning keeps a frozen copy of the start model as the reference.
- Precision: the weights the optimizer changes are always float32 (master weights), so are
  their gradients and the optimizer's state: an update smaller than one bfloat16 step still
  moves them. `model.dtype: bfloat16` (or float16) is the compute dtype: every forward runs
  under autocast in it, and what is frozen (LoRA's base, the full fine-tuning reference) is
  stored in it.
- Sampling: the prefill computes the LM head at the last position only; each step moves the
  batch's sampled ids to the host once (to drop finished rows), the log-probs stay on the
  device until the end, and `</action>` is looked for only in rows whose last token can end it.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from skillvet.config import ModelConfig
from skillvet.policy.choices import ChoiceRows, response_bias

STOP_TEXT = "</action>"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The projections LoRA adapts: every linear layer of attention and MLP."""


@dataclass
class Generation:
    ids: list[int]
    """Sampled token ids, the stop token included when there was one."""
    logprobs: list[float]
    """Log-probability of each sampled token under the distribution it was drawn from (logits /
    temperature, among `allowed` when held to choices): the one the learner recomputes."""
    text: str
    """The decoded answer (special tokens dropped)."""
    finish: str
    """"stop" (reached </action>), "eos" (end of turn) or "length" (token limit)."""
    allowed: list[list[int]] | None = None
    """For an answer held to choices: the ids each token was drawn among ([]: any)."""


def shared_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all `prompts` share, leaving each at least one token of its own
    (the position that predicts the first response token)."""
    first = prompts[0]
    limit = min(len(p) for p in prompts) - 1
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _cache_keyword(model) -> str:
    """The forward's name for the KV cache, in its arguments and its output: `cache` in
    transformers' newer versions, `past_key_values` before."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class Policy:
    """A causal LM and its tokenizer, with sampling, scoring and saving."""

    def __init__(self, model, tokenizer, cfg: ModelConfig, base_name: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.base_name = base_name
        """Where the base weights came from (a folder or hub id); LoRA checkpoints refer to it."""
        self.device = next(model.parameters()).device
        self.lora = cfg.lora
        self.compute_dtype = _dtype(cfg.dtype)
        self._ref = None
        self.share_prompt_head = True
        """Score rows of one context from one pass over their common prompt head (off under
        FSDP, `skillvet.fsdp`)."""
        if not self.lora:
            self._ref = copy.deepcopy(model).eval().requires_grad_(False).to(self.compute_dtype)
        self._stop_enders: dict[str, torch.Tensor] = {}
        self._answers: dict[str, list[int]] = {}
        self._cache = _cache_keyword(model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        eos = {tokenizer.eos_token_id}
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
            eos.add(im_end)
        self.eos_ids = {e for e in eos if e is not None}

    # ---------------------------------------------------------------- loading and saving

    @classmethod
    def load(
        cls, folder: str | Path, cfg: ModelConfig, adapter: str | Path | None = None
    ) -> Policy:
        """Base weights from `folder` (or hub id); with `adapter`, LoRA weights saved by `save`."""
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        from skillvet.policy.models import load_tokenizer

        hf_logging.disable_progress_bar()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        device = pick_device(cfg.device)
        tokenizer = load_tokenizer(folder)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        stored = _dtype(cfg.dtype) if cfg.lora else torch.float32  # trainable weights: float32
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=stored).to(device)
        model.config.use_cache = True
        if cfg.lora:
            from peft import LoraConfig, PeftModel, get_peft_model

            if adapter is not None:
                model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
            else:
                lora = LoraConfig(
                    r=cfg.lora_rank,
                    lora_alpha=cfg.lora_alpha,
                    lora_dropout=0.0,
                    target_modules=list(LORA_TARGETS),
                    task_type="CAUSAL_LM",
                )
                model = get_peft_model(model, lora)
            for param in model.parameters():
                if param.requires_grad:
                    param.data = param.data.float()
        if (
            cfg.gradient_checkpointing
        ):  # renamed in transformers 5.2x; older versions have the first name
            if hasattr(model, "activation_checkpointing_enable"):
                model.activation_checkpointing_enable(
                    activation_checkpointing_kwargs={"use_reentrant": False}
                )
            else:
                model.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": False}
                )
        return cls(model, tokenizer, cfg, str(folder))

    def save(self, out: str | Path, state: dict | None = None) -> None:
        """Full weights and tokenizer (full fine-tuning), or only the adapters (LoRA); `state`:
        the weights to write instead of the model's own (a sharded model's, gathered)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out, **({"state_dict": state} if state is not None else {}))
        self.tokenizer.save_pretrained(out)
        (out / "BASE").write_text(self.base_name + "\n")

    def parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def autocast(self):
        """The context every forward runs in: autocast to `model.dtype` unless it is float32."""
        if self.compute_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.compute_dtype)

    # ---------------------------------------------------------------- prompts

    def encode_prompt(self, user_text: str) -> list[int]:
        """Token ids of a one-message chat ending with the assistant's turn opening."""
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
        )
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_answer(self, answer: str) -> list[int]:
        """Token ids of an answer as the model would emit it, end-of-turn token included."""
        ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
        return [*ids, self.tokenizer.eos_token_id]

    # ---------------------------------------------------------------- sampling

    def _left_pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
                mask[i, width - len(r) :] = 1
        return ids.to(self.device), mask.to(self.device)

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        row_generators: Sequence[torch.Generator] | None = None,
        stop_text: str | None = STOP_TEXT,
        choices: Sequence[Sequence[str] | None] | None = None,
    ) -> list[Generation]:
        """One answer per prompt, in one batch. temperature 0 means greedy decoding.

        With `row_generators` (one CPU generator per prompt), row i draws one uniform number per
        token from its own generator and takes the token where it falls in the cumulative
        distribution (inverse CDF): the draws of a row do not depend on the rest of the batch,
        so two batches given the same generators sample with common random numbers.
        `stop_text` (None: none) ends a row when it appears in the answer.
        `choices` (one list of answer texts or None per prompt) restricts a row to writing one of
        its answers (`skillvet.policy.choices`); its log-probs are the restricted distribution's.
        """
        from transformers import DynamicCache

        if not prompts:
            return []
        self.model.eval()
        ids, mask = self._left_pad(prompts)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        with self.autocast():
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=pos,
                use_cache=True,
                logits_to_keep=1,
                **{self._cache: cache},
            )
        logits = out.logits[:, -1, :].float()
        enders = self._stop_ender_mask(stop_text, logits.shape[-1]) if stop_text else None
        rows = list(range(len(prompts)))  # original index of each live row in the batch
        choices = choices if choices is not None else [None] * len(prompts)
        restrict = ChoiceRows([self._answer_ids(c) if c else None for c in choices])
        sampled: list[list[int]] = [[] for _ in prompts]
        step_logps: list[tuple[list[int], torch.Tensor]] = []  # (rows, their log-probs), per step
        finish = ["length"] * len(prompts)
        for _ in range(max_new_tokens):
            bias = restrict.bias(rows, logits.shape[-1], self.device)
            token, token_logp = self._sample(
                logits, temperature, generator, row_generators, rows, bias
            )
            step_logps.append((rows, token_logp))
            ends = (
                enders[token] if enders is not None else torch.zeros_like(token, dtype=torch.bool)
            )
            tokens, can_stop = torch.stack([token, ends.long()]).tolist()  # one transfer per step
            restrict.advance(rows, tokens)
            keep: list[int] = []
            for b, (i, t) in enumerate(zip(rows, tokens)):
                sampled[i].append(t)
                if t in self.eos_ids:
                    finish[i] = "eos"
                elif (
                    can_stop[b]
                    and stop_text
                    and stop_text
                    in self.tokenizer.decode(sampled[i][-8:], skip_special_tokens=True)
                ):
                    finish[i] = "stop"
                else:
                    keep.append(b)
            if not keep:
                break
            if len(keep) < len(rows):  # finished rows leave the batch and the cache
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                token, mask, pos = token[index], mask[index], pos[index]
                rows = [rows[b] for b in keep]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            pos = pos[:, -1:] + 1
            with self.autocast():
                out = self.model(
                    input_ids=token[:, None],
                    attention_mask=mask,
                    position_ids=pos,
                    use_cache=True,
                    **{self._cache: cache},
                )
            logits = out.logits[:, -1, :].float()
        logps: list[list[float]] = [[] for _ in prompts]
        for step_rows, values in step_logps:
            for i, v in zip(step_rows, values.tolist()):
                logps[i].append(v)
        decode = self.tokenizer.decode
        return [
            Generation(s, lp, decode(s, skip_special_tokens=True), f, allowed)
            for s, lp, f, allowed in zip(sampled, logps, finish, restrict.drawn_among)
        ]

    @staticmethod
    def _sample(
        logits: torch.Tensor,
        temperature: float,
        generator: torch.Generator | None,
        row_generators: Sequence[torch.Generator] | None,
        rows: Sequence[int],
        bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(token_B, its log-prob_B) drawn from `logits` (greedy at temperature 0), or from
        `logits + bias` (0 or -inf per token) when a bias is given."""
        logp = torch.log_softmax(logits / temperature if temperature > 0 else logits, dim=-1)
        drawn = logp if bias is None else torch.log_softmax(logp + bias, dim=-1)
        if temperature > 0 and row_generators is not None:
            u = torch.stack([torch.rand((), generator=row_generators[i]) for i in rows]).to(
                logits.device
            )
            cdf = drawn.exp().cumsum(-1)
            token = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(-1)
            token = token.clamp(max=cdf.shape[-1] - 1)
        elif temperature > 0:
            token = torch.multinomial(drawn.exp(), 1, generator=generator).squeeze(-1)
        else:
            token = drawn.argmax(-1)
        return token, drawn.gather(-1, token[:, None]).squeeze(-1)

    def _answer_ids(self, answers: Sequence[str]) -> list[list[int]]:
        """`encode_answer` of each answer, remembered (the same admissible actions recur)."""
        for a in answers:
            if a not in self._answers:
                self._answers[a] = self.encode_answer(a)
        return [self._answers[a] for a in answers]

    def _stop_ender_mask(self, stop_text: str, vocab: int) -> torch.Tensor:
        """A bool per token id, on the device: can this token complete `stop_text`? (Its text
        holds the stop text's last character, so the stop text can newly appear only there.)"""
        if stop_text not in self._stop_enders:
            last = stop_text[-1]
            ids = [i for i in range(len(self.tokenizer)) if last in self.tokenizer.decode([i])]
            mask = torch.zeros(max(vocab, len(self.tokenizer)), dtype=torch.bool)
            mask[ids] = True
            self._stop_enders[stop_text] = mask.to(self.device)
        return self._stop_enders[stop_text]

    # ---------------------------------------------------------------- scoring

    def _response_distributions(
        self,
        model,
        prompts: Sequence[Sequence[int]],
        responses: Sequence[Sequence[int]],
        temperature: float,
        allowed: Sequence[Sequence[Sequence[int]] | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-softmax over the vocabulary BTV, response tokens BT, mask BT) at the response
        positions; over the `allowed` ids only where a response was drawn among them."""
        width = max(len(r) for r in responses)
        # the shared head's cache would be recomputed without grad under checkpointing: none then
        shared = (
            shared_prefix_length(prompts)
            if len(prompts) > 1 and not self.cfg.gradient_checkpointing and self.share_prompt_head
            else 0
        )
        if shared:
            # The rows' common head (chat header, task, skills block) goes through the model once,
            # and every row continues from its keys and values: gradients reach the head's
            # weights through all rows, as in the unshared forward.
            head = torch.tensor([list(prompts[0][:shared])], dtype=torch.long, device=self.device)
            with self.autocast():
                cache = getattr(model(input_ids=head, use_cache=True), self._cache)
            cache.batch_repeat_interleave(len(prompts))
        else:
            cache = None
        ids, mask = self._left_pad([[*p[shared:], *r] for p, r in zip(prompts, responses)])
        pos = shared + (mask.cumsum(-1) - 1).clamp(min=0)
        if shared:
            mask = torch.cat([torch.ones_like(mask[:, :1]).expand(-1, shared), mask], dim=-1)
        with self.autocast():
            out = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=pos,
                use_cache=cache is not None,
                **{self._cache: cache},
                logits_to_keep=width + 1,
            )
        logits = out.logits[:, :-1, :].float()  # position j predicts token j + 1: the last `width`
        if temperature > 0 and temperature != 1.0:
            logits = logits / temperature
        bias = response_bias(allowed, width, logits.shape[-1])
        if bias is not None:
            logits = logits + bias.to(logits.device)
        logp_all = torch.log_softmax(logits, dim=-1)
        resp_mask = torch.zeros(logp_all.shape[:2], dtype=logp_all.dtype, device=logp_all.device)
        for i, r in enumerate(responses):
            if r:
                resp_mask[i, width - len(r) :] = 1.0
        return logp_all, ids[:, -width:], resp_mask

    def _forward_response(
        self,
        model,
        prompts: Sequence[Sequence[int]],
        responses: Sequence[Sequence[int]],
        temperature: float,
        entropy: bool,
        allowed: Sequence[Sequence[Sequence[int]] | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        logp_all, targets, resp_mask = self._response_distributions(
            model, prompts, responses, temperature, allowed
        )
        logp = logp_all.gather(-1, targets[..., None]).squeeze(-1)
        finite = logp_all.clamp(min=torch.finfo(logp_all.dtype).min)  # -inf outside `allowed`
        ent = -(logp_all.exp() * finite).sum(-1) if entropy else None
        return logp, ent, resp_mask

    def token_logprobs(
        self,
        prompts: Sequence[Sequence[int]],
        responses: Sequence[Sequence[int]],
        temperature: float = 1.0,
        entropy: bool = False,
        allowed: Sequence[Sequence[Sequence[int]] | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(logp_BT, entropy_BT or None, mask_BT) of the response tokens, with gradients.

        Responses are right-aligned: row i's tokens are the last len(responses[i]) columns.
        `allowed` (per row None, or the ids each token was drawn among: `Generation.allowed`)
        scores a held answer under the restriction it was sampled with.
        """
        return self._forward_response(
            self.model, prompts, responses, temperature, entropy, allowed
        )

    def answer_distributions(
        self, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log_softmax_BTV, tokens_BT, mask_BT): the whole next-token distribution at each
        response position (teacher-forced), with gradients; right-aligned as in `token_logprobs`."""
        return self._response_distributions(self.model, prompts, responses, 1.0)

    @torch.no_grad()
    def ref_logprobs(
        self,
        prompts: Sequence[Sequence[int]],
        responses: Sequence[Sequence[int]],
        temperature: float = 1.0,
        allowed: Sequence[Sequence[Sequence[int]] | None] | None = None,
    ) -> torch.Tensor:
        """Log-probs of the same tokens under the frozen reference (start) model (restricted to
        `allowed` as in `token_logprobs`)."""
        model = self.model if self.lora else self._ref
        with self.model.disable_adapter() if self.lora else contextlib.nullcontext():
            return self._forward_response(model, prompts, responses, temperature, False, allowed)[0]

    # ---------------------------------------------------------------- checkpoints

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The weights the optimizer changes (all of them, or the LoRA adapters), on CPU."""
        return {
            n: p.detach().cpu().clone() for n, p in self.model.named_parameters() if p.requires_grad
        }

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        missing = sorted(set(n for n, p in params.items() if p.requires_grad) - set(state))
        unknown = sorted(set(state) - set(params))
        if missing or unknown:
            raise ValueError(
                f"checkpoint does not fit this model: missing {missing[:3]}, unknown {unknown[:3]}"
            )
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value.to(params[name].device, params[name].dtype))
