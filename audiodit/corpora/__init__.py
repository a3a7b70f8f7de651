"""Corpus builders: tools run once to make training data, not the library's data loading.

Each reads what a package registry ships (Debian's music and game data, drum kits, soundfonts, the
music21 corpus) or what it makes itself (rendered grooves, speech, designed sounds) and writes the
folder layout that `audiodit.data` reads (`<split>/<id>.flac`, `<id>.json`, `<id>.txt`; docs/data.md):

    python -m audiodit.corpora.music21_corpus   scores rendered with a GM soundfont
    python -m audiodit.corpora.mma_grooves      genre arrangements with drums (mma grooves)
    python -m audiodit.corpora.recordings       game-music recordings, cut and captioned
    python -m audiodit.corpora.sound_library    named sound effects, drum hits and loops
    python -m audiodit.corpora.sound_scenes     scenes put together from the library's sounds
    python -m audiodit.corpora.speech           synthesised speech
    python -m audiodit.corpora.designed_sounds  procedural sounds (sound_design/)

`builder.py` holds what they share (resumable runs, the index, attribution). Imports go one way:
corpora may use `audiodit.data` and the audio helpers; nothing in the library imports a corpus.
"""
