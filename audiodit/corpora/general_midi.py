"""General MIDI names: what a rendered MIDI file's programs and drum notes are, in caption words.

Programs are 0-based (MIDI program change values); drum notes are General MIDI percussion keys on
channel 10. `describe_midi` reads a MIDI file and lists, as facts, which instruments and which
drums sound in it, so that a caption states what was rendered rather than what was intended.
"""

from __future__ import annotations

from pathlib import Path

# The 128 General MIDI programs as caption phrases, in program order (GM 1 sound set).
PROGRAM_NAMES = (
    "acoustic grand piano", "bright piano", "electric grand piano", "honky-tonk piano",
    "electric piano", "electric piano", "harpsichord", "clavinet",
    "celesta", "glockenspiel", "music box", "vibraphone", "marimba", "xylophone", "tubular bells", "dulcimer",
    "drawbar organ", "percussive organ", "rock organ", "church organ", "reed organ", "accordion",
    "harmonica", "tango accordion",
    "nylon-string guitar", "steel-string guitar", "jazz guitar", "clean electric guitar",
    "muted electric guitar", "overdriven guitar", "distorted guitar", "guitar harmonics",
    "acoustic bass", "fingered electric bass", "picked electric bass", "fretless bass",
    "slap bass", "slap bass", "synth bass", "synth bass",
    "violin", "viola", "cello", "contrabass", "tremolo strings", "pizzicato strings", "harp", "timpani",
    "string ensemble", "string ensemble", "synth strings", "synth strings",
    "choir", "voice oohs", "synth voice", "orchestra hit",
    "trumpet", "trombone", "tuba", "muted trumpet", "french horn", "brass section", "synth brass",
    "synth brass",
    "soprano sax", "alto sax", "tenor sax", "baritone sax", "oboe", "english horn", "bassoon", "clarinet",
    "piccolo", "flute", "recorder", "pan flute", "blown bottle", "shakuhachi", "whistle", "ocarina",
    "square lead synth", "sawtooth lead synth", "calliope lead", "chiff lead", "charang lead",
    "voice lead", "fifths lead", "bass and lead synth",
    "new age pad", "warm pad", "polysynth pad", "choir pad", "bowed pad", "metallic pad", "halo pad",
    "sweep pad",
    "rain effect", "soundtrack effect", "crystal effect", "atmosphere effect", "brightness effect",
    "goblins effect", "echoes effect", "sci-fi effect",
    "sitar", "banjo", "shamisen", "koto", "kalimba", "bagpipe", "fiddle", "shanai",
    "tinkle bell", "agogo", "steel drums", "woodblock", "taiko drum", "melodic tom", "synth drum",
    "reverse cymbal",
    "guitar fret noise", "breath noise", "seashore", "bird tweet", "telephone ring", "helicopter",
    "applause", "gunshot",
)
assert len(PROGRAM_NAMES) == 128

# General MIDI percussion keys (channel 10) grouped into the drum words a caption uses.
DRUM_GROUPS = {
    "kick": (35, 36),
    "snare": (37, 38, 40),
    "clap": (39,),
    "hi-hat": (42, 44, 46),
    "toms": (41, 43, 45, 47, 48, 50),
    "crash cymbal": (49, 52, 55, 57),
    "ride cymbal": (51, 53, 59),
    "tambourine": (54,),
    "cowbell": (56,),
    "bongos": (60, 61),
    "congas": (62, 63, 64),
    "timbales": (65, 66),
    "shaker": (69, 70, 82),
    "claves": (75,),
    "woodblock": (76, 77),
    "triangle": (80, 81),
    "guiro": (73, 74),
    "agogo": (67, 68),
    "whistle": (71, 72),
    "vibraslap": (58,),
    "cuica": (78, 79),
}
DRUM_OF_KEY = {key: name for name, keys in DRUM_GROUPS.items() for key in keys}
DRUM_ORDER = tuple(DRUM_GROUPS)
PERCUSSION_CHANNEL = 9  # channel 10, 0-based as MIDI files store it


def describe_midi(path: str | Path) -> dict:
    """What sounds in a MIDI file: `{"programs": [...], "instruments": [...], "drums": [...],
    "notes": N, "drum_notes": N, "seconds": float}`.

    `programs` are the 0-based programs that play at least one note on a melodic channel, in
    order of first note; `instruments` their caption phrases without repeats; `drums` the drum
    groups (DRUM_GROUPS) that play at least one note on channel 10, in DRUM_ORDER.
    """
    from music21 import midi

    midi_file = midi.MidiFile()
    midi_file.open(str(path))
    midi_file.read()
    midi_file.close()
    program_of = {}  # channel (0-based) -> current program
    first_note: dict[int, tuple[int, int]] = {}  # program -> (tick, order) of its first note
    drums, notes, drum_notes, last_tick = set(), 0, 0, 0
    tempo_changes = [(0, 500_000)]  # (tick, microseconds per quarter); MIDI's default is 120 BPM
    for track in midi_file.tracks:
        tick = 0
        for event in track.events:
            if event.isDeltaTime():
                tick += event.time
                continue
            if event.type == midi.MetaEvents.SET_TEMPO:
                tempo_changes.append((tick, int.from_bytes(event.data, "big")))
            channel = (event.channel or 1) - 1  # music21 numbers channels 1-16
            if event.type == midi.ChannelVoiceMessages.PROGRAM_CHANGE:
                program_of[channel] = int(event.data)
            elif event.isNoteOn():
                last_tick = max(last_tick, tick)
                if channel == PERCUSSION_CHANNEL:
                    drum_notes += 1
                    if event.pitch in DRUM_OF_KEY:
                        drums.add(DRUM_OF_KEY[event.pitch])
                else:
                    notes += 1
                    program = program_of.get(channel, 0)
                    first_note.setdefault(program, (tick, len(first_note)))
    programs = sorted(first_note, key=first_note.get)
    instruments = list(dict.fromkeys(PROGRAM_NAMES[program] for program in programs))
    return {
        "programs": programs, "instruments": instruments,
        "drums": [name for name in DRUM_ORDER if name in drums],
        "notes": notes, "drum_notes": drum_notes,
        "seconds": _ticks_to_seconds(last_tick, sorted(tempo_changes), midi_file.ticksPerQuarterNote),
    }


def _ticks_to_seconds(ticks: int, tempo_changes: list[tuple[int, int]], ticks_per_quarter: int) -> float:
    seconds, position, tempo = 0.0, 0, tempo_changes[0][1]
    for change_tick, change_tempo in tempo_changes[1:]:
        if change_tick >= ticks:
            break
        seconds += (change_tick - position) * tempo / ticks_per_quarter / 1e6
        position, tempo = change_tick, change_tempo
    return seconds + (ticks - position) * tempo / ticks_per_quarter / 1e6


def join_words(words: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]
