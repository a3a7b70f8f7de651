"""DiT stage: flow matching on the latents of a frozen VAE, with text and timing conditioning.

* The VAE is loaded from `vae_path` (an `AudioVAE.save_pretrained` directory, e.g. the `vae/` export
  of a vae-stage checkpoint) and frozen. Latents are `vae latents * vae.scaling_factor`.
* Latent scale: when the VAE's `scaling_factor` is exactly 1.0 (never set), a fresh run estimates it
  as 1 / std of the latents of the first `training.scaling_batches` batches (all processes
  together; posterior samples as in training, real frames only), as Stable Diffusion's 0.18215 was found (Rombach
  et al. 2022, §G). The value is stored in the VAE config of every export and restored on resume.
  Set any other value in the VAE's config.json to keep it.
* Text: `text` config. A frozen encoder (`text.trainable: false`) runs without gradients (through
  the pre-encoded caption cache when `data.format: latents`); a trainable one is trained with the
  DiT, inside the module DDP wraps. Condition dropout for classifier-free guidance is the
  conditioner's (`text.dropout_prob`, DiT `LabelEmbedder.token_drop` style). Captions may lose
  their tempo, key and later clauses while training (`data.caption_*_drop`,
  `audiodit.data.caption_augment`; the caption cache is then bypassed, as captions vary).
* LoRA (`training.lora`, `audiodit.lora`): the pipeline in `training.init_from` supplies every
  weight, the DiT (and, with `text_target_modules`, the text tower) is frozen and gains low-rank
  adapters; only they train, and checkpoints and the `lora/` export hold only them.
* Data: `data.format` folder (audio, encoded on the fly), latents (`audiodit.data.latents`, the fast
  path) or webdataset (`audiodit.data.webdataset`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from pathlib import Path

import diffusers
import torch
from torch import nn

from audiodit.conditioners import WORD_VECTOR_PREFIX, TextEncoderOutput, build_text_encoder
from audiodit.data.caption_augment import CaptionAugment
from audiodit.diffusion import FlowMatching
from audiodit.guidance import STATED
from audiodit.models.conditions import CONDITIONS, FRAME_CONDITIONS, GLOBAL_CONDITIONS, switched_on
from audiodit.models.embedders import MELODY_ABSENT, MELODY_REST
from audiodit.models.dit import AudioDiTModel
from audiodit.models.vae import AudioVAE
from audiodit.training.checkpoints import resolve_vae_dir
from audiodit.training.stage import Stage, build_audio_dataset, check_architecture, load_weights, resolve_init_source
from audiodit.training.tensorboard_logs import log_audio
from audiodit.training.vae_stage import VAEStage


class DiTTrainModule(nn.Module):
    """What DDP wraps: the transformer, plus the text encoder when it is trained."""

    def __init__(self, transformer: AudioDiTModel, text_encoder: nn.Module | None):
        super().__init__()
        self.transformer = transformer
        self.text_encoder = text_encoder

    def enable_gradient_checkpointing(self):
        self.transformer.enable_gradient_checkpointing()

    def forward(self, noisy, timesteps, seconds_start, seconds_total, frame_mask, text=None, tokens=None,
                conditions=None, drop_ids=None, packed: bool = False):
        """`conditions`: the transformer's global conditions by name (`models.conditions`).
        `packed` (`training.packed`): each clip's real frames only, all clips as one sequence with
        block-diagonal attention (`forward_packed`); the padded frames of the result are zero."""
        if tokens is not None:
            # condition dropout happens inside (training mode), or where `drop_ids` says
            text = self.text_encoder(tokens, force_drop_ids=drop_ids)
        if packed:
            frames = frame_mask.sum(dim=1).tolist()  # real frames per clip
            clips = [clip[:, :count] for clip, count in zip(noisy, frames)]  # S x (C, T_i)
            out = self.transformer.forward_packed(clips, timesteps, text.embeddings, text.mask, text.pooled,
                                                  seconds_start, seconds_total, **(conditions or {})).sample
            return torch.stack([nn.functional.pad(clip, (0, noisy.shape[-1] - clip.shape[-1])) for clip in out])
        return self.transformer(
            noisy, timesteps, text.embeddings, text.mask, text.pooled,
            seconds_start, seconds_total, frame_mask=frame_mask, **(conditions or {}),
        ).sample  # (B, C, T) velocity


class DiTStage(Stage):
    name = "dit"
    export_dirname = "pipeline"

    def __init__(self, cfg, accelerator):
        super().__init__(cfg, accelerator)
        if not cfg.vae_path:
            raise ValueError("the dit stage needs vae_path: a trained AudioVAE directory (e.g. "
                             "runs/vae/checkpoints/step-XXXXXXXX/vae)")
        device = accelerator.device
        # fp32 whatever it was saved in (a float16 export, e.g. models/audiodit-small/vae, is upcast)
        self.vae = AudioVAE.from_pretrained(str(resolve_vae_path(cfg.vae_path))).to(device, torch.float32)
        self.vae.eval().requires_grad_(False)
        self.text_encoder = build_text_encoder(cfg.text).to(device)
        lora = cfg.training.lora
        # The text tower runs inside the trained module when it trains: wholly, or through its adapters.
        self.text_trained = bool(lora.text_target_modules) if lora.enabled else cfg.text.trainable
        # widths left unset come from the VAE and text encoder (set ones must agree); every later
        # use of cfg.dit (architecture checks, exports, the run's config.yaml) sees the filled-in values
        cfg.dit = cfg.dit.with_widths(self.vae, self.text_encoder)
        if cfg.training.packed and switched_on(cfg.dit, "frames"):
            raise ValueError("training.packed takes no per-frame condition (dit.melody_conditioning): "
                             "forward_packed does not pack them yet; train padded")
        transformer = AudioDiTModel(**dataclasses.asdict(cfg.dit))
        self._init_pipe = None  # the pipeline adapters adapt, loaded once (training.lora)
        self.base_fingerprints: dict[str, str] = {}
        if lora.enabled:
            self._add_adapters(transformer)
        self.model = DiTTrainModule(transformer, self.text_encoder if self.text_trained else None)
        self.text_encoder.train()  # switches condition dropout on (a frozen tower stays in eval)
        self.flow = FlowMatching(cfg.diffusion)
        self.caption_cache = None
        self.caption_augment = CaptionAugment(cfg.data.caption_tempo_drop, cfg.data.caption_key_drop,
                                              cfg.data.caption_clause_drop)

    def _add_adapters(self, transformer: AudioDiTModel) -> None:
        """training.lora: the pipeline in training.init_from supplies every weight, on fresh runs and
        on resume alike (checkpoints hold only the adapters); then both models are frozen and the
        adapters added. Fingerprints of the base weights go into the stage state and the export."""
        from audiodit import lora as lora_tools

        lora = self.cfg.training.lora
        self.export_dirname = "lora"
        self.checkpoints_frozen_weights = False
        self._init_pipe = self._load_pretrained(self.cfg.training.init_from, transformer)
        models = {"transformer": (transformer, lora.target_modules)}
        if lora.text_target_modules:
            models["text_encoder"] = (self.text_encoder, lora.text_target_modules)
        else:
            self.text_encoder.requires_grad_(False)
        for component, (model, targets) in models.items():
            self.base_fingerprints[component] = lora_tools.fingerprint(model)
            added = lora_tools.add_adapter(model, lora.rank, lora.alpha, lora.dropout, targets)
            self.accelerator.print(f"dit: LoRA rank {lora.rank} on {component} ({len(targets)} targets): "
                                   f"{added:,} trainable parameters")

    def set_training(self, training: bool) -> None:
        self.model.train(training)
        self.text_encoder.train(training)  # condition dropout only while training

    def compile(self) -> None:
        self.model.transformer.compile()  # the text tower's tokenized inputs vary; the DiT is the cost

    # ------------------------------------------------------------------ data
    def build_dataset(self, rank, world_size):
        data = self.cfg.data
        if data.format != "latents":
            return build_audio_dataset(self.cfg, rank, world_size, self.vae.hop_length)
        from audiodit.data.latents import LatentDataset, collate_latents

        dataset = LatentDataset(data.train_dir, clip_seconds=data.clip_seconds,
                                num_buckets=data.num_buckets, seed=self.cfg.training.seed)
        dataset.check_vae(self.vae)
        if not self.text_trained and dataset.caption_dir is not None and not self.caption_augment.active:
            from audiodit.caption_cache import CaptionCache

            self.caption_cache = CaptionCache(dataset.caption_dir, self.text_encoder)
        return dataset, collate_latents

    @torch.no_grad()
    def _latents(self, batch: dict, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Unscaled latents (B, C, T) and the real-frame mask (B, T). Audio is encoded with a
        posterior sample (`generator`, else the global RNG); pre-encoded latents are the means."""
        device = self.accelerator.device
        if "latents" in batch:
            latents = batch["latents"].to(device).float()  # (B, C, T)
            frames = batch["num_frames"].to(device)
        else:
            audio = batch["audio"].to(device)  # (B, 2, S)
            latents = self.vae.encode(audio).latent_dist.sample(generator)  # (B, C, T)
            frames = torch.tensor([self.vae.latent_frames(int(n)) for n in batch["num_samples"]], device=device)
        frame_mask = torch.arange(latents.shape[-1], device=device)[None, :] < frames[:, None]  # (B, T)
        return latents, frame_mask

    def setup(self, first_batches):
        if float(self.vae.config.scaling_factor) != 1.0:
            return
        total = torch.zeros(3, dtype=torch.float64, device=self.accelerator.device)  # count, sum, sum of squares
        generator = torch.Generator(self.accelerator.device).manual_seed(self.cfg.training.seed)
        for index, batch in enumerate(first_batches):
            if index >= self.cfg.training.scaling_batches:
                break
            # Sampled like the training latents, from a private generator (global RNG untouched).
            latents, mask = self._latents(batch, generator)
            values = latents.double().transpose(1, 2)[mask]  # (real frames, C)
            total += torch.stack([torch.tensor(float(values.numel()), device=total.device, dtype=torch.float64),
                                  values.sum(), values.square().sum()])
        total = self.accelerator.reduce(total, reduction="sum")
        count, mean = total[0], total[1] / total[0].clamp_min(1)
        std = math.sqrt(max(float(total[2] / count.clamp_min(1) - mean.square()), 1e-12))
        self._set_scaling(1.0 / std)
        self.accelerator.print(f"dit: estimated vae.scaling_factor = {1.0 / std:.5f} "
                               f"(latent std {std:.5f} over {int(count)} values)")

    def _load_pretrained(self, path, transformer: AudioDiTModel):
        """Load the transformer and text tower weights of the pipeline `path` names (a pipeline
        directory or a dit run's latest export) into `transformer` and `self.text_encoder`; returns
        that pipeline."""
        from audiodit.pipeline import AudioDiTPipeline

        source = resolve_init_source(path)
        if not (source / "model_index.json").is_file():
            raise ValueError(f"training.init_from={str(path)!r}: the dit stage starts from a pipeline "
                             f"directory (model_index.json) or a dit run, not {source}")
        pipe = AudioDiTPipeline.from_pretrained(str(source))
        # Tempo, beat and key conditioning may be added to a model trained without them (not removed).
        check_architecture("dit", dataclasses.asdict(self.cfg.dit), dict(pipe.transformer.config), source,
                           ignore=_added_conditioning(self.cfg.dit, pipe.transformer.config))
        added = load_weights(transformer, pipe.transformer.state_dict(), "transformer",
                             source / "transformer", new_modules=tuple(c.attribute + "." for c in CONDITIONS))
        if added and self.cfg.training.lora.enabled:  # frozen and zero, they would never do anything
            raise ValueError(f"training.lora: the config adds {sorted({name.split('.')[0] for name in added})} to "
                             f"{source}, which has none; adapters train only what the model has")
        if added:
            self.accelerator.print(f"dit: {source} lacks {sorted({name.split('.')[0] for name in added})}; the "
                                   f"config adds them ({len(added)} new tensors, zero output at first)")
        # Word vectors may be added to a tower trained without them (their map starts at zero).
        added_text = load_weights(self.text_encoder, pipe.text_encoder.state_dict(), "text encoder",
                                  source / "text_encoder", new_modules=(WORD_VECTOR_PREFIX,))
        if added_text:
            self.accelerator.print(f"text encoder: {source} lacks word vectors; the config adds them "
                                   f"({len(added_text)} new tensors, zero output at first)")
        pipe.source = source
        return pipe

    def initialize_from(self, path, first_batches):
        """Start the transformer and the text tower from a trained pipeline (a pipeline directory or a
        dit run's latest export) instead of a random init. The latent scale: the pipeline's when
        vae_path holds the same encoder (e.g. a decoder fine-tuned with `training.freeze:
        [vae.encoder]`); estimated again, as on a fresh run, when the encoder differs."""
        pipe = self._init_pipe or self._load_pretrained(path, self.model.transformer)
        source = pipe.source
        same_encoder = self.vae.same_encoder_as(pipe.vae)  # the initial pipeline may be a float16 export
        trained_scale = float(pipe.vae.config.scaling_factor)
        if not same_encoder:
            self.accelerator.print(f"dit: the VAE encoder in vae_path differs from the one {source} was trained "
                                   f"with: the transformer starts from its weights but must learn the new latents")
            self.setup(first_batches)  # estimates the scale of the new latents unless vae_path sets one
        elif float(self.vae.config.scaling_factor) == 1.0:
            self._set_scaling(trained_scale)
        elif not math.isclose(float(self.vae.config.scaling_factor), trained_scale, rel_tol=1e-6):
            raise ValueError(f"training.init_from: {source} was trained at vae.scaling_factor {trained_scale:g}, "
                             f"but the VAE in vae_path={self.cfg.vae_path!r} (same encoder) sets "
                             f"{float(self.vae.config.scaling_factor):g}")
        self.accelerator.print(f"dit: started from {source} (vae.scaling_factor {self.vae.config.scaling_factor:g})")
        self._init_pipe = None

    def _set_scaling(self, value: float) -> None:
        self.vae.register_to_config(scaling_factor=float(value))

    def state_dict(self):
        state = {"scaling_factor": float(self.vae.config.scaling_factor)}
        if self.base_fingerprints:
            state["base_fingerprints"] = dict(self.base_fingerprints)
        return state

    def load_state_dict(self, state):
        if "scaling_factor" in state:
            self._set_scaling(state["scaling_factor"])
        self._init_pipe = None
        saved = state.get("base_fingerprints", {})
        changed = sorted(name for name, value in saved.items() if self.base_fingerprints.get(name) != value)
        if changed:
            raise ValueError(f"training.init_from={self.cfg.training.init_from!r}: its {' and '.join(changed)} "
                             "weights differ from those this run's adapters were trained on; resume with the "
                             "pipeline the run started from")

    # ------------------------------------------------------------------ losses
    def prepare_batch(self, batch):
        device = self.accelerator.device
        latents, frame_mask = self._latents(batch)
        if self.caption_augment.active and self.model.training:
            # one draw from the global RNG seeds this batch's choices: resume restores it exactly
            rng = random.Random(int(torch.randint(2**62, ())))
            batch = {**batch, "caption": [self.caption_augment(caption, rng) for caption in batch["caption"]]}
        inputs = {
            "x0": latents * float(self.vae.config.scaling_factor),  # (B, C, T)
            "frame_mask": frame_mask,
            "seconds_start": batch["seconds_start"].to(device).float(),
            "seconds_total": batch["seconds_total"].to(device).float(),
        }
        drop_ids = None
        conditions = switched_on(self.cfg.dit, "global")
        if conditions or self.cfg.dit.melody_conditioning:
            # Global conditions (tempo, key) are part of the prompt: read from the caption as at
            # sampling (guidance.STATED) and dropped (`absent`) exactly where the text is, so the
            # unconditional branch of classifier-free guidance has none of them.
            drop_ids = self._drop_ids(len(batch["caption"]))
            for condition in conditions:
                values = STATED[condition.name].from_prompts(batch["caption"])
                inputs[condition.name] = torch.where(drop_ids, torch.full_like(values, condition.absent),
                                                     values).to(device)
            drop_ids = drop_ids.to(device)
            inputs["drop_ids"] = drop_ids
        if self.cfg.dit.melody_conditioning:
            inputs["melody"] = self._melody(batch, latents.shape[-1], drop_ids)
        if self.text_trained:
            inputs["tokens"] = {k: v.to(device) for k, v in self.text_encoder.tokenize(batch["caption"]).items()}
        else:
            with torch.no_grad():
                if self.caption_cache is not None:
                    out = self.caption_cache.get(batch["caption"])
                    out = TextEncoderOutput(*(t.to(device) for t in (out.embeddings, out.mask, out.pooled)))
                    inputs["text"] = self.text_encoder.drop(out, drop_ids)
                else:
                    inputs["text"] = self.text_encoder.encode(batch["caption"], device, force_drop_ids=drop_ids)
        return inputs

    def _melody(self, batch: dict, frames: int, drop_ids: torch.Tensor) -> torch.Tensor:
        """`(B, frames)` melody per latent frame: pre-encoded (`preencode --melody`) or taken from the
        batch's audio (`audiodit.melody`), absent where the text is dropped (guidance's unconditional
        branch) and for a `data.melody_drop` share of clips while training, so the model learns to
        work without one and a melody guidance branch has something to contrast with."""
        if "melody" in batch:
            melody = batch["melody"].long()  # (B, T)
            melody = torch.nn.functional.pad(melody, (0, frames - melody.shape[-1]), value=MELODY_REST)[:, :frames]
        elif "audio" in batch:
            from audiodit.melody import melody_ids

            melody = torch.stack([melody_ids(audio.cpu(), self.vae.sampling_rate, self.vae.latent_rate, frames)
                                  for audio in batch["audio"]])  # zero padding has no pitch
        else:
            raise ValueError("dit.melody_conditioning: the training data has no melody; pre-encode it with "
                             "python -m audiodit.data.preencode --melody")
        dropped = drop_ids.cpu().clone()
        if self.model.training and self.cfg.data.melody_drop > 0:
            dropped |= torch.rand(len(dropped)) < self.cfg.data.melody_drop
        return torch.where(dropped[:, None], torch.full_like(melody, MELODY_ABSENT), melody).to(self.accelerator.device)

    def _drop_ids(self, batch_size: int) -> torch.Tensor:
        """`(B,)` bool: which items lose their condition (text, tempo and key) this step."""
        if not (self.text_encoder.training and self.cfg.text.dropout_prob > 0):
            return torch.zeros(batch_size, dtype=torch.bool)
        return torch.rand(batch_size) < self.cfg.text.dropout_prob

    def compute_losses(self, model, inputs, step):
        x0 = inputs["x0"]
        noise = torch.randn_like(x0)  # (B, C, T)
        timesteps = self.flow.sample_timesteps(x0.shape[0], device=x0.device)  # (B,)
        noisy = self.flow.add_noise(x0, noise, timesteps)  # (B, C, T)
        prediction = model(noisy, timesteps, inputs["seconds_start"], inputs["seconds_total"],
                           inputs["frame_mask"], text=inputs.get("text"), tokens=inputs.get("tokens"),
                           conditions={c.name: inputs[c.name] for c in GLOBAL_CONDITIONS + FRAME_CONDITIONS
                                       if c.name in inputs},
                           drop_ids=inputs.get("drop_ids"), packed=self.cfg.training.packed)
        loss = self.flow.loss(prediction, x0, noise, inputs["frame_mask"])
        return {"loss": loss}

    # ------------------------------------------------------------------ export and samples
    def build_pipeline(self, model_state):
        from audiodit.pipeline import AudioDiTPipeline

        if self.cfg.training.lora.enabled:  # the adapted models, with `model_state`'s (EMA) adapter weights
            transformer = copy.deepcopy(self.model.transformer).cpu()
            transformer.load_state_dict(_strip(model_state, "transformer."))
            text_encoder = copy.deepcopy(self.text_encoder).cpu()
            if self.text_trained:
                text_encoder.load_state_dict(_strip(model_state, "text_encoder."))
        else:
            transformer = AudioDiTModel(**dataclasses.asdict(self.cfg.dit))
            transformer.load_state_dict(_strip(model_state, "transformer."))
            text_encoder = copy.deepcopy(self.text_encoder).cpu()
            if self.cfg.text.trainable:
                text_encoder.load_state_dict(_strip(model_state, "text_encoder."))
        diff = self.cfg.diffusion
        if not hasattr(diffusers, diff.scheduler):
            raise ValueError(f"diffusion.scheduler {diff.scheduler!r} is not a diffusers scheduler")
        scheduler = getattr(diffusers, diff.scheduler)(num_train_timesteps=1000, shift=diff.shift)
        vae = copy.deepcopy(self.vae).cpu()
        return AudioDiTPipeline(
            vae=vae, transformer=transformer.eval(), text_encoder=text_encoder.eval(), scheduler=scheduler,
            default_num_inference_steps=diff.num_inference_steps, default_guidance_scale=diff.guidance_scale,
        )

    def export(self, model_state, out_dir: Path):
        if not self.cfg.training.lora.enabled:
            self.build_pipeline(model_state).save_pretrained(str(out_dir), safe_serialization=True)
            return
        from audiodit import lora as lora_tools

        lora = self.cfg.training.lora
        models = {"transformer": self.model.transformer, "text_encoder": self.text_encoder}
        layers = {name: lora_tools.adapter_tensors(model_state, name) for name in self.base_fingerprints}
        settings = {name: lora_tools.adapter_settings(models[name]) for name in self.base_fingerprints}
        info = {"base_model": str(resolve_init_source(self.cfg.training.init_from)),
                "base_fingerprint": dict(self.base_fingerprints), "rank": lora.rank,
                "alpha": settings["transformer"]["lora_alpha"],
                "target_modules": list(lora.target_modules), "text_target_modules": list(lora.text_target_modules),
                "vae_scaling_factor": float(self.vae.config.scaling_factor)}
        lora_tools.save_adapter(out_dir, layers, settings, info)

    @torch.no_grad()
    def log_samples(self, model_state, step, writer, batch):
        tcfg = self.cfg.training
        pipe = self.build_pipeline(model_state)
        pipe.set_progress_bar_config(disable=True)
        seconds = min(self.cfg.data.clip_seconds, float(self.cfg.dit.max_seconds))
        generator = torch.Generator().manual_seed(tcfg.seed)  # fixed: comparable across steps, off the global RNG
        audios = pipe(list(tcfg.sample_prompts), audio_end_in_s=seconds, num_inference_steps=tcfg.sample_steps,
                      guidance_scale=self.cfg.diffusion.guidance_scale, generator=generator).audios
        for index, audio in enumerate(audios):
            log_audio(writer, f"dit/sample_{index}", audio, self.cfg.audio.sample_rate, step)


def resolve_vae_path(vae_path: str) -> Path:
    """A VAE directory, a pipeline directory (its `vae/`), or a vae-stage run/checkpoint directory
    (its latest `vae/` export)."""
    return resolve_vae_dir(vae_path, "vae_path", (VAEStage.export_dirname,))


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v.detach().cpu() for k, v in state.items() if k.startswith(prefix)}


def _added_conditioning(dit_cfg, saved) -> tuple[str, ...]:
    """Conditioning inputs a config may add to a model trained without them (`training.init_from`):
    their layers start at zero output. Removing one is an architecture mismatch. `latent_rate` only
    matters with beat conditioning, so a model without it may take any."""
    names = tuple(condition.switch for condition in switched_on(dit_cfg))
    return names + (() if saved.get("beat_conditioning", False) else ("latent_rate",))
