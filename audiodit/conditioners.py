"""Text conditioners: prompts -> token embeddings, their mask and a pooled embedding for the DiT.

Two encoders share one interface, `TextConditioner`: a diffusers model, so it is a real pipeline
component (`save_pretrained` / `from_pretrained`, config.json naming the class and architecture,
weights in safetensors, reloading needs no network). Build one from the `text:` config section:

* ``kind: clip`` -- only the text tower of an open_clip model (ViT-B-32: 151M parameters in all,
  63M in its text tower), tokenized by open_clip's bundled BPE (works offline). `model_name` is an
  open_clip name; the architecture is open_clip's bundled JSON config, with optional overrides
  `context_length`, `width`, `layers`, `heads`, `embed_dim` (null keeps the model's own).
  `pretrained`: "none" (random init, logged), a local checkpoint (full CLIP or text-tower state dict;
  .safetensors, or .bin/.pt through `torch.load(weights_only=True)`), or an open_clip tag such as
  "laion2b_s34b_b79k" (downloaded; a clear error when the hub is unreachable)::

      text: {kind: clip, model_name: ViT-B-32, pretrained: /models/vit_b_32.safetensors,
             trainable: false, context_length: null, width: null, layers: null, heads: null,
             embed_dim: null}
* ``kind: clap`` -- transformers' `ClapTextModelWithProjection` and its tokenizer. `model_name`
  is a local directory (or hub id) with config.json (a CLAP or CLAP-text config) and the tokenizer
  files; `pretrained` is "none" (random init from that config, overrides allowed) or a directory,
  hub id or weights file with the weights. A tokenizer that cannot tokenize ordinary words is
  refused (transformers tokenizers built without vocabulary files map every word to special
  tokens)::

      text: {kind: clap, model_name: /models/clap-htsat-unfused,
             pretrained: /models/clap-htsat-unfused, trainable: false, context_length: null,
             width: null, layers: null, heads: null, embed_dim: null}

In Python::

    encoder = build_text_encoder(TextEncoderConfig(kind="clip", pretrained="none", **PRESETS["tiny"]))
    out = encoder.encode(["a slow piano melody", "rain on a tin roof"])
    out.embeddings  # (B, L, D) D = encoder.hidden_size, L = encoder.context_length, 0 at padding
    out.mask        # (B, L) bool, True = real token (start, words, end-of-text)
    out.pooled      # (B, P) P = encoder.pooled_dim (projected end-of-text / CLAP pooler output)
    encoder.save_pretrained("pipe/text_encoder")  # CLAP also writes pipe/text_encoder/tokenizer/
    encoder = CLIPTextConditioner.from_pretrained("pipe/text_encoder")

The unconditional ("null") condition for classifier-free guidance is all-zero embeddings and pooled
vector with only mask position 0 True. Zeros do not depend on the encoder's weights (cached
embeddings stay valid) and the DiT learns the unconditional response through its projection
biases; the one True position keeps every cross-attention row with a key to attend to (a fully
masked softmax row is 0/0 = NaN). Condition dropout (`dropout_prob`) replaces items by the null in
training mode, with a `force_drop_ids` hook as in DiT's `LabelEmbedder.token_drop`; `drop()` also
works on cached outputs. Conditioners are built in eval mode, as `from_pretrained` returns them:
`.train()` switches condition dropout on. They are frozen by default (no gradients; the tower stays
in eval mode under `.train()`); `trainable: true` trains the tower jointly with the DiT.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Literal

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.loaders.peft import PeftAdapterMixin
from diffusers.utils import BaseOutput

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------
# Config and output
# ----------------------------------------------------------------------------


@dataclass
class TextEncoderConfig:
    kind: Literal["clip", "clap"] = "clip"  # clip (open_clip text tower) | clap (transformers)
    model_name: str = "ViT-B-32"  # open_clip model name, or CLAP directory / hub id
    pretrained: str = "none"  # "none" (random init), a local checkpoint, an open_clip tag / CLAP dir
    trainable: bool = True  # train the text tower jointly with the DiT (False: frozen, cacheable)
    dropout_prob: float = 0.1  # condition dropout for classifier-free guidance (training only)
    context_length: int | None = 32  # tokens per prompt incl. start/end tokens (None: model's own)
    width: int | None = 128  # override: token embedding width D (None: model's own)
    layers: int | None = 3  # override: transformer layers (None: model's own)
    heads: int | None = 2  # override: attention heads (None: model's own)
    embed_dim: int | None = 128  # override: pooled (projected) width (None: model's own)
    # kind clip: a word-vector table (audiodit.word_vectors) added to the token embedding through a
    # learned map that starts at zero; "none": without
    word_vectors: str = "none"

    def __post_init__(self):
        if not 0.0 <= self.dropout_prob < 1.0:
            raise ValueError(f"text.dropout_prob must be in [0, 1), got {self.dropout_prob}")


# "small" (the defaults): a 3-layer, 128-wide CLIP text tower trained from scratch with the DiT on
# a narrow caption vocabulary; small enough (6.7M parameters, most of them the 49408-token
# embedding) that the whole bundled pipeline stays under 60 MB in fp16. "base": ViT-B-32's own text tower with LAION-2B weights, frozen (needs the
# checkpoint: a local path in `pretrained`, or the hub).
PRESETS: dict[str, dict] = {
    "tiny": {"context_length": 16, "width": 32, "layers": 2, "heads": 2, "embed_dim": 32},
    "small": {},
    "base": {"pretrained": "laion2b_s34b_b79k", "trainable": False, "context_length": None,
             "width": None, "layers": None, "heads": None, "embed_dim": None},
}


@dataclass
class TextEncoderOutput(BaseOutput):
    embeddings: torch.Tensor  # (B, L, D) token embeddings, zeros at padding positions
    mask: torch.Tensor  # (B, L) bool, True = real token
    pooled: torch.Tensor  # (B, P) pooled (projected) prompt embedding


# Set while `from_pretrained` rebuilds a saved conditioner: the saved safetensors hold the weights,
# so `__init__` must not fetch `pretrained` again (it may be a hub tag or a path on another machine).
_REBUILDING_FROM_SAVED = contextvars.ContextVar("rebuilding_from_saved", default=False)


def pad_and_concat(outputs: list[TextEncoderOutput]) -> TextEncoderOutput:
    """Concatenate text encoder outputs along the batch, padding token length (mask False)."""
    length = max(o.embeddings.shape[1] for o in outputs)
    embeddings, masks = [], []
    for o in outputs:
        pad = length - o.embeddings.shape[1]
        embeddings.append(torch.nn.functional.pad(o.embeddings, (0, 0, 0, pad)))
        masks.append(torch.nn.functional.pad(o.mask, (0, pad), value=False))
    return TextEncoderOutput(
        embeddings=torch.cat(embeddings), mask=torch.cat(masks), pooled=torch.cat([o.pooled for o in outputs])
    )


def _load_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    """Read a checkpoint file: safetensors, or a torch pickle restricted to tensors."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"cannot read checkpoint {path!r} with torch.load(weights_only=True) "
                         f"({error}); convert it to .safetensors") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # open_clip training checkpoints wrap the weights
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path!r} does not hold a state dict")
    return state


# ----------------------------------------------------------------------------
# Shared interface
# ----------------------------------------------------------------------------


class TextConditioner(ModelMixin, ConfigMixin, PeftAdapterMixin):
    """Base class: tokenize (CPU) -> forward (token embeddings, mask, pooled) + condition dropout.

    Subclasses set `hidden_size`, `pooled_dim`, `context_length` and `text_model` in `__init__` and
    implement `tokenize` and `_embed`.
    """

    hidden_size: int
    pooled_dim: int
    context_length: int

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _embed(self, tokens: dict[str, torch.Tensor]) -> TextEncoderOutput:
        raise NotImplementedError

    def _tokenizer_fingerprint(self) -> str:
        raise NotImplementedError

    def _apply_trainable(self) -> None:
        self.text_model.requires_grad_(self.config.trainable)
        if not self.config.trainable:
            self.text_model.eval()

    def train(self, mode: bool = True):
        # `self.training` still follows `mode` (it switches condition dropout), but a frozen tower
        # stays in eval mode so its own dropout layers never perturb the conditioning.
        super().train(mode)
        if not self.config.trainable:
            self.text_model.eval()
        return self

    def forward(self, tokens: dict[str, torch.Tensor], force_drop_ids: torch.Tensor | None = None,
                generator: torch.Generator | None = None, return_dict: bool = True):
        """tokens from `tokenize` (moved to the model's device) -> `TextEncoderOutput`."""
        output = self.drop(self._embed(tokens), force_drop_ids, generator)
        return output if return_dict else output.to_tuple()

    def encode(self, prompts: list[str], device: torch.device | str | None = None,
               force_drop_ids: torch.Tensor | None = None) -> TextEncoderOutput:
        """Convenience: `forward(tokenize(prompts), force_drop_ids)` on `device` (default: the model's device)."""
        device = self.device if device is None else device
        tokens = {name: value.to(device) for name, value in self.tokenize(prompts).items()}
        return self(tokens, force_drop_ids=force_drop_ids)

    def null_output(self, batch_size: int, device: torch.device | str | None = None) -> TextEncoderOutput:
        """The unconditional condition: zeros, with mask True at position 0 only (see module doc)."""
        device = self.device if device is None else device
        mask = torch.zeros(batch_size, self.context_length, dtype=torch.bool, device=device)
        mask[:, 0] = True
        return TextEncoderOutput(
            embeddings=torch.zeros(batch_size, self.context_length, self.hidden_size, dtype=self.dtype, device=device),
            mask=mask,
            pooled=torch.zeros(batch_size, self.pooled_dim, dtype=self.dtype, device=device),
        )

    def drop(self, output: TextEncoderOutput, force_drop_ids: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> TextEncoderOutput:
        """Replace items by the null condition: where `force_drop_ids == 1`, or with probability
        `dropout_prob` in training mode (DiT `LabelEmbedder.token_drop`). Works on cached outputs."""
        batch_size = output.embeddings.shape[0]
        if force_drop_ids is not None:
            drop_ids = torch.as_tensor(force_drop_ids, device=output.mask.device) == 1  # (B,)
        elif self.training and self.config.dropout_prob > 0:
            draw = torch.rand(batch_size, generator=generator, device=generator.device if generator else "cpu")
            drop_ids = (draw < self.config.dropout_prob).to(output.mask.device)  # (B,)
        else:
            return output
        if drop_ids.shape != (batch_size,):
            raise ValueError(f"force_drop_ids must have shape ({batch_size},), got {tuple(drop_ids.shape)}")
        null = self.null_output(batch_size, output.mask.device)
        length = output.mask.shape[1]
        keep = ~drop_ids
        return TextEncoderOutput(
            embeddings=torch.where(keep[:, None, None], output.embeddings,
                                   null.embeddings[:, :length].to(output.embeddings.dtype)),
            mask=torch.where(keep[:, None], output.mask, null.mask[:, :length]),
            pooled=torch.where(keep[:, None], output.pooled, null.pooled.to(output.pooled.dtype)),
        )

    def fingerprint(self) -> str:
        """Hash of everything that changes the outputs: config, tokenizer and weights (for caches)."""
        config = {k: v for k, v in self.config.items()
                  if not k.startswith("_") and k not in ("trainable", "dropout_prob", "pretrained")}
        digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
        digest.update(self._tokenizer_fingerprint().encode())
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(str(tensor.dtype).encode())
            # Raw bytes (bf16 has no numpy dtype); reshape first so 0-dim tensors can be viewed too.
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        token = _REBUILDING_FROM_SAVED.set(True)
        try:
            model = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        finally:
            _REBUILDING_FROM_SAVED.reset(token)
        model._after_load(str(pretrained_model_name_or_path), kwargs.get("subfolder"))
        model._apply_trainable()
        return model

    def _after_load(self, directory: str, subfolder: str | None) -> None:
        """Hook for state saved beside the weights (the CLAP tokenizer)."""

    @classmethod
    def from_preset(cls, name: str, **overrides) -> TextConditioner:
        if name not in PRESETS:
            raise ValueError(f"unknown text encoder preset {name!r}; choose from {sorted(PRESETS)}")
        return build_text_encoder(TextEncoderConfig(**{**PRESETS[name], **overrides}))


# ----------------------------------------------------------------------------
# CLIP text tower (open_clip)
# ----------------------------------------------------------------------------


WORD_VECTOR_PREFIX = "text_model.token_embedding.word_"  # the conditioner's word-vector tensors


class WordVectorEmbedding(torch.nn.Embedding):
    """The tower's token embedding plus `word_proj(word_table[id])`: a frozen pretrained word vector
    per token (zero for word pieces and unknown words, `audiodit.word_vectors`) through a learned
    linear map. The map starts at zero, so a trained tower given word vectors (`training.init_from`)
    computes what it did; `weight` keeps its name, so such a tower's weights load unchanged."""

    def __init__(self, embedding: torch.nn.Embedding, word_dim: int):
        super().__init__(embedding.num_embeddings, embedding.embedding_dim)
        self.weight = embedding.weight
        self.register_buffer("word_table", torch.zeros(embedding.num_embeddings, word_dim))
        self.word_proj = torch.nn.Linear(word_dim, embedding.embedding_dim)
        torch.nn.init.zeros_(self.word_proj.weight)
        torch.nn.init.zeros_(self.word_proj.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        words = self.word_table[ids].to(self.word_proj.weight.dtype)  # (B, L, d)
        return super().forward(ids) + self.word_proj(words)


class CLIPTextConditioner(TextConditioner):
    """The text tower of an open_clip model; the vision tower is never built. With `word_vectors`,
    its token embedding is a `WordVectorEmbedding` (the table is saved with the weights;
    `word_vector_dim` records its width so a saved conditioner rebuilds without the file)."""

    @register_to_config
    def __init__(self, model_name: str = "ViT-B-32", pretrained: str = "none", trainable: bool = False,
                 dropout_prob: float = 0.1, context_length: int | None = None, width: int | None = None,
                 layers: int | None = None, heads: int | None = None, embed_dim: int | None = None,
                 word_vectors: str = "none", word_vector_dim: int = 0):
        super().__init__()
        import open_clip
        from open_clip.model import _build_text_tower
        from open_clip.tokenizer import SimpleTokenizer

        model_cfg = open_clip.get_model_config(model_name)
        if model_cfg is None:
            raise ValueError(f"unknown open_clip model {model_name!r}; bundled configs include "
                             f"{open_clip.list_models()[:12]} ... (open_clip.list_models())")
        text_cfg = dict(model_cfg["text_cfg"])
        if text_cfg.get("hf_model_name") or text_cfg.get("hf_tokenizer_name"):
            raise ValueError(f"open_clip model {model_name!r} uses a Hugging Face text tower or "
                             "tokenizer, which needs the hub; pick a model with the bundled BPE "
                             "tokenizer (e.g. ViT-B-32) or use kind: clap")
        overrides = {"context_length": context_length, "width": width, "layers": layers, "heads": heads}
        text_cfg.update({key: value for key, value in overrides.items() if value is not None})
        if text_cfg["width"] % text_cfg["heads"]:
            raise ValueError(f"text width {text_cfg['width']} is not divisible by heads {text_cfg['heads']}")
        text_cfg["output_tokens"] = True  # forward returns (pooled, per-token states after ln_final)
        embed_dim = model_cfg["embed_dim"] if embed_dim is None else embed_dim

        self.quick_gelu = bool(model_cfg.get("quick_gelu", False))
        self.text_model = _build_text_tower(embed_dim, text_cfg, quick_gelu=self.quick_gelu)
        self.tokenizer = SimpleTokenizer(context_length=text_cfg["context_length"])
        if self.tokenizer.vocab_size > text_cfg["vocab_size"]:
            raise ValueError(f"vocab_size {text_cfg['vocab_size']} is smaller than the BPE tokenizer's "
                             f"{self.tokenizer.vocab_size}")
        self.hidden_size = text_cfg["width"]
        self.pooled_dim = embed_dim if self.text_model.text_projection is not None else self.hidden_size
        self.context_length = text_cfg["context_length"]

        if not _REBUILDING_FROM_SAVED.get():
            self._load_pretrained(model_name, pretrained)
        if word_vectors != "none" and not _REBUILDING_FROM_SAVED.get():
            from audiodit.word_vectors import load_table

            if not trainable:
                raise ValueError("text.word_vectors needs text.trainable: true (the map from the vectors starts "
                                 "at zero and learns with the tower)")
            table, known = load_table(word_vectors, self.text_model.token_embedding.num_embeddings)
            self._add_word_vectors(table.shape[1])
            self.text_model.token_embedding.word_table.copy_(table)
            self.register_to_config(word_vector_dim=int(table.shape[1]))
            logger.info("CLIP text tower: word vectors from %s (%d tokens known)", word_vectors, int(known.sum()))
        elif word_vector_dim:
            self._add_word_vectors(word_vector_dim)
        self._apply_trainable()
        self.eval()  # like `from_pretrained`: condition dropout only after an explicit `.train()`

    def _add_word_vectors(self, dim: int) -> None:
        self.text_model.token_embedding = WordVectorEmbedding(self.text_model.token_embedding, dim)

    def _load_pretrained(self, model_name: str, pretrained: str) -> None:
        import open_clip

        if pretrained == "none":
            logger.warning("CLIP text tower %s: random initialisation (pretrained: none)", model_name)
            return
        if os.path.isfile(pretrained):
            path = pretrained
        elif pretrained in open_clip.list_pretrained_tags_by_model(model_name):
            tag_cfg = open_clip.pretrained.get_pretrained_cfg(model_name, pretrained)
            if tag_cfg.get("quick_gelu") and not self.quick_gelu:
                raise ValueError(f"open_clip tag {pretrained!r} was trained with QuickGELU; use "
                                 f"model_name {model_name + '-quickgelu'!r}")
            try:
                path = open_clip.pretrained.download_pretrained(tag_cfg)
            except Exception as error:
                raise RuntimeError(
                    f"could not download open_clip weights {model_name}/{pretrained} ({error}); the hub is "
                    "unreachable (no network?): pass a local checkpoint path as `pretrained`") from error
            if not path:
                raise RuntimeError(f"open_clip has no download for {model_name}/{pretrained}")
        elif os.sep in pretrained or pretrained.endswith((".safetensors", ".bin", ".pt", ".pth")):
            raise FileNotFoundError(f"CLIP checkpoint {pretrained!r} does not exist")
        else:
            raise ValueError(f"pretrained {pretrained!r} is neither a file nor an open_clip tag of "
                             f"{model_name} ({open_clip.list_pretrained_tags_by_model(model_name)}) nor 'none'")
        self._load_text_tower(_load_state_dict_file(path), path)
        logger.info("CLIP text tower %s: weights from %s", model_name, path)

    def _load_text_tower(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Load the text-tower keys of a full CLIP (or bare text tower / saved conditioner) state dict."""
        state = {key.removeprefix("module."): value for key, value in state.items()}
        for prefix in ("text_model.", "text."):  # a saved conditioner; open_clip's CustomTextCLIP
            if any(key.startswith(prefix) for key in state):
                state = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
                break
        own_keys = self.text_model.state_dict().keys()
        tower = {key: value for key, value in state.items() if key in own_keys}
        position = tower.get("positional_embedding")
        if position is not None and position.shape[0] > self.context_length and self.text_model.attn_mask is not None:
            # The tower is causal: position i only sees positions <= i, so keeping the first
            # context_length positions gives identical outputs for prompts that fit.
            tower["positional_embedding"] = position[: self.context_length]
        missing = sorted(set(own_keys) - set(tower))
        if missing:
            raise ValueError(f"checkpoint {source!r} lacks text-tower weights {missing[:5]} "
                             f"({len(missing)} missing); is it a CLIP checkpoint of this model?")
        try:
            self.text_model.load_state_dict(tower, strict=True)
        except RuntimeError as error:
            raise ValueError(f"checkpoint {source!r} does not fit the text tower of {self.config.model_name} "
                             f"with these overrides (set width/layers/heads/embed_dim to null to keep the "
                             f"checkpoint's architecture): {error}") from error

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        if isinstance(prompts, str):
            raise TypeError("tokenize expects a list of prompts, got a single string")
        input_ids = self.tokenizer(list(prompts))  # (B, L) 0-padded, truncated prompts end with EOT
        # The mask runs up to the end-of-text token, not `ids != 0`: id 0 is a real BPE token ("!").
        end = (input_ids == self.tokenizer.eot_token_id).int().argmax(dim=1)  # (B,)
        mask = torch.arange(input_ids.shape[1])[None, :] <= end[:, None]  # (B, L)
        return {"input_ids": input_ids, "attention_mask": mask}

    def _embed(self, tokens: dict[str, torch.Tensor]) -> TextEncoderOutput:
        pooled, states = self.text_model(tokens["input_ids"])  # (B, P), (B, L, D)
        mask = tokens["attention_mask"].bool()  # (B, L)
        return TextEncoderOutput(embeddings=states * mask[..., None], mask=mask, pooled=pooled)

    def _tokenizer_fingerprint(self) -> str:
        import open_clip

        return f"open_clip-{open_clip.__version__}-bpe-{self.tokenizer.vocab_size}"


# ----------------------------------------------------------------------------
# CLAP text tower (transformers)
# ----------------------------------------------------------------------------

_PROBE_SENTENCE = "a piano melody with strings"
_TOKENIZER_SUBFOLDER = "tokenizer"


def check_tokenizer(tokenizer, source: str) -> None:
    """Refuse a tokenizer that maps ordinary words to special/unknown tokens only.

    transformers tokenizers built without their vocabulary files silently do exactly that
    ('a piano' -> [3, 2, 3, 2, 1]), which would train a model on constant conditioning."""
    ids = tokenizer(_PROBE_SENTENCE, add_special_tokens=False)["input_ids"]
    special = set(tokenizer.all_special_ids) | {tokenizer.unk_token_id}
    if not ids or all(i in special for i in ids):
        raise ValueError(f"tokenizer from {source!r} cannot tokenize ordinary words ({_PROBE_SENTENCE!r} "
                         f"-> {ids}, all special/unknown tokens); its vocabulary files are missing or broken")


class CLAPTextConditioner(TextConditioner):
    """transformers' `ClapTextModelWithProjection` (RoBERTa text tower + projection) and tokenizer."""

    @register_to_config
    def __init__(self, model_name: str = "laion/clap-htsat-unfused", pretrained: str = "none",
                 trainable: bool = False, dropout_prob: float = 0.1, context_length: int | None = None,
                 width: int | None = None, layers: int | None = None, heads: int | None = None,
                 embed_dim: int | None = None, text_config: dict | None = None):
        super().__init__()
        from transformers import ClapTextConfig, ClapTextModelWithProjection

        rebuilding = _REBUILDING_FROM_SAVED.get()
        if text_config is None:
            try:
                config = ClapTextConfig.from_pretrained(model_name)
            except OSError as error:
                raise OSError(f"cannot read a CLAP config from {model_name!r}: it is not a local directory "
                              f"and the hub did not provide it ({error}); pass a local directory "
                              "holding config.json and the tokenizer files") from error
        else:
            config = ClapTextConfig.from_dict(text_config)
        overrides = {"hidden_size": width, "num_hidden_layers": layers, "num_attention_heads": heads,
                     "projection_dim": embed_dim}
        for key, value in overrides.items():
            if value is not None:
                setattr(config, key, value)
        if width is not None:
            config.intermediate_size = 4 * width
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(f"CLAP width {config.hidden_size} is not divisible by heads {config.num_attention_heads}")
        # LAION-CLAP tokenizes captions to 77 tokens; RoBERTa positions start after the pad id.
        self.context_length = 77 if context_length is None else context_length
        max_length = config.max_position_embeddings - config.pad_token_id - 1
        if self.context_length > max_length:
            raise ValueError(f"context_length {self.context_length} exceeds the model's {max_length} positions")
        self.register_to_config(text_config=config.to_dict())  # the saved config names the architecture

        self.text_model = ClapTextModelWithProjection(config)
        self.hidden_size = config.hidden_size
        self.pooled_dim = config.projection_dim
        self.tokenizer = None if rebuilding else self._load_tokenizer(model_name)
        if not rebuilding:
            self._load_pretrained(model_name, pretrained)
        self._apply_trainable()
        self.eval()  # like `from_pretrained`: condition dropout only after an explicit `.train()`

    def _load_tokenizer(self, source: str, subfolder: str | None = None):
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(source, subfolder=subfolder or "")
        except (OSError, ValueError) as error:
            raise OSError(f"cannot load a CLAP tokenizer from {source!r}: it is not a local directory "
                          f"and the hub did not provide it ({error}); pass a local directory with "
                          "the tokenizer files") from error
        check_tokenizer(tokenizer, source)
        config = self.text_model.config
        if len(tokenizer) > config.vocab_size:
            raise ValueError(f"tokenizer from {source!r} has {len(tokenizer)} tokens, "
                             f"the model only {config.vocab_size}")
        if tokenizer.pad_token_id != config.pad_token_id:
            raise ValueError(f"tokenizer pad id {tokenizer.pad_token_id} != model pad_token_id {config.pad_token_id}")
        return tokenizer

    def _load_pretrained(self, model_name: str, pretrained: str) -> None:
        from transformers import ClapTextModelWithProjection

        if pretrained == "none":
            logger.warning("CLAP text tower from %s: random initialisation (pretrained: none)", model_name)
            return
        if os.path.isfile(pretrained):
            state = _load_state_dict_file(pretrained)
        else:
            try:
                state = ClapTextModelWithProjection.from_pretrained(pretrained).state_dict()
            except OSError as error:
                raise OSError(f"cannot load CLAP weights from {pretrained!r}: not a local file or "
                              f"directory, and the hub did not provide it ({error}); pass a local "
                              "directory or weights file") from error
        own_keys = self.text_model.state_dict().keys()
        if not any(key in own_keys for key in state):  # a saved conditioner nests one level deeper
            state = {key.removeprefix("text_model."): value for key, value in state.items()}
        # A full ClapModel state dict also holds the audio tower: keep the text tower's keys.
        state = {key: value for key, value in state.items() if key in own_keys}
        try:
            self.text_model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(f"CLAP weights {pretrained!r} do not fit the configured text model (set "
                             f"width/layers/heads/embed_dim to null to keep its architecture): {error}") from error
        logger.info("CLAP text tower: weights from %s", pretrained)

    def save_pretrained(self, save_directory, *args, **kwargs):
        super().save_pretrained(save_directory, *args, **kwargs)
        self.tokenizer.save_pretrained(os.path.join(save_directory, _TOKENIZER_SUBFOLDER))

    def _after_load(self, directory: str, subfolder: str | None) -> None:
        tokenizer_folder = os.path.join(subfolder or "", _TOKENIZER_SUBFOLDER)
        if os.path.isdir(directory):
            self.tokenizer = self._load_tokenizer(os.path.join(directory, tokenizer_folder))
        else:  # a hub id: the tokenizer is a subfolder of the same repository
            self.tokenizer = self._load_tokenizer(directory, subfolder=tokenizer_folder)

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        if isinstance(prompts, str):
            raise TypeError("tokenize expects a list of prompts, got a single string")
        encoded = self.tokenizer(list(prompts), padding="max_length", truncation=True,
                                 max_length=self.context_length, return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"].bool()}

    def _embed(self, tokens: dict[str, torch.Tensor]) -> TextEncoderOutput:
        mask = tokens["attention_mask"].bool()  # (B, L)
        out = self.text_model(input_ids=tokens["input_ids"], attention_mask=mask.long())
        states = out.last_hidden_state  # (B, L, D)
        return TextEncoderOutput(embeddings=states * mask[..., None], mask=mask, pooled=out.text_embeds)

    def _tokenizer_fingerprint(self) -> str:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        text = backend.to_str() if backend is not None else json.dumps(self.tokenizer.get_vocab(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------------
# Factory
# ----------------------------------------------------------------------------

TEXT_ENCODERS: dict[str, type[TextConditioner]] = {
    "clip": CLIPTextConditioner,
    "clap": CLAPTextConditioner,
}


def build_text_encoder(cfg: TextEncoderConfig) -> TextConditioner:
    """Build the conditioner named by `cfg.kind` (weights as `cfg.pretrained` says)."""
    if cfg.kind not in TEXT_ENCODERS:
        raise ValueError(f"unknown text encoder kind {cfg.kind!r}; choose from {sorted(TEXT_ENCODERS)}")
    kwargs = {key: value for key, value in dataclasses.asdict(cfg).items() if key != "kind"}
    if cfg.kind != "clip":
        if kwargs.pop("word_vectors") != "none":
            raise ValueError(f"text.word_vectors works with kind: clip (its BPE vocabulary), not {cfg.kind!r}")
    return TEXT_ENCODERS[cfg.kind](**kwargs)
