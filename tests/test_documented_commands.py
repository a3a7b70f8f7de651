"""Every shell command that README.md and docs/*.md tell a user to run is accounted for (issue 22).

`documented_commands()` reads the fenced shell blocks of the docs (continuation lines joined,
"[optional ...]" parts and comments dropped, "a && b" split). Each command must match a rule of
`RULES` (the first that matches applies), and every rule must still match a command, so new docs cannot go unchecked and
stale rules cannot linger. The kinds:

* run: executed here, in the order of its document, in a scratch directory holding what the
  docs assume exists (`workspace`). Shrinking overrides are appended (`SHRINK`: one training
  step on tiny clips, 2 sampling steps, 1 s clips, one rendered piece); where a document names
  an input a reader made earlier in a way not shown (a trained VAE in `runs/vae_small`, the
  `data/music21_v3` corpus, a checkpoint step), `workspace` provides a stand-in;
* covered: executed by the named test instead (Debian packages that CI lacks are faked there, or
  the test already runs the command with the same entry point);
* gpu: needs several GPUs or bf16; its config and accelerate file are loaded and its overrides
  applied, nothing more;
* install: apt-get / pip / venv lines; the pip extras and constraints file they name exist. CI's
  own install line (the README's test command) is what executes them;
* ci: the test command itself.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_audio import write_dataset

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PROGRAMS = {"python", "python3", ".venv/bin/python", "pip", ".venv/bin/pip", "accelerate", "apt-get"}
ALIASES = {".venv/bin/python": "python", "python3": "python", ".venv/bin/pip": "pip"}  # one name per program
SHELL_LANGUAGES = {"", "bash", "sh", "shell"}

# (kind, pattern searched in the command as one line, detail)
RULES = [
    ("install", r"^apt-get ", ""),
    ("install", r"^pip install ", ""),
    ("install", r"^python -m venv ", ""),
    ("ci", r"^python -m pytest", ""),
    ("gpu", r"^accelerate launch (?!.*--cpu)", ""),
    ("covered", r"^accelerate launch --multi_gpu --num_processes 2 train\.py --cpu",
     "tests/training/test_multiprocess.py::test_two_processes_hold_identical_weights_and_see_disjoint_data"),
    ("covered", r"^python train\.py --config configs/finetune_(dit|vae)_small\.yaml data\.train_dir=my_audio "
                r"training\.output_dir=runs/my_(finetune|decoder)$",
     "tests/training/test_finetune.py::test_the_readmes_finetuning_commands_run_on_the_bundled_model"),
    ("covered", r"^python -m audiodit\.corpora\.recordings ",
     "tests/corpora/test_recordings.py::test_layout_and_audio_format"),
    ("covered", r"^python -m audiodit\.corpora\.sound_library ",
     "tests/corpora/test_sound_library.py::test_layout_audio_and_records"),
    ("covered", r"^python -m audiodit\.corpora\.sound_scenes ", "tests/corpora/test_sound_scenes.py::test_the_command_builds_scenes"),
    ("covered", r"^python -m audiodit\.evaluate ", "tests/test_evaluate.py::test_command_end_to_end_on_tiny_pipeline"),
    ("covered", r"^python -m audiodit\.word_vectors --glove ", "tests/test_word_vectors.py::test_table_round_trip_and_refusals"),
    ("covered", r"^python -m audiodit\.app", "tests/test_app.py::test_the_page_generates_shows_edits_and_answers_bad_input"),
    ("covered", r"^python sample\.py --vae runs/my_decoder ",
     "tests/test_cli_hardening.py::test_vae_swaps_in_a_decoder_with_the_models_encoder_and_refuses_another"),
    ("covered", r"^python -m audiodit\.export \S+ \S+ --vae runs/my_decoder$",
     "tests/test_export.py::test_export_ships_a_decoder_with_the_models_encoder_and_refuses_another"),
    ("run", r"^python (sample|train)\.py ", ""),
    ("covered", r"^python -m audiodit\.data\.merge_latents ", "tests/data/test_merge_latents.py::test_cli_errors_are_one_line"),
    ("run", r"^python -m audiodit\.(data\.(synthetic|preencode|webdataset|mix)"
            r"|corpora\.(mma_grooves|music21_corpus|speech|designed_sounds)"
            r"|training\.key_classifier|export) ", ""),
]

TRAIN_SHRINK = ["training.max_steps=1", "training.checkpoint_every=1", "training.warmup_steps=0",
                "training.sample_every=0", "data.batch_size=2", "data.clip_seconds=0.5", "data.min_seconds=0.25",
                "data.num_workers=0", "data.num_buckets=1", "data.val_dir="]
# (pattern, extra arguments appended, {text: replacement}); the first match applies
SHRINK = [
    (r"train\.py --config configs/(vae|dit)_tiny\.yaml$", [], {}),  # the quick start, as written (8 steps)
    (r"train\.py .*--resume latest", TRAIN_SHRINK[1:] + ["training.max_steps=2"], {}),
    (r"train\.py .*step-00000450", TRAIN_SHRINK, {"step-00000450": "step-00000001"}),
    (r"train\.py .*configs/dit_small\.yaml(?!.*data\.format=)", TRAIN_SHRINK + ["data.train_dir=data/toy", "--overwrite"], {}),
    # the docs give alternative ways to train one config, each a fresh run of it
    (r"train\.py ", TRAIN_SHRINK + ["--overwrite"], {}),
    (r"sample\.py .*(--continue|--inpaint|--strength)", ["--steps", "2"], {}),
    # long-form: two windows of the bundled model instead of minutes (a section inside them)
    (r"sample\.py .*--duration (120|180)$", ["--steps", "2", "--duration", "40"], {"60": "30"}),
    (r"sample\.py ", ["--steps", "2", "--duration", "1"], {}),
    (r"mma_grooves .*--list", [], {}),
    (r"mma_grooves ", ["--count", "3", "--workers", "1", "--max-seconds", "4",
                       "--soundfonts", "/usr/share/sounds/sf2/TimGM6mb.sf2"], {}),
    (r"music21_corpus ", ["--limit", "1", "--workers", "1", "--max-seconds", "4", "--works", "bach/bwv66.6"], {}),
    (r"key_classifier ", ["--steps", "2"], {}),
    (r"data\.speech ", ["--count", "2", "--workers", "1", "--max-seconds", "6"], {}),
    (r"data\.designed_sounds ", ["--count", "2", "--workers", "1", "--max-seconds", "4"], {}),
    (r"", [], {}),
]


def documented_commands() -> list[tuple[str, list[str]]]:
    """(document name, argument list) of every shell command in the docs' fenced blocks."""
    found = []
    for doc in DOCS:
        for language, block in re.findall(r"```(\w*)\n(.*?)```", doc.read_text(), re.S):
            if language not in SHELL_LANGUAGES:
                continue
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                line = re.sub(r"\s\[[^\]]*\]", "", line)  # "[--num-prompts 32]": optional, not run
                try:
                    tokens = shlex.split(line, comments=True)
                except ValueError:  # not shell (a file tree, an output excerpt)
                    continue
                command: list[str] = []
                for token in tokens + ["&&"]:
                    if token != "&&":
                        command.append(token)
                        continue
                    if command and command[0] in PROGRAMS:
                        found.append((doc.name, [ALIASES.get(command[0], command[0])] + command[1:]))
                    command = []
    return found


def rule_of(command: list[str]) -> tuple[str, str, str]:
    line = shlex.join(command)
    matches = [rule for rule in RULES if re.search(rule[1], line)]
    assert matches, f"{line!r}: a documented command that no rule of RULES accounts for"
    return matches[0]


def test_every_documented_command_has_a_rule_and_every_rule_a_command():
    commands = documented_commands()
    assert len(commands) >= 40, len(commands)  # the parser still finds the docs' commands
    used = {rule_of(command)[1] for _, command in commands}
    assert used == {rule[1] for rule in RULES}, f"rules matching no documented command: {set(r[1] for r in RULES) - used}"


def test_covering_tests_exist():
    for kind, _, where in RULES:
        if kind == "covered":
            path, name = where.split("::")
            assert re.search(rf"^def {name}\(", (REPO / path).read_text(), re.M), where


def test_install_lines_name_real_extras_and_files():
    import tomllib

    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for _, command in documented_commands():
        if rule_of(command)[0] != "install" or command[0] != "pip":
            continue
        for flag, value in zip(command, command[1:]):
            if flag == "-c":
                assert (REPO / value).is_file(), value
            if flag == "-e":
                assert re.fullmatch(r"\.(\[[\w,]+\])?", value), value
                assert set(re.findall(r"\w+", value)) <= extras, (value, extras)


def test_gpu_commands_load_their_configs_and_accelerate_files():
    import yaml

    from audiodit.config import load_config

    gpu = [command for _, command in documented_commands() if rule_of(command)[0] == "gpu"]
    assert gpu
    for command in gpu:
        script = command.index("train.py")
        launcher, arguments = command[:script], command[script + 1:]
        if "--config_file" in launcher:
            assert isinstance(yaml.safe_load((REPO / launcher[launcher.index("--config_file") + 1]).read_text()), dict)
        config = REPO / arguments[arguments.index("--config") + 1]
        overrides = [a for a in arguments if "=" in a and not a.startswith("-")]
        load_config(config, overrides)


#################################################################################
#                       Running the documents' commands                          #
#################################################################################

def _corpus(root: Path, domain: str, clips: int = 4):
    """A dataset builder's output for `domain`: captioned tones in train, valid and test splits."""
    keys = ["C major", "D minor", "E minor", "G major", "A minor", "F major"]
    write_dataset(root, {split: [{"id": f"{domain}-{split}-{i}", "domain": domain, "duration_s": 1.0,
                                  "caption": f"A {domain} piece in {keys[i % 6]}, {90 + 10 * i} BPM"}
                                 for i in range(count)]
                         for split, count in (("train", clips), ("valid", 2), ("test", 2))}, seconds=1.0)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A scratch directory standing in for a user's checkout: configs, a copy of the bundled model
    (export writes into it), and the inputs the documents presume (see the module docstring)."""
    from audiodit.audio import save_audio
    from audiodit.config import load_config
    from audiodit.data.synthetic import write_synthetic_dataset
    from audiodit.models.vae import AudioVAE
    import dataclasses

    (tmp_path / "configs").symlink_to(REPO / "configs")
    (tmp_path / "experiments").symlink_to(REPO / "experiments")
    shutil.copytree(REPO / "models" / "audiodit-small", tmp_path / "models" / "audiodit-small")
    (tmp_path / "runs" / "phase7" / "models").mkdir(parents=True)
    (tmp_path / "runs" / "phase7" / "models" / "audiodit-small").symlink_to(tmp_path / "models" / "audiodit-small")
    torch.manual_seed(0)
    for config, out in (("vae_small.yaml", "runs/vae_small"), ("vae_tiny.yaml", "runs/vae_tiny")):
        AudioVAE(**dataclasses.asdict(load_config(REPO / "configs" / config).vae)).save_pretrained(str(tmp_path / out))
    for folder in ("data/music21/train", "my_audio", "data/audio"):
        write_synthetic_dataset(tmp_path / folder, num_files=4, seconds=1.0, seed=1)
    for domain, folder in (("score", "music21_v3"), ("arrangement", "grooves"), ("recording", "recordings"),
                           ("sound", "sounds"), ("sound", "speech")):
        _corpus(tmp_path / "data" / folder, domain)
    t = np.arange(5 * 48000) / 48000
    wave = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    save_audio(tmp_path / "in.wav", np.stack([wave, wave]), 48000)
    (tmp_path / "prompts.txt").write_text("a folk song for flute\nan organ chorale in D minor\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _prepare_workspace_for(doc: str, root: Path) -> None:
    """Stand-ins made right before a document's commands: what other documents' commands made."""
    from audiodit.data.preencode import main as preencode

    if doc == "training.md":  # key_classifier --train reads latents the document made in an earlier phase
        assert preencode(["--vae", "models/audiodit-small/vae", "--data", "data/music21_v3/train",
                          "--out", "data/music21_v3_latents_v4", "--config", "experiments/configs/dit_small_cpu_v7.yaml",
                          "--no-captions"]) == 0
    if doc == "data.md":  # its mma_grooves line makes data/grooves, which its mix line then reads
        shutil.rmtree(root / "data" / "grooves")
    if doc == "README.md":  # its dit_tiny line trains on data/toy; its resume line continues a dit_small run
        from audiodit.data.synthetic import write_synthetic_dataset
        from audiodit.training.cli import main as train

        write_synthetic_dataset(root / "data" / "toy", num_files=4, seconds=1.0, seed=2)
        assert train(["--config", "configs/dit_small.yaml", *TRAIN_SHRINK, "data.train_dir=data/toy"]) == 0


def _shrunk(command: list[str]) -> list[str]:
    line = shlex.join(command)
    for pattern, extra, replace in SHRINK:
        if re.search(pattern, line):
            return [_replace_in(token, replace) for token in command] + extra
    raise AssertionError(line)


def _replace_in(token: str, replace: dict[str, str]) -> str:
    for old, new in replace.items():
        token = token.replace(old, new)
    return token


def _execute(command: list[str]) -> int:
    import importlib

    if command[:2] == ["python", "sample.py"]:
        from audiodit.cli import main
    elif command[:2] == ["python", "train.py"]:
        from audiodit.training.cli import main
    elif command[:2] == ["python", "-m"]:
        main = importlib.import_module(command[2]).main
        return main(command[3:])
    else:
        raise AssertionError(command)
    return main(command[2:])


def _runnable(doc: str) -> list[list[str]]:
    return [command for name, command in documented_commands() if name == doc and rule_of(command)[0] == "run"]


@pytest.mark.slow
@pytest.mark.parametrize("doc", ["README.md", "training.md", "data.md", "evaluation.md", "lora.md"])
def test_the_documents_commands_run(doc, workspace, single_thread):
    commands = _runnable(doc)
    assert commands, doc
    if doc in ("README.md", "data.md"):
        _prepare_workspace_for(doc, workspace)
    for command in commands:
        if doc == "training.md" and command[:3] == ["python", "-m", "audiodit.training.key_classifier"]:
            _prepare_workspace_for(doc, workspace)
        shrunk = _shrunk(command)
        code = _execute(shrunk)
        assert code in (0, None), f"{doc}: {shlex.join(shrunk)} exited {code}"
    if doc == "training.md":
        exported = json.loads((workspace / "models/audiodit-small/model_index.json").read_text())
        assert "key_classifier" in exported
        assert (workspace / "runs/vae_small_cpu_v2c/checkpoints/latest").is_file()
    if doc == "data.md":  # the arrangements were rendered, and mixed with the other domains
        assert (workspace / "data/grooves/metadata.jsonl").read_text().count("\n") == 3
        mixed = json.loads((workspace / "data/mix_v2/mix.json").read_text())
        assert "arrangement" in json.dumps(mixed), mixed
    if doc == "lora.md":  # the adapter trained, and both clips carry it in their sidecars
        scales = [json.loads((workspace / "outputs" / name).read_text())["lora"][0]["scale"]
                  for name in ("funk.json", "funk_half.json")]
        assert scales == [1.0, 0.5], scales
    if doc == "README.md":
        made = [p for p in (workspace / "outputs").iterdir() if p.suffix in (".flac", ".wav")]
        assert len(made) >= 8, made  # --variations 4 of two prompts, and the other lines' clips
