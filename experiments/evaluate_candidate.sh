#!/usr/bin/env bash
# Evaluate a model v2 candidate against the shipping rule (docs/evaluation.md, "Bundled model v2:
# the shipping rule"), from its training checkpoint to the verdict, on a machine that may be bare:
#
#   bash experiments/evaluate_candidate.sh NAME CHECKPOINT_PIPELINE
#   e.g. bash experiments/evaluate_candidate.sh v2_phase9 runs/dit_small_cpu_v2_phase9/checkpoints/step-00008000/pipeline
#
# The steps of docs/evaluation.md's phase sections in one place (about 50 min on 2 cores, the speed
# run alone at the end): the judge's interpreter (.venv-judge: tensorflow-cpu + musicnn, audiodit/judge.py)
# and the low-band decoder (configs/finetune_vae_small_lows.yaml, runs/decoder_lows) when missing; the
# export with that decoder and v1's key classifier at scale 12; then prompt_breadth (v1 beside it),
# domain_eval on the four domains, audiodit.evaluate on 64 held-out score prompts (compare_evals
# against v1's run of the same prompts), generation_speed, and benchmarks.shipping_rule. Needs the
# data of experiments/rebuild_v8_data.sh. Results go to experiments/results/*_NAME_*; a result file
# that exists is kept, and its step is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bash experiments/evaluate_candidate.sh NAME CHECKPOINT_PIPELINE" >&2; exit 2; }
NAME=$1
SOURCE=$2
PY=${PY:-.venv/bin/python}
RESULTS=experiments/results
MODEL=runs/${NAME}_candidate/audiodit-small-${NAME}
step() { echo "== $(date +%H:%M:%S) $*"; }

step "judge interpreter"
if [ ! -x .venv-judge/bin/python ]; then
    python3 -m venv .venv-judge
    .venv-judge/bin/pip install -q "tensorflow-cpu==2.21.*" "tf-keras==2.21.*" librosa
    .venv-judge/bin/pip install -q --no-deps musicnn==0.1.0
fi

step "low-band decoder"
if [ ! -d runs/decoder_lows/checkpoints ]; then
    [ -f data/grooves_lows/metadata.jsonl ] || $PY -m audiodit.corpora.mma_grooves --out data/grooves_lows --count 48 \
        --workers 2 --max-seconds 10
    [ -f data/music21_lows/metadata.jsonl ] || $PY -m audiodit.corpora.music21_corpus --out data/music21_lows \
        --limit 48 --max-seconds 10 --workers 2
    mkdir -p data/decoder_mix
    ln -sfn ../grooves_lows/train data/decoder_mix/grooves
    ln -sfn ../music21_lows/train data/decoder_mix/music21
    $PY train.py --config configs/finetune_vae_small_lows.yaml
fi

step "export"
[ -f "$MODEL/model_index.json" ] || $PY -m audiodit.export "$SOURCE" "$MODEL" --vae runs/decoder_lows \
    --key-classifier models/audiodit-small --key-classifier-scale 12

step "prompt_breadth (v1 beside it)"
[ -f "$RESULTS/prompt_breadth_${NAME}_cpu.json" ] || $PY -m benchmarks.prompt_breadth --model models/audiodit-small \
    --model "$MODEL" --out "outputs/breadth_${NAME}" --report "$RESULTS/prompt_breadth_${NAME}_cpu"

step "domain_eval"
[ -f "$RESULTS/domain_eval_${NAME}_48_cpu.json" ] || $PY -m benchmarks.domain_eval --model "${NAME}=$MODEL" \
    --data arrangement=data/grooves --data recording=data/recordings --data sound=data/sounds_v4 \
    --data score=data/music21 --out "$RESULTS/domain_eval_${NAME}_48_cpu.md"

step "evaluate (64 held-out score prompts)"
[ -f "reports/eval_${NAME}/report.json" ] || $PY -m audiodit.evaluate --model "$MODEL" --data data/music21 \
    --out "reports/eval_${NAME}" --num-prompts 64
cp "reports/eval_${NAME}/report.json" "$RESULTS/eval_${NAME}_64.json"
$PY -m benchmarks.compare_evals "$RESULTS/eval_${NAME}_64.json" "$RESULTS/eval_v1_beside_v3_64.json" \
    --out "$RESULTS/compare_evals_${NAME}_v1_64.json"

step "generation speed (alone)"
$PY -m benchmarks.generation_speed --model "$MODEL" --out "$RESULTS/generation_speed_${NAME}_cpu.json"

step "shipping rule"
$PY -m benchmarks.shipping_rule --candidate "audiodit-small-${NAME}" \
    --prompt-breadth "$RESULTS/prompt_breadth_${NAME}_cpu.json" \
    --domain-eval "${NAME}=$RESULTS/domain_eval_${NAME}_48_cpu.json" \
    --v1-domain-eval "v1=$RESULTS/domain_eval_v2_phase4_48_cpu.json" \
    --evaluate "$RESULTS/eval_${NAME}_64.json" --v1-evaluate "$RESULTS/eval_v1_beside_v3_64.json" \
    --speed "$RESULTS/generation_speed_${NAME}_cpu.json" --out "$RESULTS/shipping_rule_${NAME}.md"
