"""vLLM as the rollout engine: token ids in, token ids and their log-probs out, colocated with
the learner on one device and given its weights after every update.

    sampler = VllmSampler(policy, cfg.sampling.vllm)   # vLLM installed beside torch
    answers = sampler.generate(prompt_ids, 32, 1.0, row_generators=gens)
    sampler.release()                                  # asleep during the update (GPU)
    sampler.load_weights(policy)                       # awake, with the updated weights

Choices:
- The engine runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), so weights go to it as
  tensors, not through a socket: full fine-tuning through vLLM's in-place `reload_weights`, LoRA
  on a GPU as a new adapter (saved by peft, loaded as a `LoRARequest` with a new id; the last
  one is dropped), LoRA on a CPU merged (base + delta, computed aside) and reloaded in place
  like full weights, since vLLM's CPU LoRA kernels sample no faster than the HF engine
  (`sampling.vllm.merge_lora`). A tied LM head is processed again after a reload (vLLM's CPU
  kernels pack it at load time, and the reload refreshes only the embedding that owns it).
- Every request carries a seed drawn from its row's generator (or the shared one): two rollouts
  given the same generators draw with common random numbers (SAPO's matched halves), and a run
  is reproducible. vLLM's draws are not the HF sampler's: the same seed gives other tokens.
- Log-probs are vLLM's processed ones (after temperature), of the sampled token only; the stop
  rules are the HF sampler's: `</action>` (kept in the answer), end of turn, the token limit.
  The answer's text is decoded from its token ids, as the HF sampler does.
- Prefix caching is on: the rows of a task group share their prompt's head.
- On a CPU chunked prefill is off: after a partial prefill vLLM rewinds the request's seeded
  generator, which only a CUDA generator allows, so a batch of seeded prompts longer than one
  step's token budget would stop with "CPU Generator does not use offset".
- On a GPU the engine sleeps during the update (level 2: weights dropped, KV cache freed, for
  full fine-tuning, since new weights come anyway; level 1 keeps LoRA's base weights in host
  memory) and wakes in `load_weights`. vLLM has no sleep mode on a CPU.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from skillvet.configerror import require as _require

if TYPE_CHECKING:
    from skillvet.policy.hf import Generation, Policy

STOP = "</action>"


@dataclass
class VllmConfig:
    kv_cache_gib: float | None = None
    """Memory for vLLM's KV cache in GiB (None: on a GPU the share `memory_fraction` leaves,
    on a CPU 1 GiB)."""
    memory_fraction: float = 0.4
    """GPU only: the share of the device's memory vLLM may take (weights + KV cache); the rest
    is the learner's, colocated on the same device."""
    max_model_len: int = 4096
    """Longest prompt + answer vLLM schedules, in tokens."""
    enforce_eager: bool = False
    """Run eagerly: no CUDA graphs or compilation (faster start, slower decoding)."""
    sleep: bool | None = None
    """Put vLLM to sleep during the update (weights offloaded, KV cache freed) so the learner
    has the device's memory (None: on a GPU yes, on a CPU no; vLLM sleeps on GPUs only)."""
    merge_lora: bool | None = None
    """Give vLLM a LoRA policy's weights merged (base + adapter, reloaded in place) instead of
    its adapter (None: on a CPU yes, where vLLM's LoRA kernels are plain torch ops and sample
    no faster than the HF engine, merged 7x faster: bench/lora_engines.py; on a GPU no)."""

    def __post_init__(self) -> None:
        _require(
            self.kv_cache_gib is None or self.kv_cache_gib > 0,
            "sampling.vllm.kv_cache_gib",
            "must be null or > 0",
        )
        _require(
            0.0 < self.memory_fraction < 1.0, "sampling.vllm.memory_fraction", "must be in (0, 1)"
        )
        _require(self.max_model_len >= 64, "sampling.vllm.max_model_len", "must be >= 64")


def _seed(generator: torch.Generator | None) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


class VllmSampler:
    """vLLM holding `policy`'s weights (see the module's docstring)."""

    exact = False

    def __init__(self, policy: Policy, cfg: VllmConfig) -> None:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # colocated: the engine in-process
        from vllm import LLM
        self.cfg = cfg
        self.device = policy.device
        self.tokenizer = policy.tokenizer
        self.eos_ids = sorted(policy.eos_ids)
        on_gpu = policy.device.type == "cuda"
        merge = cfg.merge_lora if cfg.merge_lora is not None else not on_gpu
        self.lora = policy.lora and not merge  # adapters in vLLM; else weights, merged if LoRA
        self._encode = policy.encode_prompt
        self.sleeps = cfg.sleep if cfg.sleep is not None else on_gpu
        kv_gib = cfg.kv_cache_gib if cfg.kv_cache_gib is not None else (None if on_gpu else 1.0)
        self._adapters = Path(tempfile.mkdtemp(prefix="skillvet-vllm-lora-"))
        self._adapter_id = 0
        self._lora_request = None
        self._asleep = 0  # the sleep level (0: awake)
        options = {}
        if not on_gpu:
            # vLLM takes back a seeded request's draw after a partial prefill by rewinding its
            # generator, which a CPU generator cannot do: no chunked prefill on a CPU, so every
            # prompt is prefilled whole (a step's budget then has to hold the longest one).
            options["enable_chunked_prefill"] = False
            options["max_num_batched_tokens"] = max(4096, cfg.max_model_len)
        if self.lora:
            options.update(enable_lora=True, max_lora_rank=policy.cfg.lora_rank, max_loras=1)
        self.llm = LLM(
            model=policy.base_name,
            dtype=policy.cfg.dtype,
            seed=0,
            enable_prefix_caching=True,
            max_model_len=cfg.max_model_len,
            enforce_eager=cfg.enforce_eager,
            logprobs_mode="processed_logprobs",
            kv_cache_memory_bytes=int(kv_gib * 2**30) if kv_gib is not None else None,
            gpu_memory_utilization=cfg.memory_fraction,
            enable_sleep_mode=self.sleeps,
            **options,
        )
        self.load_weights(policy)

    def encode_prompt(self, user_text: str) -> list[int]:
        return self._encode(user_text)

    # ---------------------------------------------------------------- sampling

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        row_generators: Sequence[torch.Generator] | None = None,
        stop_text: str | None = STOP,
        choices: Sequence[Sequence[str] | None] | None = None,
    ) -> list[Generation]:
        """One answer per prompt, as `Policy.generate` gives them (temperature 0: greedy).
        Answers restricted to `choices` are the HF engine's only."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from skillvet.policy.hf import Generation

        if not prompts:
            return []
        if choices is not None and any(choices):
            raise ValueError("answers restricted to choices (sampling.admissible_only): hf engine")
        if self._asleep == 2:
            raise RuntimeError("vLLM slept without its weights: call load_weights(policy) first")
        self._wake()
        params = [
            SamplingParams(
                temperature=temperature,
                max_tokens=max_new_tokens,
                logprobs=0,
                seed=_seed(row_generators[i] if row_generators is not None else generator),
                stop=[stop_text] if stop_text else None,
                include_stop_str_in_output=True,
                stop_token_ids=self.eos_ids,
                skip_special_tokens=True,
            )
            for i in range(len(prompts))
        ]
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(p)) for p in prompts],
            params,
            use_tqdm=False,
            lora_request=self._lora_request,
        )
        answers = []
        for out in outputs:
            done = out.outputs[0]
            ids = list(done.token_ids)
            logps = [d[t].logprob for t, d in zip(ids, done.logprobs)]
            if done.finish_reason == "length":
                finish = "length"
            else:
                finish = "stop" if isinstance(done.stop_reason, str) else "eos"
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            answers.append(Generation(ids, logps, text, finish))
        return answers

    # ---------------------------------------------------------------- weights and memory

    def load_weights(self, policy: Policy) -> None:
        """Sample from `policy`'s current weights: its LoRA adapters, or all of its weights."""
        self._wake()
        if self.lora:
            from vllm.lora.request import LoRARequest

            self._adapter_id += 1
            folder = self._adapters / str(self._adapter_id)
            policy.model.save_pretrained(folder)
            if self._lora_request is not None:
                self.llm.llm_engine.remove_lora(self._lora_request.lora_int_id)
            self._lora_request = LoRARequest(
                f"policy-{self._adapter_id}", self._adapter_id, str(folder)
            )
        else:
            weights = _merged(policy) if policy.lora else policy.model.named_parameters()
            dtype = policy.compute_dtype
            weights = [(n, p.detach().to(dtype)) for n, p in weights]
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
            self.llm.apply_model(_refresh_tied_head)
        self.llm.reset_prefix_cache()

    def release(self) -> None:
        """Sleep through the learner's update (GPU): the device's memory is the learner's."""
        if self.sleeps and not self._asleep:
            self._asleep = 1 if self.lora else 2
            self.llm.sleep(level=self._asleep)

    def _wake(self) -> None:
        if self._asleep:
            self.llm.wake_up()
            self._asleep = 0


def _merged(policy: Policy) -> list[tuple[str, torch.Tensor]]:
    """A LoRA policy's weights under the base model's names, each adapted one as base + delta,
    computed aside (the learner's base weights stay as they are)."""
    from peft.tuners.lora import LoraLayer

    base = policy.model.get_base_model()
    deltas = {
        name: module.get_delta_weight(module.active_adapters[0])
        for name, module in base.named_modules()
        if isinstance(module, LoraLayer)
    }
    weights = []
    for name, param in base.named_parameters():
        if ".lora_" in name:
            continue
        owner, _, leaf = name.rpartition(".base_layer.")
        if owner in deltas and leaf == "weight":
            weights.append((f"{owner}.weight", param.detach() + deltas[owner]))
        else:
            weights.append((name.replace(".base_layer.", "."), param.detach()))
    return weights


def _refresh_tied_head(model: torch.nn.Module) -> None:
    """Process a tied LM head again after its embedding's weights were reloaded."""
    head = getattr(model, "lm_head", None)
    embed = getattr(getattr(model, "model", None), "embed_tokens", None)
    if head is not None and embed is not None and head.weight is embed.weight:
        head.quant_method.process_weights_after_loading(head)
