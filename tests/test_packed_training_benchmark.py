"""benchmarks/packed_training.py on the tiny preset: both steps run and the report names them."""

from benchmarks import packed_training


def test_the_benchmark_times_both_steps_and_reports_the_padding(tmp_path, capsys):
    out = tmp_path / "packed.md"
    assert packed_training.main(["--preset", "tiny", "--batch", "3", "--reps", "1", "--clip-seconds", "2",
                                 "--sound-share", "0.7", "--out", str(out)]) == 0
    report = out.read_text()
    assert "| padded (`forward`, frame mask) |" in report and "| packed (`forward_packed`" in report
    assert "padding)" in report and capsys.readouterr().out.strip() == report.strip()
    frames = packed_training.clip_frames(200, 10.0, 25.0, 0.4, seed=0)
    assert max(frames) == 250 and 25 <= min(frames) <= 100
    assert 0.3 < sum(f < 250 for f in frames) / 200 < 0.5  # about the sound share
