"""benchmarks/shipping_rule.py: the rule's thresholds applied to made-up result files with known answers."""

import copy
import json

import pytest

from benchmarks import shipping_rule

MTT = shipping_rule.MTT


def breadth(judge_auc=0.9, judge_p=0.001, onset_p=0.001, sound_corr=0.8, separation=1.7, separation_p=0.001,
            judge=True):
    model = {"label": "cand", "drums": {"low_onset_strength": {"p": onset_p, "auc": 0.9}},
             "sound_spectrum_correlation": sound_corr, "domain_separation": {"ratio": 1.9}}
    if judge:
        model["drums"]["judge_drums"] = {"auc": judge_auc, "p": judge_p}
        model["judge_separation"] = {"domain_separation": {"ratio": separation, "p": separation_p}}
    return {"models": [{"label": "v1", "drums": {}}, model]}


def domain(label, drums=0.8, frechet=(30.0, 40.0, 15.0), instrument=0.92, drums_p=0.002, num_prompts=48):
    domains = {d: {"frechet": {MTT: {f"{label}/generated": f}}, "adherence": {f"{label}/generated": {}}}
               for d, f in zip(("arrangement", "recording", "sound"), frechet)}
    domains["arrangement"]["adherence"][f"{label}/generated"]["drums_auc_drums"] = {"value": drums, "p": drums_p}
    domains["score"] = {"adherence": {f"{label}/generated": {"instrument_macro_auc": {"value": instrument}}}}
    return {"domains": domains, "settings": {"num_prompts": num_prompts, "seed": 0, "split": "test"}}


def evaluation(key=0.6, tempo=0.95, instrument=0.55, mode_p=0.01):
    return {"metrics": {"model": {"key_accuracy": key, "tempo_accuracy_octave": tempo, "instrument_accuracy": instrument}},
            "p_value_model_vs_shuffled": {"mode_accuracy": mode_p}}


@pytest.fixture
def files(tmp_path):
    def write(name, content):
        path = tmp_path / name
        path.write_text(json.dumps(content))
        return str(path)

    def run(**changes):
        parts = {"breadth": breadth(), "domain": domain("c"), "v1_domain": domain("v1", 0.6, (43, 60, 47), 0.925),
                 "evaluate": evaluation(), "v1_evaluate": evaluation(0.625, 0.953, 0.578),
                 "speed": {"wall_s": 3.7, "seconds_of_audio": 10.0}}
        parts.update(copy.deepcopy(changes))
        out = tmp_path / "rule.md"
        code = shipping_rule.main([
            "--candidate", "cand", "--prompt-breadth", write("b.json", parts["breadth"]),
            "--domain-eval", "c=" + write("d.json", parts["domain"]),
            "--v1-domain-eval", "v1=" + write("v.json", parts["v1_domain"]),
            "--evaluate", write("e.json", parts["evaluate"]), "--v1-evaluate", write("ve.json", parts["v1_evaluate"]),
            "--speed", write("s.json", parts["speed"]), "--out", str(out)])
        if code == 2:
            return code, None
        return code, json.loads(out.with_suffix(".json").read_text())

    return run


def test_a_model_that_meets_every_criterion_ships(files):
    code, report = files()
    assert code == 0 and report["verdict"] == "ship"
    assert sorted(report["criteria"], key=int) == [str(n) for n in range(3, 12)]


@pytest.mark.parametrize("changes, failing", [
    ({"breadth": breadth(judge_auc=0.74)}, "3"),
    ({"breadth": breadth(judge_p=0.02)}, "3"),
    ({"breadth": breadth(onset_p=0.06)}, "4"),
    ({"breadth": breadth(sound_corr=0.91)}, "5"),
    ({"breadth": breadth(separation=1.496)}, "6"),
    ({"breadth": breadth(separation_p=0.02)}, "6"),
    ({"domain": domain("c", drums=0.74)}, "7"),
    ({"domain": domain("c", drums_p=0.02)}, "7"),
    ({"domain": domain("c", frechet=(44.0, 40.0, 15.0))}, "8"),
    ({"domain": domain("c", frechet=(30.0, 61.0, 15.0))}, "8"),
    ({"domain": domain("c", frechet=(30.0, 40.0, 48.0))}, "8"),
    ({"domain": domain("c", instrument=0.87)}, "9"),
    ({"evaluate": evaluation(key=0.52)}, "10"),
    ({"evaluate": evaluation(tempo=0.86)}, "10"),
    ({"evaluate": evaluation(instrument=0.47)}, "10"),
    ({"evaluate": evaluation(mode_p=0.06)}, "10"),
    ({"speed": {"wall_s": 5.2, "seconds_of_audio": 10.0}}, "11"),
])
def test_each_threshold_fails_the_model_alone(files, changes, failing):
    code, report = files(**changes)
    assert code == 1 and report["verdict"] == f"do not ship: fails {failing}"
    assert [n for n, c in report["criteria"].items() if not c["holds"]] == [failing]


def test_what_was_not_measured_is_not_a_pass(files):
    code, report = files(breadth=breadth(judge=False))
    assert code == 1 and report["verdict"] == "do not ship: 3, 6 not measured"
    code, report = files(speed={"wall_s": 1.9, "seconds_of_audio": 5.0})  # 5 s of audio is not the rule's 10
    assert code == 1 and report["verdict"] == "do not ship: 11 not measured"


def test_bad_inputs_exit_2_with_one_line(files, tmp_path, capsys):
    """A broken input is not a verdict: status 2, one line naming it."""
    assert files(v1_domain=domain("v1", 0.6, (43, 60, 47), 0.925, num_prompts=16))[0] == 2
    assert files(evaluate={"metrics": {}})[0] == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("shipping_rule: error: ") for line in lines)
    assert "differ in ['num_prompts']" in lines[0] and "lacks 'model'" in lines[1]
    with pytest.raises(shipping_rule.RuleInputError, match="no model labelled 'other'"):
        shipping_rule.breadth_criteria(breadth(), "other")
    with pytest.raises(shipping_rule.RuleInputError, match="cannot read"):
        shipping_rule.load(tmp_path / "absent.json")
    with pytest.raises(shipping_rule.RuleInputError, match="LABEL=FILE"):
        shipping_rule.labelled("no-label")
