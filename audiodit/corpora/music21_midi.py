"""MIDI side of the music21 corpus renderer: rewrite music21's MIDI export, analyse it, render it.

`write_midi` turns music21's export into exactly what `music21_corpus` describes in a caption
(program, pan, tempo, transposition, length), `analyse_key` reads the key back from those
notes, and `render_midi` runs FluidSynth on them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SAMPLE_RATE = 48000
TONIC_NAMES = {  # pitch class -> conventional key spelling
    "major": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    "minor": ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"),
}

# ---------------------------------------------------------------------------------------------
# Rewriting music21's export
# ---------------------------------------------------------------------------------------------


def write_midi(midi_bytes: bytes, path: Path, programs: list[int], pan: list[int], transpose: int,
               quarter_bpm: float, max_seconds: float) -> tuple[bool, float]:
    """Rewrite music21's MIDI export into what we render and describe.

    One channel, program and pan per part; one tempo; every note transposed; nothing after
    `max_seconds`. Events are re-sorted so that at equal times note-offs precede note-ons (music21
    can emit a repeated pitch's note-on before the previous note-off, leaving a note stuck), and
    each part ends with All Notes Off: FluidSynth's fast render runs until every voice has died,
    so a stuck sustained note would render forever. Returns (cut at max_seconds, seconds).
    """
    from music21 import midi

    voice, meta = midi.ChannelVoiceMessages, midi.MetaEvents
    midi_file = midi.MidiFile()
    midi_file.readstr(midi_bytes)
    cutoff = round(max_seconds * quarter_bpm / 60 * midi_file.ticksPerQuarterNote)
    channels = [c for c in range(1, 17) if c != 10]  # channel 10 is General MIDI percussion
    part_index, truncated, has_tempo, last_tick = 0, False, False, 0

    def event(track, kind, channel, data=None, controller=None, value=None):
        made = midi.MidiEvent(track, type=kind, channel=channel)
        if data is not None:
            made.data = data
        if controller is not None:
            made.parameter1, made.parameter2 = controller, value
        return made

    for track in midi_file.tracks:
        timed, tick = [], 0
        for item in track.events:
            if item.isDeltaTime():
                tick += item.time
            elif item.type != meta.END_OF_TRACK:
                timed.append((tick, item))
        is_part = any(item.isNoteOn() for _, item in timed)
        truncated |= any(item.isNoteOn() and t >= cutoff for t, item in timed)
        timed = [(t, item) for t, item in timed if t < cutoff or (t == cutoff and item.isNoteOff())]
        end = min(max([tick] + [t for t, _ in timed]), cutoff)
        channel = channels[part_index % len(channels)]
        for _, item in timed:
            if item.type == meta.SET_TEMPO:
                item.data, has_tempo = round(60_000_000 / quarter_bpm).to_bytes(3, "big"), True  # us/quarter
            if not is_part:
                continue
            if item.isChannelEvent():
                item.channel = channel
            if item.type == voice.PROGRAM_CHANGE:
                item.data = programs[part_index % len(programs)]
            elif item.type in (voice.NOTE_ON, voice.NOTE_OFF) and transpose:
                pitch = item.pitch + transpose
                item.pitch = pitch + 12 * ((pitch < 0) - (pitch > 127))  # keep the pitch class in range
        if is_part:
            program, position = programs[part_index % len(programs)], pan[part_index % len(pan)]
            timed += [(0, event(track, voice.PROGRAM_CHANGE, channel, data=program)),
                      (0, event(track, voice.CONTROLLER_CHANGE, channel, controller=10, value=position)),
                      (end, event(track, voice.CONTROLLER_CHANGE, channel, controller=123, value=0))]
            part_index += 1
        timed.append((end, event(track, meta.END_OF_TRACK, channel, data=b"")))

        def order(entry):  # at equal ticks: setup, note-offs, note-ons, all-notes-off, end of track
            tick, item = entry
            if item.type == meta.END_OF_TRACK:
                return tick, 4
            if item.type == voice.CONTROLLER_CHANGE and item.parameter1 == 123:
                return tick, 3
            return tick, 2 if item.isNoteOn() else 1 if item.isNoteOff() else 0

        track.events, previous = [], 0
        for tick, item in sorted(timed, key=order):
            track.events += [midi.DeltaTime(track, time=tick - previous, channel=item.channel), item]
            previous = tick
        last_tick = max(last_tick, end)
    if not has_tempo:
        raise ValueError("music21's MIDI export carries no tempo event to set")
    midi_file.open(str(path), "wb")
    midi_file.write()
    midi_file.close()
    return truncated, last_tick / midi_file.ticksPerQuarterNote * 60 / quarter_bpm


# ---------------------------------------------------------------------------------------------
# Key analysis of what is rendered
# ---------------------------------------------------------------------------------------------


def analyse_key(midi_path: Path) -> tuple[str, str, float]:
    """(tonic, mode, correlation) from music21's key analysis of exactly the notes in a MIDI file.

    Read from the rendered MIDI rather than the score: music21's MIDI export expands repeats, and
    the file also carries the transposition and the --max-seconds cut. Notes are rebuilt from raw
    note-on/off ticks (no quantisation), one music21 note per sounding MIDI note.
    """
    from music21 import midi, note, stream

    midi_file = midi.MidiFile()
    midi_file.open(str(midi_path))
    midi_file.read()
    midi_file.close()
    ticks_per_quarter = midi_file.ticksPerQuarterNote
    notes = stream.Stream()
    for track in midi_file.tracks:
        tick, sounding = 0, {}
        for event in track.events:
            if event.isDeltaTime():
                tick += event.time
            elif event.isNoteOn():
                sounding.setdefault((event.channel, event.pitch), []).append(tick)
            elif event.isNoteOff() and sounding.get((event.channel, event.pitch)):
                start = sounding[(event.channel, event.pitch)].pop(0)
                if tick > start:
                    notes.insert(start / ticks_per_quarter,
                                 note.Note(event.pitch, quarterLength=(tick - start) / ticks_per_quarter))
    if not notes:
        raise ValueError("the MIDI file has no notes to analyse")
    key = notes.analyze("key")
    return TONIC_NAMES[key.mode][key.tonic.pitchClass], key.mode, float(key.correlationCoefficient)


# ---------------------------------------------------------------------------------------------
# FluidSynth
# ---------------------------------------------------------------------------------------------


def render_midi(midi_path: Path, wav_path: Path, soundfont: str, timeout: float = 600) -> None:
    """FluidSynth fast render to a float WAV (float cannot clip; we normalise afterwards)."""
    command = ["fluidsynth", "-ni", "-q", "-C", "0", "-R", "1", "-g", "0.5", "-r", str(SAMPLE_RATE),
               "-T", "wav", "-O", "float", "-F", str(wav_path), soundfont, str(midi_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 or not wav_path.exists():
        raise RuntimeError(f"fluidsynth failed ({result.returncode}): {result.stderr.strip()[-500:]}")


def check_fluidsynth(soundfont: str) -> None:
    if shutil.which("fluidsynth") is None:
        raise RuntimeError("fluidsynth is not installed: apt-get install -y fluidsynth timgm6mb-soundfont")
    if not Path(soundfont).is_file():
        raise RuntimeError(f"soundfont '{soundfont}' not found "
                           "(Debian packages fluid-soundfont-gm, timgm6mb-soundfont)")
