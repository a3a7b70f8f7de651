"""The typed configuration: YAML files, key=value overrides, errors that name the key."""

import dataclasses
from pathlib import Path

import pytest

from audiodit.config import Config, load_config
from audiodit.configuration import ConfigError, apply_overrides, from_dict, save_yaml, to_dict

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
EXPERIMENT_CONFIG_DIR = CONFIG_DIR.parent / "experiments" / "configs"  # the bundled model's phases


def test_defaults_round_trip_through_yaml(tmp_path):
    cfg = apply_overrides(Config(), ["dit.depth=3", "training.lr=3e-4", "audio.normalize=peak"])
    path = tmp_path / "cfg.yaml"
    save_yaml(cfg, path)
    assert load_config(path) == cfg


def test_nested_override_changes_only_that_field():
    base = Config()
    cfg = load_config(None, ["dit.depth=12", "training.betas=[0.8, 0.95]"])
    assert cfg.dit.depth == 12
    assert cfg.training.betas == (0.8, 0.95)
    assert dataclasses.replace(cfg.dit, depth=base.dit.depth) == base.dit
    assert cfg.vae == base.vae


def test_int_is_accepted_for_float_and_scientific_strings_parse():
    cfg = load_config(None, ["training.lr=1", "diffusion.logit_std=1.5e-1"])
    assert cfg.training.lr == 1.0 and isinstance(cfg.training.lr, float)
    assert cfg.diffusion.logit_std == pytest.approx(0.15)


@pytest.mark.parametrize(
    "override, key",
    [
        ("dit.depthh=3", "dit.depthh"),
        ("nonsense.depth=3", "nonsense"),
        ("training.lr.x=3", "training.lr.x"),
    ],
)
def test_unknown_key_is_an_error_naming_it(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


@pytest.mark.parametrize(
    "override, key",
    [
        ("dit.depth=deep", "dit.depth"),
        ("dit.depth=2.5", "dit.depth"),
        ("training.compile=maybe", "training.compile"),
        ("training.lr=fast", "training.lr"),
        ("stage=gan", "stage"),
        ("training.betas=[0.9]", "training.betas"),
    ],
)
def test_wrong_type_is_an_error_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_yaml_file_errors_name_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("dit:\n  depth: 4\n  widht: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*dit\.widht"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("dit: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_malformed_override_is_an_error():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["dit.depth"])


def test_from_dict_rejects_non_mapping_section():
    with pytest.raises(ConfigError, match="dit"):
        from_dict(Config, {"dit": 3})


def test_audio_config_validates_values():
    with pytest.raises(ConfigError, match="audio.channels"):
        load_config(None, ["audio.channels=1"])


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
def test_caption_drop_probabilities_are_validated(value):
    with pytest.raises(ConfigError, match=r"data\.caption_key_drop must be in \[0, 1\]"):
        load_config(None, [f"data.caption_key_drop={value}"])


@pytest.mark.parametrize("path", sorted([*CONFIG_DIR.glob("*.yaml"), *EXPERIMENT_CONFIG_DIR.glob("*.yaml")]),
                         ids=lambda p: p.name)
def test_every_shipped_config_loads_and_round_trips(path, tmp_path):
    cfg = load_config(path)
    out = tmp_path / "again.yaml"
    save_yaml(cfg, out)
    assert load_config(out) == cfg
    from audiodit.training import STAGES

    assert to_dict(cfg)["stage"] in STAGES  # a registered stage trains it


def test_staged_directory_appears_whole_or_not_at_all(tmp_path):
    from audiodit.configuration import staged_directory

    with staged_directory(tmp_path / "out") as staging:
        (staging / "a.txt").write_text("1")
        assert not (tmp_path / "out").exists()  # nothing at the destination until the block ends
    assert (tmp_path / "out" / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError):
        with staged_directory(tmp_path / "failed") as staging:
            (staging / "half.txt").write_text("x")
            raise RuntimeError("interrupted")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]  # no staging left behind
    with pytest.raises(FileExistsError):
        with staged_directory(tmp_path / "out") as staging:
            (staging / "b.txt").write_text("2")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a.txt"]
    with staged_directory(tmp_path / "out", replace=True) as staging:
        (staging / "b.txt").write_text("2")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["b.txt"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]


def test_a_variant_holds_only_its_differences_from_its_base(tmp_path):
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "root.yaml").write_text(
        "dit:\n  depth: 3\n  hidden_size: 64\ntraining:\n  lr: 1.0e-3\n  max_steps: 10\n  sample_prompts: [a, b]\n")
    (tmp_path / "bases" / "mid.yaml").write_text("base: root.yaml\ntraining:\n  max_steps: 20\n")
    (tmp_path / "variant.yaml").write_text("base: bases/mid.yaml\ndit:\n  depth: 5\ntraining:\n  sample_prompts: [c]\n")
    cfg = load_config(tmp_path / "variant.yaml")
    assert (cfg.dit.depth, cfg.dit.hidden_size) == (5, 64)  # a mapping merges key by key
    assert (cfg.training.lr, cfg.training.max_steps) == (1.0e-3, 20)  # through two bases, each relative to its file
    assert cfg.training.sample_prompts == ["c"]  # a list replaces
    assert load_config(tmp_path / "variant.yaml", ["training.max_steps=7"]).training.max_steps == 7


@pytest.mark.parametrize("text, message", [
    ("base: missing.yaml\n", "config file not found"),
    ("base: loop.yaml\n", "goes round in a circle"),
    ("base: [a]\n", "must name a YAML file"),
])
def test_bad_bases_are_one_clear_error(tmp_path, text, message):
    (tmp_path / "loop.yaml").write_text("base: variant.yaml\n")  # the circle: variant -> loop -> variant
    (tmp_path / "variant.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "variant.yaml")
