"""LoRA adapters for the DiT and the text tower: adding them, their files, and the pipeline's methods.

Low-rank adaptation (Hu et al. 2021, arXiv 2106.09685): a frozen weight W gains a trained update
(alpha / rank) * B A with A (rank x in) and B (out x rank); B starts at zero, so a fresh adapter
changes nothing. The layers are peft's, added through diffusers' `PeftAdapterMixin`, so
`set_adapters`, `fuse_lora`, `unfuse_lora`, `unload_lora_weights` and `delete_adapters` behave as in
diffusers' own pipelines (`AudioDiTLoraLoaderMixin`, a base of `AudioDiTPipeline`).

An adapter is one directory, the layout diffusers writes for a pipeline's LoRA plus two records:

    pytorch_lora_weights.safetensors   `transformer.<layer>.lora_A.weight`, `...lora_B.weight` (and
                                       `text_encoder.<layer>...` when the text tower was adapted);
                                       each component's LoRA settings in the file's metadata
    lora_info.json                     what it adapts: the base model's path and a fingerprint of
                                       its weights, rank, alpha, target layers, training steps
    weights_digests.json               SHA-256 of the weights file (`audiodit.integrity`)

Only local directories (or state dicts) load: nothing is fetched, nothing is unpickled.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from diffusers.loaders.lora_base import LoraBaseMixin

from audiodit.configuration import atomic_write_text

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"  # diffusers' name for a pipeline's LoRA file
INFO_NAME = "lora_info.json"
COMPONENTS = ("transformer", "text_encoder")  # what an adapter may adapt, as pipeline component names
# DiT layers adapted by default: self-attention, cross-attention and MLP of every block (the adaLN
# modulation and the embedders stay as trained).
DIT_TARGETS = ("attn.qkv", "attn.proj", "cross_attn.q", "cross_attn.kv", "cross_attn.proj", "mlp.0", "mlp.2")
# The text tower's MLP layers (open_clip names); its attention is a fused nn.MultiheadAttention.
TEXT_TARGETS = ("mlp.c_fc", "mlp.c_proj")
METADATA_KEY = "lora_adapter_metadata"  # diffusers' safetensors metadata key for LoRA settings


#################################################################################
#                         Adding adapters for training                          #
#################################################################################

def lora_config(rank: int, alpha: float, dropout: float, targets) -> "peft.LoraConfig":  # noqa: F821
    from peft import LoraConfig

    return LoraConfig(r=int(rank), lora_alpha=float(alpha or rank), lora_dropout=float(dropout),
                      target_modules=list(targets), init_lora_weights=True)


def matching_layers(module: torch.nn.Module, targets) -> list[str]:
    """Names of `module`'s linear layers that a target names (the whole name or its last parts, as
    peft matches). ValueError naming the target when one matches nothing."""
    # a layer that holds an adapter already is peft's wrapper around the linear layer (`base_layer`)
    linear = [name for name, layer in module.named_modules()
              if (isinstance(layer, torch.nn.Linear) or hasattr(layer, "base_layer"))
              and ".lora_" not in name and not name.endswith(".base_layer")]
    matched = []
    for target in targets:
        found = [name for name in linear if name == target or name.endswith("." + target)]
        if not found:
            examples = sorted({".".join(part for part in name.split(".") if not part.isdigit())[-40:] for name in linear})
            raise ValueError(f"LoRA target {target!r} matches no linear layer of {type(module).__name__}; "
                             f"its layers end in: {', '.join(examples[:24])}")
        matched += found
    return sorted(set(matched))


def add_adapter(module: torch.nn.Module, rank: int, alpha: float, dropout: float, targets,
                adapter_name: str = "default") -> int:
    """Freeze `module` and add a trainable LoRA adapter to the layers `targets` name; returns the
    number of trainable parameters it added."""
    matching_layers(module, targets)
    module.requires_grad_(False)
    module.add_adapter(lora_config(rank, alpha, dropout, targets), adapter_name=adapter_name)
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 of a model's own weights (adapters left out, peft's `base_layer` names folded back),
    so an adapter can tell whether it meets the model it was trained on."""
    from audiodit.integrity import state_digest

    return state_digest(base_state(module))


def base_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`module.state_dict()` without adapter tensors, under the names it has without adapters."""
    return {name.replace(".base_layer.", "."): value for name, value in module.state_dict().items()
            if ".lora_" not in name}


def adapter_tensors(state: dict[str, torch.Tensor], component: str, adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """The LoRA tensors of `component` in a full state dict (keys `component.<layer>.lora_A.<name>.weight`,
    as a DiT training module or an EMA holds them), in the file's naming (`<layer>.lora_A.weight`)."""
    prefix, marker = f"{component}.", f".{adapter_name}."
    return {name[len(prefix):].replace(marker, "."): value.detach().cpu().contiguous()
            for name, value in state.items()
            if name.startswith(prefix) and ".lora_" in name and marker in name}


def adapter_settings(module: torch.nn.Module, adapter_name: str = "default") -> dict:
    """The peft settings of one adapter, as diffusers writes them into the file's metadata."""
    settings = module.peft_config[adapter_name].to_dict()
    return {key: sorted(value) if isinstance(value, set) else value for key, value in settings.items()}


#################################################################################
#                                 Files                                         #
#################################################################################

def save_adapter(directory: str | Path, layers: dict[str, dict[str, torch.Tensor]], settings: dict[str, dict],
                 info: dict) -> Path:
    """Write an adapter directory: `layers` and `settings` by component name (`COMPONENTS`), `info`
    into lora_info.json. The weights file is written once, whole; digests are recorded last."""
    from safetensors.torch import save_file

    from audiodit.integrity import write_digests

    unknown = sorted(set(layers) - set(COMPONENTS))
    if unknown or not any(layers.values()):
        raise ValueError(f"an adapter holds LoRA tensors of {', '.join(COMPONENTS)}; got {sorted(layers)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"{component}.{name}": value for component, part in layers.items() for name, value in part.items()}
    packed = {f"{component}.{key}": value for component, part in settings.items() if component in layers
              for key, value in part.items()}
    metadata = {"format": "pt", METADATA_KEY: json.dumps(packed, indent=2, sort_keys=True)}
    partial = directory / (WEIGHTS_NAME + ".partial")
    save_file(tensors, str(partial), metadata=metadata)
    partial.replace(directory / WEIGHTS_NAME)
    atomic_write_text(directory / INFO_NAME, json.dumps(info, indent=2, sort_keys=True) + "\n")
    write_digests(directory)
    return directory


def read_adapter(source: str | Path | dict) -> tuple[dict[str, torch.Tensor], dict | None, dict]:
    """(tensors, metadata, info) of an adapter directory, its weights file, or a state dict. A
    directory's weights are checked against its digests first (`audiodit.integrity`)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from audiodit.integrity import verify_digests

    if isinstance(source, dict):
        return dict(source), None, {}
    path = Path(source)
    directory = path if path.is_dir() else path.parent
    weights = path / WEIGHTS_NAME if path.is_dir() else path
    if not weights.is_file():
        raise FileNotFoundError(f"{source} is not a LoRA adapter: no {WEIGHTS_NAME} (train one with "
                                "training.lora, docs/lora.md)")
    if weights.suffix != ".safetensors":
        raise ValueError(f"{weights}: LoRA weights load from .safetensors files only")
    verify_digests(directory, what=f"LoRA adapter {directory}")
    with safe_open(str(weights), framework="pt") as handle:
        raw = (handle.metadata() or {}).get(METADATA_KEY)
    metadata = json.loads(raw) if raw else None
    info_path = directory / INFO_NAME
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    return load_file(str(weights)), metadata, info


#################################################################################
#                            Pipeline methods                                   #
#################################################################################

class AudioDiTLoraLoaderMixin(LoraBaseMixin):
    """`load_lora_weights` and `save_lora_weights` for `AudioDiTPipeline`; the rest (`set_adapters`,
    `fuse_lora`, `unfuse_lora`, `disable_lora`, `enable_lora`, `delete_adapters`,
    `unload_lora_weights`, `get_active_adapters`, `get_list_adapters`) is diffusers' `LoraBaseMixin`."""

    _lora_loadable_modules = list(COMPONENTS)

    def load_lora_weights(self, pretrained_model_name_or_path_or_dict, adapter_name: str | None = None):
        """Add the adapter in a local directory (or its weights file, or a state dict) under
        `adapter_name` (default `default_<n>`), active at scale 1 beside the others already
        active; change scales with `set_adapters(names, adapter_weights=[...])`."""
        tensors, metadata, info = read_adapter(pretrained_model_name_or_path_or_dict)
        if not tensors or not all(".lora_" in name for name in tensors):
            raise ValueError(f"{pretrained_model_name_or_path_or_dict}: not a LoRA state dict (every tensor "
                             "name must contain '.lora_')")
        parts = {component: any(name.startswith(component + ".") for name in tensors) for component in COMPONENTS}
        if not any(parts.values()):
            raise ValueError(f"the LoRA tensors name none of {', '.join(COMPONENTS)} (keys start with "
                             f"{sorted({name.split('.')[0] for name in tensors})})")
        existing = {name for names in self.get_list_adapters().values() for name in names}
        active = [name for name in self.get_active_adapters() if name != adapter_name] if existing else []
        if adapter_name is None:
            adapter_name = next(f"default_{index}" for index in range(len(existing) + 1)
                                if f"default_{index}" not in existing)
        elif adapter_name in existing:
            raise ValueError(f"an adapter named {adapter_name!r} is loaded already; choose another adapter_name")
        recorded = info.get("base_fingerprint", {})
        for component in COMPONENTS:
            if not parts[component]:
                continue
            model = getattr(self, component)
            # the fingerprint is of float32 weights: a model loaded in another dtype cannot match it
            if component in recorded and model.dtype == torch.float32 and recorded[component] != fingerprint(model):
                logger.warning("LoRA %s was trained on another %s (%s); its effect here is untested",
                               pretrained_model_name_or_path_or_dict, component, info.get("base_model", "?"))
            model.load_lora_adapter(tensors, prefix=component, adapter_name=adapter_name, metadata=metadata,
                                    _pipeline=self)
        # peft activates only the adapter it just added; the ones active before stay so, at their scales
        scales = {**getattr(self, "_adapter_scales", {}), adapter_name: 1.0}
        active.append(adapter_name)
        self.set_adapters(active, adapter_weights=[scales.get(name, 1.0) for name in active])

    def set_adapters(self, adapter_names, adapter_weights=None):
        """diffusers' `set_adapters`; the scales are kept so a later `load_lora_weights` keeps them."""
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        weights = adapter_weights if isinstance(adapter_weights, list) else [adapter_weights] * len(names)
        scales = getattr(self, "_adapter_scales", {})
        scales.update({name: 1.0 if weight is None else weight for name, weight in zip(names, weights)})
        self._adapter_scales = scales
        super().set_adapters(names, adapter_weights)

    def unload_lora_weights(self):
        """diffusers' `unload_lora_weights`, forgetting the adapters' scales too."""
        super().unload_lora_weights()
        self._adapter_scales = {}

    def save_lora_weights(self, save_directory, adapter_name: str = "default", info: dict | None = None) -> Path:
        """Write the loaded or trained adapter `adapter_name` of every component that has it."""
        layers, settings = {}, {}
        for component in COMPONENTS:
            model = getattr(self, component, None)
            if model is not None and adapter_name in getattr(model, "peft_config", {}):
                layers[component] = adapter_tensors({f"{component}.{name}": value
                                                     for name, value in model.state_dict().items()},
                                                    component, adapter_name)
                settings[component] = adapter_settings(model, adapter_name)
        if not layers:
            raise ValueError(f"no component holds an adapter named {adapter_name!r}")
        return save_adapter(save_directory, layers, settings, info or {})

    def fuse_lora(self, components: list[str] | None = None, lora_scale: float = 1.0, safe_fusing: bool = False,
                  adapter_names: list[str] | None = None, **kwargs):
        """Fold the active adapters into the weights (faster sampling); `unfuse_lora` undoes it."""
        super().fuse_lora(components=components or self._adapted(), lora_scale=lora_scale, safe_fusing=safe_fusing,
                          adapter_names=adapter_names, **kwargs)

    def unfuse_lora(self, components: list[str] | None = None, **kwargs):
        super().unfuse_lora(components=components or self._adapted(), **kwargs)

    def _adapted(self) -> list[str]:
        return [component for component in COMPONENTS if getattr(getattr(self, component, None), "peft_config", None)]
