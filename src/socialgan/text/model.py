"""A tiny GPT over characters (nanoGPT's shape: embeddings, pre-norm blocks of causal
self-attention and an MLP, a final norm and a head tied to the token embedding).

At the default size (2 layers, 64 wide, 64 characters of context, ~0.1 M parameters) a
CPU thread makes a few hundred steps a minute; on a benchmark of ~2,000 captions 64 wide
reached a lower perplexity in 90 s than 128 wide (benchmarks/caption_model.py). Captions
are short, so 64 characters of context see most of one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from socialgan.text.vocab import END, CharVocab


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    block_size: int = 64  # characters of context
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.1

    def to_json(self) -> dict:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, heads, T, C/heads)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(),
                                 nn.Linear(4 * config.n_embd, config.n_embd),
                                 nn.Dropout(config.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class CaptionLM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying: fewer parameters to learn
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual outputs
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, vocab) for token ids (B, T); with targets also the mean
        cross-entropy in nats per character."""
        T = idx.shape[1]
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, generator: torch.Generator,
                 temperature: float = 0.8, top_k: int | None = None,
                 stop_id: int | None = None) -> torch.Tensor:
        """idx (1, T) continued by up to max_new_tokens sampled ids (stopping after stop_id);
        the same generator state gives the same text."""
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.config.block_size:])
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                logits = logits.masked_fill(logits < kth, -float("inf"))
            next_id = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            idx = torch.cat([idx, next_id], dim=1)
            if stop_id is not None and int(next_id) == stop_id:
                break
        return idx


def sample_line(model: CaptionLM, vocab: CharVocab, seed: int, prompt: str = "",
                max_chars: int = 280, temperature: float = 0.8, top_k: int = 0) -> str:
    """One caption for seed, starting with prompt (a caption's first characters); the
    same model, seed and prompt give the same text."""
    generator = torch.Generator().manual_seed(int(seed))
    context = torch.tensor([[vocab.end_id, *vocab.encode(prompt)]], dtype=torch.long)
    was_training = model.training
    model.eval()
    try:
        out = model.generate(context, max_chars, generator, temperature=temperature,
                             top_k=top_k or None, stop_id=vocab.end_id)
    finally:
        model.train(was_training)
    return prompt + vocab.decode(out[0, context.shape[1]:].tolist()).split(END, 1)[0]
