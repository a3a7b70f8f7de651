"""benchmarks/generation_speed.py on a tiny saved pipeline: the whole call, its parts, and the same
call with a guidance interval, side by side in one JSON."""

import json

from benchmarks import generation_speed


def test_the_benchmark_times_the_call_its_parts_and_a_guidance_interval(tmp_path, capsys):
    from audiodit.testing import tiny_pipeline

    tiny_pipeline(seed=0).save_pretrained(tmp_path / "model")
    out = tmp_path / "speed.json"
    generation_speed.main(["--model", str(tmp_path / "model"), "--seconds", "0.5", "--repeats", "1",
                           "--guidance-interval", "0.2", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result == json.loads(capsys.readouterr().out)
    assert result["guidance_interval"] == [0.2, 1.0] and result["seconds_of_audio"] == 0.5
    for name in ("wall_s", "wall_s_with_guidance_interval", "wall_s_again", "vae_decode_s",
                 "transformer_step_with_cfg_s"):
        assert result[name] > 0, name
