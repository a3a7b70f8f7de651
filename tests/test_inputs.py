"""Tests for audiodit/inputs.py: each generation setting has one rule, the pipeline and sample.py
refuse the same values with the same words (the CLI's in flag terms, before a model loads), and
the edit modes need initial audio and exclude one another."""

import pytest
import torch

from audiodit import cli
from audiodit.inputs import RULES, check_edits, check_inpaint_range, check_setting
from audiodit.testing import tiny_pipeline

# setting -> (a value it refuses, the pipeline keyword, the sample.py flag)
BAD = {
    "num_inference_steps": (0, "num_inference_steps", "--steps"),
    "guidance_scale": (-1.0, "guidance_scale", "--guidance"),
    "guidance_rescale": (1.5, "guidance_rescale", "--guidance-rescale"),
    "strength": (1.5, "strength", "--strength"),
}


def test_rules_accept_their_range_and_refuse_the_rest():
    for name, value in [("num_inference_steps", 1), ("guidance_scale", 0.0), ("guidance_rescale", 1.0),
                        ("key_guidance_scale", 0.0), ("key_classifier_scale", 3.0), ("strength", 1.0)]:
        check_setting(name, value)
    for name, value, words in [("num_inference_steps", 2.5, "a positive integer"),
                               ("num_inference_steps", True, "finite"),
                               ("guidance_rescale", -0.1, "in [0, 1]"), ("strength", 0.0, "in (0, 1]"),
                               ("key_guidance_scale", -1, ">= 0"), ("guidance_scale", float("nan"), "finite"),
                               ("strength", float("inf"), "finite")]:
        with pytest.raises(ValueError, match=f"`{name}` must be .*{words.split()[-1].strip('[(')}"):
            check_setting(name, value)
    assert set(BAD) <= set(RULES)


def test_edit_modes_need_audio_and_exclude_one_another():
    check_edits({"strength": False, "inpaint_range": False, "continuation_in_s": False}, False)  # plain text-to-audio
    check_edits({"inpaint_range": True}, True)
    with pytest.raises(ValueError, match="`continuation_in_s` needs `initial_audio`"):
        check_edits({"continuation_in_s": True}, False)
    with pytest.raises(ValueError, match="use only one of `strength`, `inpaint_range`"):
        check_edits({"strength": True, "inpaint_range": True}, True)
    check_inpaint_range(0.0, 1.5)
    for start, end in [(1.0, 1.0), (-1.0, 2.0), (0.0, float("nan"))]:
        with pytest.raises(ValueError, match="0 <= start < end"):
            check_inpaint_range(start, end)


@pytest.mark.parametrize("name", sorted(BAD))
def test_pipeline_and_cli_refuse_alike(name, single_thread):
    value, keyword, flag = BAD[name]
    pipe = tiny_pipeline(seed=0)
    call = {"audio_end_in_s": 1.0, "num_inference_steps": 2, "initial_audio": torch.zeros(2, 48000), keyword: value}
    with pytest.raises(ValueError) as from_pipeline:
        pipe("a piano", **call)
    args = cli.build_parser().parse_args(["--prompt", "a piano", "--init-audio", "in.wav", flag, str(value)])
    with pytest.raises(cli.UsageError) as from_cli:
        cli.validate(args)  # before any model or file is read
    assert str(from_cli.value) == str(from_pipeline.value).replace(f"`{keyword}`", flag)
    assert str(from_cli.value).startswith(f"{flag} must be")


def test_cli_names_the_edit_mode_without_audio():
    args = cli.build_parser().parse_args(["--prompt", "a piano", "--inpaint", "1", "2"])
    with pytest.raises(cli.UsageError, match="^--inpaint needs --init-audio"):
        cli.validate(args)
    args = cli.build_parser().parse_args(["--prompt", "x", "--init-audio", "in.wav", "--strength", "0.5",
                                          "--continue", "3"])
    with pytest.raises(cli.UsageError, match="^use only one of --strength, --continue$"):
        cli.validate(args)


def test_guidance_interval_is_refused_alike_by_the_pipeline_and_the_cli(single_thread):
    from audiodit.inputs import check_guidance_interval

    check_guidance_interval((0.0, 1.0))
    pipe = tiny_pipeline(seed=0)
    for bad in [(0.6, 0.4), (-0.1, 0.5), (0.2, 1.5), (0.1, float("nan"))]:
        with pytest.raises(ValueError, match="`guidance_interval` must satisfy 0 <= low < high <= 1") as from_pipeline:
            pipe("a piano", audio_end_in_s=1.0, num_inference_steps=2, guidance_interval=bad)
        args = cli.build_parser().parse_args(["--prompt", "a piano", "--guidance-interval", *map(str, bad)])
        with pytest.raises(cli.UsageError) as from_cli:
            cli.validate(args)
        assert str(from_cli.value) == str(from_pipeline.value).replace("`guidance_interval`", "--guidance-interval")
    with pytest.raises(ValueError, match="two noise levels"):
        check_guidance_interval(0.5)
