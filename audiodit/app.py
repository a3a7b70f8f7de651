"""A local web app: type, listen, look, edit, in the browser, offline.

    python -m audiodit.app [--model DIR] [--out outputs/ui] [--host 127.0.0.1] [--port 7860]
                           [--auth USER:PASSWORD] [--device auto] [--dtype auto]
    audiodit-ui ...                         (the same, installed with `pip install -e ".[ui]"`)

Built with Gradio (the `ui` extra). Every request becomes the argument list of `sample.py` and goes
through the CLI's own functions (`audiodit.cli`: the same checks, output names, sidecars, long-form,
editing, LoRA), so the page and the command line cannot disagree; a bad value is answered in the
page by the CLI's one-line message. Each request writes into a folder of its own under `--out`
(`run-0001`, ...), so nothing is overwritten, and requests run one at a time (Gradio's queue plus a
lock), so two tabs cannot clobber each other. Nothing is fetched from the internet: the theme uses
the system's fonts, analytics are off, and the page is served from the installed package.

Binding to anything but the loopback address needs `--auth USER:PASSWORD` (Gradio's login page).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from audiodit import cli

KEYS = [f"{tonic} {mode}" for mode in ("major", "minor")
        for tonic in ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")]
SCHEDULERS = ["FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler"]
MODES = ("audio-to-audio", "inpaint", "continue")
PLAYERS = 4  # result players on the page (the variations slider goes to 4)
SPECTROGRAM_COLOURS = [(0, 0, 4), (59, 15, 112), (140, 41, 129), (222, 73, 104), (254, 159, 109), (252, 253, 191)]


@dataclass
class Clip:
    audio: Path
    sidecar: dict
    spectrogram: Path


#################################################################################
#                   Requests: form values -> sample.py arguments                #
#################################################################################

def generation_arguments(form: dict) -> list[str]:
    """`sample.py` arguments for a Generate request (`form`: the page's fields by name)."""
    from audiodit.prompt_attributes import with_attributes  # torch: not at the app's import

    argv = [f"--prompt={with_attributes(form['prompt'], form.get('bpm'), form.get('key'))}",  # "=": may start with "-"
            "--duration", f"{float(form['duration']):g}", "--seed", str(int(form["seed"])),
            "--variations", str(int(form.get("variations") or 1))]
    optional = {"--negative-prompt": form.get("negative_prompt"), "--steps": form.get("steps"),
                "--guidance": form.get("guidance"), "--guidance-rescale": form.get("guidance_rescale"),
                "--scheduler": form.get("scheduler"), "--key-guidance": form.get("key_guidance"),
                "--key-classifier-scale": form.get("key_classifier_scale"), "--start": form.get("start"),
                "--format": form.get("format"), "--output-phase": form.get("output_phase"),
                "--window": form.get("window"), "--window-context": form.get("window_context"),
                "--vae": form.get("vae")}
    for flag, value in optional.items():
        if value not in (None, ""):
            argv.append(f"{flag}={int(value) if flag == '--steps' else value}")
    interval = (form.get("guidance_interval") or "").replace(",", " ").split()  # "LOW HIGH"
    if interval:
        argv += ["--guidance-interval", *interval]  # sample.py checks the two numbers
    for line in (form.get("sections") or "").splitlines():  # "SECONDS PROMPT" per line
        if line.strip():
            seconds, _, text = line.strip().partition(" ")
            argv += ["--section", seconds, text.strip()]
    if form.get("interpolate_to") or form.get("interpolate_seed") not in (None, ""):
        argv += ["--interpolation-steps", str(int(form.get("interpolation_steps") or 5))]
        if form.get("interpolate_to"):
            argv.append(f"--interpolate-to={form['interpolate_to']}")
        if form.get("interpolate_seed") not in (None, ""):
            argv += ["--interpolate-seed", str(int(form["interpolate_seed"]))]
    return argv + lora_arguments(form.get("lora"))


def edit_arguments(form: dict) -> list[str]:
    """`sample.py` arguments for an Edit request on `form["audio"]` (a file path)."""
    from audiodit.prompt_attributes import with_attributes  # torch: not at the app's import

    if not form.get("audio"):
        raise cli.UsageError("choose audio to edit: upload a file, record one, or send a result here")
    argv = [f"--prompt={with_attributes(form['prompt'], form.get('bpm'), form.get('key'))}",
            "--init-audio", str(form["audio"]), "--seed", str(int(form["seed"]))]
    mode = form["mode"]
    if mode == "audio-to-audio":
        argv += ["--strength", str(form["strength"])]
    elif mode == "inpaint":
        argv += ["--inpaint", str(form["inpaint_start"]), str(form["inpaint_end"])]
    elif mode == "continue":
        argv += ["--continue", str(form["continue_seconds"])]
    else:
        raise cli.UsageError(f"unknown edit mode {mode!r}; choose one of {', '.join(MODES)}")
    if form.get("steps") not in (None, ""):
        argv += ["--steps", str(int(form["steps"]))]
    return argv + lora_arguments(form.get("lora"))


def lora_arguments(text: str | None) -> list[str]:
    """One `--lora DIR[:SCALE]` per non-empty line."""
    return [part for line in (text or "").splitlines() if line.strip() for part in ("--lora", line.strip())]


def settings_of(sidecar: dict) -> dict:
    """The form values that made a clip, from its sidecar ("reuse these settings")."""
    return {"prompt": sidecar.get("prompt", ""), "seed": sidecar.get("seed", 0),
            "duration": round(float(sidecar.get("duration", 10.0)), 3),
            "steps": sidecar.get("num_inference_steps"), "guidance": sidecar.get("guidance_scale"),
            "negative_prompt": sidecar.get("negative_prompt") or "",
            "lora": "\n".join(f"{item['path']}:{item['scale']:g}" for item in sidecar.get("lora", []))}


#################################################################################
#                          Running requests, one at a time                      #
#################################################################################

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # an argparse complaint is a page message, not an exit
        raise cli.UsageError(message)


class Studio:
    """Runs `sample.py` requests in this process: one pipeline kept loaded per runtime setting, a
    lock around generation, a fresh output folder per request."""

    def __init__(self, model: Path | None = None, out: Path = Path("outputs/ui"), device: str = "auto",
                 dtype: str = "auto"):
        self.model = Path(model) if model else cli.default_model_dir()
        self.out = Path(out)
        self.device, self.dtype = device, dtype
        self.lock = threading.Lock()
        self.pipes: dict[tuple, object] = {}
        self.history: list[Clip] = []

    def _next_folder(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        taken = [int(p.name.split("-")[1]) for p in self.out.glob("run-*") if p.name.split("-")[1].isdigit()]
        return self.out / f"run-{max(taken, default=0) + 1:04d}"

    def run(self, arguments: list[str]) -> list[Clip]:
        """Generate as `sample.py ARGUMENTS` would, into a new folder; the clips it wrote."""
        with self.lock:
            folder = self._next_folder()
            args = cli.build_parser(_Parser).parse_args([*arguments, "--model", str(self.model), "--out", str(folder),
                                      "--device", self.device, "--dtype", self.dtype])
            prompts = cli.read_prompts(args)
            cli.validate(args)
            jobs = cli.plan_outputs(args, prompts)
            init_audio = cli.read_init_audio(args, cli.model_sampling_rate(self.model))
            cli.check_output_writable(jobs)
            pipe = self._pipeline(args)
            clips = []
            for path in cli.generate(args, jobs, pipe, init_audio):
                clips.append(Clip(path, json.loads(path.with_suffix(".json").read_text(encoding="utf-8")),
                                  write_spectrogram(path)))
            self.history.extend(clips)
            return clips

    def _pipeline(self, args):
        device, dtype = cli.pick_device_and_dtype(args.device, args.dtype)
        key = (device, str(dtype), args.scheduler, args.output_phase, str(args.vae))
        if key not in self.pipes:
            self.pipes.clear()  # one pipeline in memory: the settings of the latest request
            self.pipes[key] = cli.load_pipeline(self.model, device, dtype, args.scheduler, args.output_phase,
                                                steps=args.steps, vae=args.vae)
        pipe = self.pipes[key]
        if pipe.get_list_adapters().get("transformer") or pipe.get_list_adapters().get("text_encoder"):
            pipe.unload_lora_weights()  # the adapters of the request before
        pipe.lora_records = []
        if args.loras:
            cli.load_loras(pipe, args.loras)
        return pipe


def write_spectrogram(path: Path, height: int = 160, width: int = 640) -> Path:
    """A log-frequency spectrogram of the clip as PNG beside it (`NAME.png`), 80 dB range."""
    import numpy as np
    import torch
    from PIL import Image

    from audiodit.audio import load_audio

    audio = load_audio(path).mean(0)  # (S,) at 48 kHz
    spectrum = torch.stft(audio, 2048, 512, window=torch.hann_window(2048), return_complex=True).abs()  # (1025, F)
    bins = np.geomspace(2, spectrum.shape[0] - 1, height).round().astype(int)  # 23 Hz to 24 kHz, log-spaced
    level = 20 * torch.log10(spectrum[bins] + 1e-7)
    level = ((level - level.max() + 80.0) / 80.0).clamp(0, 1).flip(0).numpy()  # (height, F), low at the bottom
    anchors = np.linspace(0, 1, len(SPECTROGRAM_COLOURS))
    colours = np.stack([np.interp(level, anchors, [c[channel] for c in SPECTROGRAM_COLOURS])
                        for channel in range(3)], axis=-1).astype(np.uint8)
    image = Image.fromarray(colours).resize((width, height), Image.BILINEAR)
    out = path.with_suffix(".png")
    image.save(out)
    return out


#################################################################################
#                                    The page                                   #
#################################################################################

def build_app(studio: Studio):
    import gradio as gr

    def results(clips: list[Clip], seconds: float):
        files = [str(path) for clip in clips for path in (clip.audio, clip.audio.with_suffix(".json"))]
        history = [[index + 1, clip.sidecar.get("prompt", ""), clip.sidecar.get("seed"),
                    round(clip.sidecar.get("duration", 0.0), 2), str(clip.audio)] for index, clip in enumerate(studio.history)]
        status = f"Made {len(clips)} clip{'s' if len(clips) > 1 else ''} in {seconds:.1f} s: " + ", ".join(
            f"`{clip.audio.name}`" for clip in clips)
        shown = clips[:PLAYERS]  # more (interpolations) are in the downloads and the history
        slots = []
        for clip in shown:
            slots += [gr.update(value=str(clip.audio), visible=True, label=clip.audio.stem),
                      gr.update(value=str(clip.spectrogram), visible=True)]
        slots += [gr.update(value=None, visible=False)] * (2 * (PLAYERS - len(shown)))
        return (*slots, files, history, gr.update(choices=[str(row[0]) for row in history], value=str(len(history))),
                status)

    def failed(error: Exception):
        message = cli.in_flag_terms(str(error).splitlines()[0] if str(error) else type(error).__name__)
        return (*[gr.update()] * (2 * PLAYERS + 3), f"**Error:** {message}")

    def handle(build, form: dict):
        started = time.perf_counter()
        try:
            return results(studio.run(build(form)), time.perf_counter() - started)
        except (cli.UsageError, ValueError, FileExistsError, OSError) as error:
            return failed(error)

    with gr.Blocks(title="audiodit", analytics_enabled=False) as app:
        gr.Markdown("# audiodit\nText to stereo 48 kHz audio, on this machine. Outputs: "
                    f"`{studio.out}` (one folder per request, each clip with its `.json` settings).")
        with gr.Tab("Generate"):
            prompt = gr.Textbox(label="Prompt", lines=2, elem_id="prompt",
                                placeholder="A folk dance for fiddle and flute in A major, 120 BPM")
            negative = gr.Textbox(label="Negative prompt", elem_id="negative")
            with gr.Row():
                duration = gr.Number(10.0, label="Duration (s; beyond 30 s: long-form)", elem_id="duration")
                seed = gr.Number(0, label="Seed", precision=0, elem_id="seed")
                variations = gr.Slider(1, 4, value=1, step=1, label="Variations", elem_id="variations")
            with gr.Accordion("More settings", open=False):
                with gr.Row():
                    steps = gr.Number(None, label="Steps (empty: the model's)", precision=0, elem_id="steps")
                    guidance = gr.Number(None, label="Guidance (empty: the model's)", elem_id="guidance")
                    scheduler = gr.Dropdown(SCHEDULERS, value=None, label="Scheduler", allow_custom_value=True)
                with gr.Row():
                    bpm = gr.Number(None, label="Tempo (BPM; empty: as the prompt says)", elem_id="bpm")
                    key = gr.Dropdown(KEYS, value=None, label="Key (empty: as the prompt says)")
                    key_guidance = gr.Number(None, label="Key guidance")
                    key_classifier = gr.Number(None, label="Key classifier scale")
                with gr.Row():
                    guidance_rescale = gr.Number(None, label="Guidance rescale (0-1)")
                    guidance_interval = gr.Textbox(
                        "", label="Guidance interval 'LOW HIGH' (noise levels; empty: every step)")
                    start = gr.Number(None, label="Start (s; timing)")
                    fmt = gr.Dropdown(list(cli.FORMATS), value=None, label="Format (empty: wav)")
                    output_phase = gr.Dropdown(["decoder", "magnitude", "rebuilt"], value=None,
                                               label="VAE output phase (empty: the model's)")
                with gr.Row():
                    window = gr.Number(None, label="Long-form window (s)")
                    window_context = gr.Number(None, label="Long-form context (s)")
                    sections = gr.Textbox(label="Long-form sections, one 'SECONDS PROMPT' per line", lines=2)
                lora = gr.Textbox(label="LoRA adapters, one DIR[:SCALE] per line", lines=2, elem_id="lora")
                vae = gr.Textbox(label="Another VAE with the model's encoder (e.g. a fine-tuned decoder)")
                with gr.Row():
                    interpolate_to = gr.Textbox(label="Interpolate to prompt")
                    interpolate_seed = gr.Number(None, label="Interpolate to seed", precision=0)
                    interpolation_steps = gr.Slider(2, 9, value=5, step=1, label="Interpolation clips")
            generate = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Tab("Edit"):
            edit_audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio to edit",
                                  elem_id="edit-audio")
            edit_prompt = gr.Textbox(label="Prompt", elem_id="edit-prompt")
            mode = gr.Radio(list(MODES), value="audio-to-audio", label="Mode", elem_id="edit-mode")
            with gr.Row():
                strength = gr.Slider(0.05, 1.0, value=0.5, step=0.05, label="Strength (audio-to-audio)")
                inpaint_start = gr.Number(1.0, label="Inpaint from (s)")
                inpaint_end = gr.Number(2.0, label="Inpaint to (s)")
                continue_seconds = gr.Number(10.0, label="Continue by (s)")
                edit_seed = gr.Number(0, label="Seed", precision=0)
            edit = gr.Button("Edit", variant="primary", elem_id="edit")
        status = gr.Markdown(elem_id="status")
        slots = []  # a player and its spectrogram per clip of a request
        for index in range(PLAYERS):
            suffix = "" if index == 0 else f"-{index}"
            with gr.Row():
                slots.append(gr.Audio(label="Result", type="filepath", interactive=False, visible=index == 0,
                                      elem_id=f"result-audio{suffix}"))
                slots.append(gr.Image(label="Spectrogram", type="filepath", interactive=False, visible=index == 0,
                                      height=160, elem_id=f"result-spectrogram{suffix}"))
        downloads = gr.File(label="Download (audio and settings)", file_count="multiple", elem_id="downloads")
        with gr.Accordion("History of this session", open=True):
            history = gr.Dataframe(headers=["#", "prompt", "seed", "seconds", "file"], interactive=False,
                                   elem_id="history")
            settings = gr.JSON(label="Settings of the chosen clip (its sidecar)", elem_id="settings")
            with gr.Row():
                chosen = gr.Dropdown([], label="Clip #", elem_id="chosen")
                reuse = gr.Button("Reuse these settings", elem_id="reuse")
                send = gr.Button("Send to edit", elem_id="send")

        outputs = [*slots, downloads, history, chosen, status]
        fields = {"prompt": prompt, "negative_prompt": negative, "duration": duration, "seed": seed,
                  "variations": variations, "steps": steps, "guidance": guidance, "scheduler": scheduler, "bpm": bpm,
                  "key": key, "key_guidance": key_guidance, "key_classifier_scale": key_classifier,
                  "guidance_rescale": guidance_rescale, "guidance_interval": guidance_interval, "start": start,
                  "format": fmt, "output_phase": output_phase,
                  "window": window, "window_context": window_context, "sections": sections, "lora": lora, "vae": vae,
                  "interpolate_to": interpolate_to, "interpolate_seed": interpolate_seed,
                  "interpolation_steps": interpolation_steps}

        def on_generate(*values, progress=gr.Progress(track_tqdm=True)):
            return handle(generation_arguments, dict(zip(fields, values)))

        def on_edit(audio, text, chosen_mode, strength_value, start, end, seconds, seed_value, lora_text,
                    progress=gr.Progress(track_tqdm=True)):
            form = {"audio": audio, "prompt": text, "mode": chosen_mode, "strength": strength_value,
                    "inpaint_start": start, "inpaint_end": end, "continue_seconds": seconds, "seed": seed_value,
                    "lora": lora_text}
            return handle(edit_arguments, form)

        def pick(number):
            if not number or not studio.history:
                return None
            return studio.history[min(int(number), len(studio.history)) - 1]

        def on_reuse(number):
            clip = pick(number)
            if clip is None:
                return [gr.update()] * 7
            values = settings_of(clip.sidecar)
            return [values["prompt"], values["negative_prompt"], values["duration"], values["seed"], values["steps"],
                    values["guidance"], values["lora"]]

        def on_send(number):
            clip = pick(number)
            return (gr.update(), gr.update()) if clip is None else (str(clip.audio), clip.sidecar.get("prompt", ""))

        generate.click(on_generate, list(fields.values()), outputs, concurrency_limit=1)
        edit.click(on_edit, [edit_audio, edit_prompt, mode, strength, inpaint_start, inpaint_end, continue_seconds,
                             edit_seed, lora], outputs, concurrency_limit=1)
        reuse.click(on_reuse, [chosen], [prompt, negative, duration, seed, steps, guidance, lora])
        chosen.change(lambda number: (pick(number).sidecar if pick(number) else None), [chosen], [settings])
        send.click(on_send, [chosen], [edit_audio, edit_prompt])
    app.queue(default_concurrency_limit=1, max_size=32)
    return app


def theme():
    """Gradio's base theme on the system's fonts: nothing is fetched from a font service."""
    import gradio as gr

    return gr.themes.Base(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def check_binding(host: str, auth: str | None) -> tuple[str, str] | None:
    """(user, password) from `--auth`; a non-loopback `--host` without it is refused."""
    credentials = None
    if auth is not None:
        user, colon, password = auth.partition(":")
        if not colon or not user or not password:
            raise cli.UsageError("--auth must be USER:PASSWORD")
        credentials = (user, password)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and credentials is None:
        raise cli.UsageError(f"--host {host} lets other machines in; pass --auth USER:PASSWORD as well")
    return credentials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audiodit-ui", description="The audiodit web app (local, offline).")
    parser.add_argument("--model", type=Path, default=None, help="pipeline directory (default: bundled model)")
    parser.add_argument("--out", type=Path, default=Path("outputs/ui"), help="where requests write their clips")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--auth", default=None, help="USER:PASSWORD (required for a non-loopback --host)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"))
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        credentials = check_binding(args.host, args.auth)
        model = args.model or cli.default_model_dir()
        if not (Path(model) / "model_index.json").is_file():
            raise cli.UsageError(f"no pipeline at {model} (model_index.json missing); pass --model DIR")
        try:
            import gradio  # noqa: F401
        except ImportError:
            raise cli.UsageError('the web app needs Gradio: pip install -e ".[ui]"') from None
    except cli.UsageError as error:
        print(f"audiodit-ui: error: {error}", file=sys.stderr)
        return 2
    app = build_app(Studio(model, args.out, args.device, args.dtype))
    app.launch(server_name=args.host, server_port=args.port, auth=credentials, theme=theme(), ssr_mode=False,
               allowed_paths=[str(args.out.resolve())], footer_links=[])
    return 0


if __name__ == "__main__":
    sys.exit(main())
