"""The judge's worker: musicnn's taggers over a list of audio files, in the judge's own interpreter.

Not imported by audiodit: `audiodit.judge` runs this file with the interpreter of a separate
virtual environment that has TensorFlow and musicnn (so neither enters the project's runtime), as

    JUDGE_PYTHON -I audiodit/judge_worker.py --files LIST.json --out OUT.npz [--models MTT_musicnn MSD_musicnn]

LIST.json is a JSON list of paths. OUT.npz holds, for N files and each model M:
`files` (N,), `M.tags` (N, 50) sigmoid tag probabilities, `M.tag_names` (50,), `M.embedding` (N, 200)
the penultimate dense layer, each averaged over the clip's 3 s patches, and `timings` (a JSON string).
Where musicnn's float16 spectrogram does not overflow, the tags equal its `extractor.extractor`'s
(to 1e-4); its extractor's `penultimate` repeats the first patch's for every later one (a loop bug
in musicnn 0.1.0), while the embedding here averages every patch.
It imports only the standard library, numpy, librosa (musicnn's own front end), musicnn and TensorFlow,
never audiodit, whose modules need torch. Exit status 3: musicnn or TensorFlow cannot be imported;
2: a file cannot be read.
"""

import argparse
import json
import os
import sys
import time

try:  # exit status 3 tells audiodit.judge that this interpreter lacks the judge's packages
    import numpy as np
except ImportError as missing:
    print(f"judge worker: cannot import the judge's packages ({missing})", file=sys.stderr)
    raise SystemExit(3) from None

MODELS = ("MTT_musicnn", "MSD_musicnn")
PATCH_SECONDS = 3.0  # the input length musicnn's models were trained on (its extractor's default)


def log_mel_patches(path: str, config, librosa, patch_frames: int) -> np.ndarray:
    """(P, patch_frames, 96) log-mel patches of one file, as musicnn's `extractor.batch_data` makes
    them: 16 kHz mono, 512-point FFT, hop 256, 96 mel bands, rounded to float16, log10(10000 x + 1),
    non-overlapping patches (a trailing partial patch dropped). Unlike musicnn, the log is taken in
    float32, since 10000 x overflows float16 (to inf) above a mel power of 6.55, which 0.3-0.6 % of the
    bins of ordinary music near full scale reach; and a clip shorter than one patch is zero-padded to one."""
    audio, sample_rate = librosa.load(path, sr=config.SR, mono=True)
    mel = librosa.feature.melspectrogram(y=audio, sr=sample_rate, hop_length=config.FFT_HOP,
                                         n_fft=config.FFT_SIZE, n_mels=config.N_MELS).T  # (frames, 96)
    mel = np.log10(10000.0 * mel.astype(np.float16).astype(np.float32) + 1.0)
    if mel.shape[0] < patch_frames:
        mel = np.pad(mel, ((0, patch_frames - mel.shape[0]), (0, 0)))
    count = mel.shape[0] // patch_frames
    return mel[: count * patch_frames].reshape(count, patch_frames, config.N_MELS)


def build_model(tf, models_module, name: str, num_classes: int, patch_frames: int, n_mels: int):
    """A session with one musicnn model restored from the checkpoint shipped inside the package."""
    import musicnn

    graph = tf.Graph()
    with graph.as_default():
        with tf.name_scope("model"):
            x = tf.compat.v1.placeholder(tf.float32, [None, patch_frames, n_mels])
            is_training = tf.compat.v1.placeholder(tf.bool)
            outputs = models_module.define_model(x, is_training, name, num_classes)
            logits, penultimate = outputs[0], outputs[-1]
            probabilities = tf.nn.sigmoid(logits)
        session = tf.compat.v1.Session(graph=graph)
        tf.compat.v1.train.Saver().restore(session, os.path.join(os.path.dirname(musicnn.__file__), name) + "/")
    return session, x, is_training, probabilities, penultimate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="musicnn tags and embeddings for a list of audio files")
    parser.add_argument("--files", required=True, help="JSON file holding a list of audio paths")
    parser.add_argument("--out", required=True, help=".npz file to write")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batch-patches", type=int, default=64, help="3 s patches per TensorFlow run")
    args = parser.parse_args(argv)
    with open(args.files) as handle:
        files = json.load(handle)

    # musicnn builds its graph with tf.compat.v1.layers, which TensorFlow >= 2.16 only offers through
    # the tf-keras package ("legacy Keras"); this must be set before TensorFlow is imported
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    try:
        import librosa
        import tensorflow as tf
        from musicnn import configuration as config
        from musicnn import models as models_module
    except ImportError as error:
        print(f"judge worker: cannot import the judge's packages ({error})", file=sys.stderr)
        return 3
    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
    timings = {"import_s": time.perf_counter() - start, "files": len(files)}

    # 1. Log-mel patches of every file (computed once, shared by the models)
    patch_frames = librosa.time_to_frames(PATCH_SECONDS, sr=config.SR, n_fft=config.FFT_SIZE,
                                          hop_length=config.FFT_HOP) + 1  # 187, as musicnn's extractor
    start = time.perf_counter()
    patches, owners, seconds = [], [], 0.0
    for index, path in enumerate(files):
        try:
            file_patches = log_mel_patches(path, config, librosa, patch_frames)
        except Exception as error:  # librosa/soundfile/audioread raise many types; name the file
            print(f"judge worker: cannot read {path}: {type(error).__name__}: {error}", file=sys.stderr)
            return 2
        seconds += librosa.get_duration(path=path)
        patches.append(file_patches)
        owners.append(np.full(len(file_patches), index))
    patches = np.concatenate(patches) if patches else np.zeros((0, patch_frames, config.N_MELS), np.float32)
    owners = np.concatenate(owners) if owners else np.zeros(0, int)
    timings.update(features_s=time.perf_counter() - start, audio_seconds=seconds, patches=len(patches))

    # 2. Each model: tag probabilities and penultimate embeddings, averaged per file over its patches
    arrays = {"files": np.array(files, dtype=str)}
    counts = np.bincount(owners, minlength=len(files)).astype(np.float64)[:, None]  # (N, 1)
    for name in args.models:
        labels = config.MTT_LABELS if name.startswith("MTT") else config.MSD_LABELS
        start = time.perf_counter()
        session, x, is_training, probabilities, penultimate = build_model(
            tf, models_module, name, len(labels), patch_frames, config.N_MELS)
        timings[f"{name}.build_s"] = time.perf_counter() - start
        start = time.perf_counter()
        tags = np.zeros((len(files), len(labels)))
        embedding = np.zeros((len(files), int(penultimate.shape[-1])))  # (N, 200)
        for first in range(0, len(patches), args.batch_patches):
            batch = slice(first, first + args.batch_patches)
            patch_tags, patch_embedding = session.run(
                [probabilities, penultimate], feed_dict={x: patches[batch], is_training: False})
            np.add.at(tags, owners[batch], patch_tags)
            np.add.at(embedding, owners[batch], patch_embedding)
        session.close()
        timings[f"{name}.inference_s"] = time.perf_counter() - start
        arrays[f"{name}.tags"] = (tags / counts).astype(np.float32)
        arrays[f"{name}.embedding"] = (embedding / counts).astype(np.float32)
        arrays[f"{name}.tag_names"] = np.array(labels, dtype=str)
    arrays["timings"] = np.array(json.dumps(timings))
    partial = args.out + ".partial.npz"
    np.savez(partial, **arrays)
    os.replace(partial, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
