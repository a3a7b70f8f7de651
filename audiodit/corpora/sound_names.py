"""What a sound file's name says about the sound: a caption phrase and a category.

A name is split into lower-case words (`words_of`: "DoorClose" -> door close, "bd_808" -> bd 808,
"HiHat_Closed02" -> hi hat closed 02). The folder a file sits in gives its `Context`: which
tables to read, in order, and what to say when no row matches. Each table row is
(regular expression over the words, phrase, category); the first matching row of the first table
with a match wins. Pure numbers are left out before matching, except drum-machine model numbers
(808, 909, 303), which are part of a sound's name.

Phrases are noun phrases with their article ("a kick drum hit", "rain", "a dog barking"). A few
words of the name add a modifier ("soft", "hard", "808"...: MODIFIERS), and some contexts add one
of their own ("electronic" for Sonic Pi's elec_ samples). When no row matches, the context's
fallback quotes the name's remaining words instead of guessing: 'a sound effect called "twang"'.

Only what a name says is stated: "Dog1" is "a dog sound", not "a dog barking"; "Cat" is "a cat
sound" while "Meow" is "a cat meowing"; drum_cymbal_open is "an open hi-hat hit" (only a hi-hat
opens and closes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEEP_NUMBERS = {"808", "909", "303"}
# Words dropped from a quoted fallback name: source prefixes and filler, not sound facts.
FILLER_WORDS = {"sound", "sounds", "snd", "sample", "samples", "sfx", "fx", "effect", "effects", "ambi",
                "elec", "misc", "perc", "glitch", "mehackit", "loop", "loops", "the", "of"}
MEANINGLESS_NAMES = {"undefined", "empty", "untitled", "test", "new"}  # placeholders, not descriptions
MODIFIERS = {"soft": "soft", "hard": "hard", "heavy": "heavy", "distorted": "distorted", "muffled": "muffled",
             "acoustic": "acoustic", "electro": "electronic", "dark": "dark", "808": "808", "909": "909"}

# Hi-hat spellings: "hi hat", "hihat", "hh", "hat" (Hydrogen kits), "cymbal" + open/closed/pedal
# (Sonic Pi's drum_cymbal_open etc.).
_HAT = r"(?:hi ?hat|hihat|hh|hat)"

DRUM_SOUNDS = [  # drum kits and hand percussion; category "drum hit" repeats well at a tempo
    (r"\bsnare roll\b", "a snare drum roll", "drum roll"),
    (r"\bdrum roll\b|^roll\b", "a drum roll", "drum roll"),
    (r"\b(kick|kik|bd|bassdrum)\b|\bbass drum\b|\bdrum bass\b", "a kick drum hit", "drum hit"),
    (r"\brim ?shot\b", "a snare rimshot", "drum hit"),
    (r"\bside ?stick\b|^stick$", "a side-stick hit", "drum hit"),
    (r"\brim\b|\brim click\b", "a rim click", "drum hit"),
    (r"\b(snare|sn|snr)\b", "a snare drum hit", "drum hit"),
    (r"\b(hand ?clap|clap|claps)\b", "a handclap", "drum hit"),
    (rf"\b{_HAT}\b.*\bsemi ?open\b", "a half-open hi-hat hit", "drum hit"),
    (rf"\b{_HAT}\b.*\b(open|opened|op)\b|\bopen {_HAT}\b|\bohh\b|\bcymbal open\b", "an open hi-hat hit",
     "drum hit"),
    (rf"\b{_HAT}\b.*\b(pedal|pd|foot)\b|\bpedal {_HAT}\b|\bcymbal pedal\b", "a pedal hi-hat hit", "drum hit"),
    (rf"\b{_HAT}\b.*\b(closed|close|cl)\b|\bclosed {_HAT}\b|\bchh\b|\bcymbal closed\b", "a closed hi-hat hit",
     "drum hit"),
    (rf"\b{_HAT}\b", "a hi-hat hit", "drum hit"),
    (r"\bride (bell|cup)\b|\b(paiste|sabian|zildjian) bell\b", "a ride cymbal bell hit", "drum hit"),
    (r"\bcrash ride\b|\bride crash\b", "a crash-ride cymbal hit", "drum hit"),
    (r"\bchina\b", "a china cymbal hit", "drum hit"),
    (r"\bsplash\b", "a splash cymbal hit", "drum hit"),
    (r"\bcrash\w*\b", "a crash cymbal hit", "drum hit"),
    (r"\bride\b", "a ride cymbal hit", "drum hit"),
    (r"\b(cymbal|cym)\b", "a cymbal hit", "drum hit"),
    (r"\bfloor tom\b|\btom floor\b", "a floor tom hit", "drum hit"),
    (r"\b(hi|high) tom\b|\btom (hi|high)\b|\btomhi\b", "a high tom hit", "drum hit"),
    (r"\b(mid|middle) tom\b|\btom mid\b", "a mid tom hit", "drum hit"),
    (r"\b(lo|low) tom\b|\btom (lo|low)\b", "a low tom hit", "drum hit"),
    (r"\btom\b", "a tom hit", "drum hit"),
    (r"\bcowbell\b", "a cowbell hit", "drum hit"),
    (r"\b(tambourine|tamb)\b", "a tambourine hit", "drum hit"),
    (r"\bshaker\b", "a shaker", "drum hit"),
    (r"\bmaracas?\b", "a maraca shake", "drum hit"),
    (r"\bclaves?\b", "a clave hit", "drum hit"),
    (r"\bwood ?block\b", "a woodblock hit", "drum hit"),
    (r"\bwood\b", "a wooden percussion hit", "drum hit"),
    (r"\bagogo\b", "an agogo bell hit", "drum hit"),
    (r"\bconga\b", "a conga hit", "drum hit"),
    (r"\bbongo\b", "a bongo hit", "drum hit"),
    (r"\bcajon (thump|bass)\b", "a cajon bass hit", "drum hit"),
    (r"\bcajon slap\b", "a cajon slap", "drum hit"),
    (r"\bdjembe\b.*\bslap\b", "a djembe slap", "drum hit"),
    (r"\bdjembe\b.*\btone\b", "a djembe tone stroke", "drum hit"),
    (r"\bdjembe\b.*\bbass\b", "a djembe bass stroke", "drum hit"),
    (r"\b(sangban|dununba|kenkeni)\b.*\bbell mute\b", r"a muted \1 bell hit", "drum hit"),
    (r"\b(sangban|dununba|kenkeni)\b.*\bbell\b", r"a \1 bell hit", "drum hit"),
    (r"\b(sangban|dununba|kenkeni)\b.*\bhead mute\b", r"a muted \1 drum hit", "drum hit"),
    (r"\b(sangban|dununba|kenkeni)\b", r"a \1 drum hit", "drum hit"),
    (r"\btabla\b", 'a tabla stroke ("{name}")', "drum hit"),
    (r"\btriangle\b", "a triangle hit", "drum hit"),
    (r"\bgong\b", "a gong hit", "drum hit"),
    (r"\bwater ?glass\b", "a struck water glass", "drum hit"),
    (r"\b(finger )?snaps?\b", "a finger snap", "drum hit"),
    (r"\bdrum buzz\b", "a drum buzz", "drum roll"),
    (r"\bwhistle\b", "a whistle", "effect"),
    (r"\bzap\b", "an electronic zap", "effect"),
    (r"^drum$", "a drum hit", "drum hit"),
]

SOUND_EFFECTS = [  # animals, people, nature and everyday or game sound effects
    (r"\bdog\b.*\bbark", "a dog barking", "animal"),
    (r"\bdogs?\b", "a dog sound", "animal"),
    (r"\bmeow\b", "a cat meowing", "animal"),
    (r"\bkitten\b", "a kitten sound", "animal"),
    (r"\bcats?\b", "a cat sound", "animal"),
    (r"\bwolf howl", "a wolf howling", "animal"),
    (r"\bhorse gallop", "a horse galloping", "animal"),
    (r"\b(horse|rooster|duck|goose|crow|bird)\b", r"a \1 sound", "animal"),
    (r"\b(owl)\b", r"an \1 sound", "animal"),
    (r"\bsea lion\b", "a sea lion sound", "animal"),
    (r"\bcrickets\b", "crickets", "animal"),
    (r"\bcricket\b", "a cricket sound", "animal"),
    (r"\bbaby cry", "a baby crying", "human"),
    (r"\bcough female\b", "a woman coughing", "human"),
    (r"\bcough male\b", "a man coughing", "human"),
    (r"\blaugh female\b", "a woman laughing", "human"),
    (r"\blaugh male\b", "a man laughing", "human"),
    (r"\bscream female\b", "a woman screaming", "human"),
    (r"\bscream male\b", "a man screaming", "human"),
    (r"\bsneeze female\b", "a woman sneezing", "human"),
    (r"\bsneeze male\b", "a man sneezing", "human"),
    (r"\b(cough|laugh|scream|sneeze|burp|slurp|gulp|breath)\b", r"a \1", "human"),
    (r"\b(wood|grass|gravel|sand|snow|dirt|glass|ice|metal|water) footsteps?\b", r"a footstep on \1", "human"),
    (r"\bfootsteps\b|^steps$", "footsteps", "human"),
    (r"\bfootstep\b", "a footstep", "human"),
    (r"\bfinger snap\b|\bsnap\b", "a finger snap", "human"),
    (r"\bbeat ?box\b", "human beatbox", "human"),
    (r"\bparty noise\b", "party noise", "human"),
    (r"\bapplause\b", "applause", "human"),
    (r"\bcrowd\b", "a crowd", "human"),
    (r"\bgrunts?\b", "grunting", "human"),
    (r"\bwind chimes?\b", "wind chimes", "effect"),
    (r"\bfire (large|small)\b", r"a \1 fire burning", "ambience"),
    (r"\bfire fire\b|\bcampfire\b", "a fire burning", "ambience"),
    (r"\bsounds water\b", "water sounds", "ambience"),  # minetest env_sounds_water
    (r"\bsounds lava\b", "lava sounds", "ambience"),
    (r"\brain\b", "rain", "ambience"),
    (r"\bthunder\b", "thunder", "ambience"),
    (r"\bwaterfall\b", "a waterfall", "ambience"),
    (r"\bwind\b", "wind", "ambience"),
    (r"\bwater running\b|\brunning water\b", "running water", "ambience"),
    (r"\bripples\b", "water ripples", "effect"),
    (r"\bwater drop\b", "a water drop", "effect"),
    (r"\bbubbles?\b", "bubbles", "effect"),
    (r"\bsplash\b", "a splash", "effect"),
    (r"\bdrone\b", "a drone", "ambience"),
    (r"\bhum\b", "a hum", "ambience"),
    (r"\bbuzz\b", "a buzz", "effect"),
    (r"\bvinyl hiss\b", "vinyl record hiss", "effect"),
    (r"\bvinyl scratch\b", "a vinyl record scratch", "effect"),
    (r"\bvinyl backspin\b", "a vinyl record backspin", "effect"),
    (r"\bvinyl rewind\b", "a vinyl record rewind", "effect"),
    (r"\blrgexp\b", "a large explosion", "effect"),
    (r"\bexplo(de|sion)\b|\b(medexp|bansheeexp|empexplode)\b", "an explosion", "effect"),
    (r"\bcineboom\b", "a cinematic boom", "effect"),
    (r"\bboom\b", "a boom", "effect"),
    (r"\bblast\b", "a blast", "effect"),
    (r"\bimpact\b", "an impact", "effect"),
    (r"\bdoor close\b", "a door closing", "effect"),
    (r"\bdoor open\b", "a door opening", "effect"),
    (r"\bdoor slam\b", "a door slamming", "effect"),
    (r"\bdoor creak\b", "a creaking door", "effect"),
    (r"\bdoor\b", "a door sound", "effect"),
    (r"\bcreak\b", "a creak", "effect"),
    (r"\bglass break\b|\bbreak glass\b", "glass breaking", "effect"),
    (r"\b(car|motorcycle) passing\b", r"a \1 passing", "effect"),
    (r"\bsewing machine\b", "a sewing machine", "effect"),
    (r"\btyping\b", "typing", "effect"),
    (r"\bbell toll\b", "a bell tolling", "effect"),
    (r"\bcomputer beeps\b", "computer beeps", "effect"),
    (r"\bbeep\b", "a beep", "effect"),
    (r"\blaser\b", "a laser sound", "effect"),
    (r"\b(whoosh|woosh|swoosh|swish|swash)\b", "a whoosh", "effect"),
    (r"\bfireworks\b", "fireworks", "effect"),
    (r"\bfirecracker\b", "a firecracker", "effect"),
    (r"\bsizzle\b", "sizzling", "effect"),
    (r"\b(thud|splat|squish|stomp|skid|rattle|pop|chime|roar|bell|click)\b", r"a \1", "effect"),
    (r"\bcracking\b", "cracking", "effect"),
    (r"\bticking\b", "ticking", "effect"),
    (r"\bswing then hit\b", "a swing and a hit", "effect"),
    (r"\bswing then nohit\b", "a swing that misses", "effect"),
    (r"\bdrop (sword|potion|book)\b", r"a \1 being dropped", "effect"),
    (r"\bopen chest\b", "a chest opening", "effect"),
    (r"\bcamera takes picture\b", "a camera taking a picture", "effect"),
    (r"\bautocannon\b", "an autocannon firing", "effect"),
    (r"\b(grenade|missile|phone|robot|coin|teleporter|trampoline|balloon|metronome)\b", r"a \1 sound", "effect"),
    (r"\bengine\b", "an engine", "effect"),
    (r"\bprinter\b", "a 3D printer", "effect"),
]

INSTRUMENTS = [  # one instrument's sample: a note, a chord or a short phrase, the name does not say which
    (r"\be piano accord\b", "an electric piano chord", "instrument one-shot"),
    (r"\be piano\b", "an electric piano sound", "instrument one-shot"),
    (r"\bchurch organ\b", "a church organ sound", "instrument one-shot"),
    (r"\be organ\b", "an electric organ sound", "instrument one-shot"),
    (r"\bviolin pizzicato\b", "a violin pizzicato", "instrument one-shot"),
    (r"\bviolin double stop\b", "a violin double stop", "instrument one-shot"),
    (r"\bsteel guitar\b", "a steel-string guitar sound", "instrument one-shot"),
    (r"\bguitar strum\b", "a guitar strum", "instrument one-shot"),
    (r"\bbass ?slap\b", "a slap bass sound", "instrument one-shot"),
    (r"\bstring pluck\b", "a plucked string", "instrument one-shot"),
    (r"\bbell choir\b", "a bell choir sound", "instrument one-shot"),
    (r"\b(piano|organ|harpsichord|cello|flute|trumpet|violin|tambura|choir)\b", r"a \1 sound",
     "instrument one-shot"),
    (r"\b(guit|guitar)\b", "a guitar sound", "instrument one-shot"),
    (r"\bdijjeridoo\b", "a didgeridoo sound", "instrument one-shot"),
    (r"\bbrass\b", "a brass sound", "instrument one-shot"),
    (r"\bchorus\b", "a choir sound", "instrument one-shot"),
    (r"\bstrings\b", "a strings sound", "instrument one-shot"),
    (r"\bstring\b", "a string instrument sound", "instrument one-shot"),
    (r"\bpad\b", "a synth pad", "instrument one-shot"),
    (r"\bchord\b", "a chord", "instrument one-shot"),
    (r"\bacid\b", "an acid bass sound", "instrument one-shot"),
    (r"\bbass\b", "a bass sound", "instrument one-shot"),
    (r"\bsynth\b", "a synth sound", "instrument one-shot"),
]

LOOPS = [  # loops: drum loops, and melodic loops kept apart as "music loop"
    (r"\bamen\b", "an Amen break drum loop", "drum loop"),
    (r"\bbreak ?beat\b|\bbreak\b", "a breakbeat drum loop", "drum loop"),
    (r"\b909 beat\b", "a 909 drum loop", "drum loop"),
    (r"\belectro beat\b", "an electro drum loop", "drum loop"),
    (r"\bbeat ?box\b", "a human beatbox loop", "drum loop"),
    (r"\bdrum (set|machine)\b|\bdrums?\b|\bbeat\b", "a drum loop", "drum loop"),
    (rf"\b{_HAT}\b", "a hi-hat loop", "drum loop"),
    (r"\bkick\b", "a kick drum loop", "drum loop"),
    (r"\bsnare\b", "a snare drum loop", "drum loop"),
    (r"\btabla\b", "a tabla loop", "drum loop"),
    (r"\bperc\b", "a percussion loop", "drum loop"),
    (r"\btb 303\b", "a TB-303 bass loop", "music loop"),
    (r"\bguitar chords\b", "a guitar chords loop", "music loop"),
    (r"\bxylo\b", "a xylophone loop", "music loop"),
    (r"\bdrone\b", "a drone loop", "music loop"),
]


@dataclass(frozen=True)
class Context:
    """How names in one folder are read."""

    tables: tuple[str, ...]  # names of module tables, read in order
    fallback: str  # phrase when no row matches; {name} = the name's words
    category: str  # category of the fallback (and of every match when `forced`)
    forced: bool = False  # the folder decides the category (an "ambi_" sample is ambience)
    modifier: str | None = None  # added to every phrase with an article
    qualifier: str = ""  # appended to matched phrases: "from a video game"
    loops: bool = False  # files are loops: tiled, not padded


TABLES = {"drums": DRUM_SOUNDS, "effects": SOUND_EFFECTS, "instruments": INSTRUMENTS, "loops": LOOPS}
CONTEXTS = {
    "drums": Context(("drums", "effects"), 'a percussion sound called "{name}"', "drum hit"),
    "electronic": Context(("drums", "effects"), 'an electronic sound called "{name}"', "effect",
                          modifier="electronic"),
    "effects": Context(("effects",), 'a sound effect called "{name}"', "effect"),
    "game effects": Context(("effects",), 'a video game sound effect called "{name}"', "effect",
                            qualifier="from a video game"),
    "game weapons": Context(("effects",), 'a video game weapon sound called "{name}"', "effect",
                            qualifier="from a video game"),
    "game robots": Context(("effects",), 'a video game robot sound called "{name}"', "effect",
                           qualifier="from a video game"),
    "animals": Context(("effects",), 'an animal sound called "{name}"', "animal", forced=True),
    "human": Context(("effects",), 'a human sound called "{name}"', "human", forced=True),
    "vocals": Context(("effects",), 'a vocal clip ("{name}")', "vocals", forced=True),
    "ambience": Context(("effects", "instruments"), 'an ambient sound called "{name}"', "ambience",
                        forced=True, modifier="ambient"),
    "instruments": Context(("instruments",), 'an instrument sound called "{name}"', "instrument one-shot"),
    "loops": Context(("loops", "effects"), 'a music loop called "{name}"', "music loop", loops=True),
    "drum loops": Context(("loops",), 'a drum loop called "{name}"', "drum loop", loops=True),
    "bass loops": Context(("loops",), 'a bass loop called "{name}"', "music loop", loops=True),
}


@dataclass(frozen=True)
class Description:
    phrase: str  # caption phrase with article and modifiers: "a soft snare drum hit"
    base: str  # the table phrase before modifiers: "a snare drum hit"
    category: str  # drum hit, drum roll, drum loop, music loop, instrument one-shot, effect, ...
    matched: bool  # False: the context's fallback quoting the name


def words_of(name: str) -> list[str]:
    """Lower-case words and numbers of a file or instrument name (suffix and parentheses dropped)."""
    name = re.sub(r"\([^)]*\)?", " ", name)  # Hydrogen: 'Kick (Tama Superstar 22")'
    name = re.sub(r"\.(wav|flac|ogg|mp3|aiff?|au)$", "", name, flags=re.IGNORECASE)
    name = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)  # DoorClose -> Door Close
    name = re.sub(r"([A-Za-z])(\d)", r"\1 \2", name)  # Dog1 -> Dog 1
    name = re.sub(r"(\d)([A-Za-z])", r"\1 \2", name)  # 909beat -> 909 beat
    return re.findall(r"[a-z]+|\d+", name.lower())


def _article(words: str) -> str:
    return "an" if words[:1] in tuple("aeiou8") else "a"


def with_modifiers(phrase: str, modifiers: list[str]) -> str:
    """Insert `modifiers` after the phrase's article ("a kick drum hit" -> "a soft kick drum hit")."""
    first, _, rest = phrase.partition(" ")
    if first not in ("a", "an") or not modifiers:
        return phrase
    body = " ".join(list(dict.fromkeys(modifiers)) + [rest])
    return f"{_article(body)} {body}"


def describe(name: str, context: str, allow_fallback: bool = True) -> Description | None:
    """What `name` says in `context` (a CONTEXTS key).

    None when the name says nothing: it has no words, is a placeholder (MEANINGLESS_NAMES), or
    matches no row while `allow_fallback` is False.
    """
    setting = CONTEXTS[context]
    words = words_of(name)
    text = " ".join(w for w in words if not w.isdigit() or w in KEEP_NUMBERS)
    quoted = " ".join(w for w in text.split() if w not in FILLER_WORDS) or text
    if not quoted or quoted in MEANINGLESS_NAMES:
        return None
    for table in setting.tables:
        for pattern, phrase, category in TABLES[table]:
            found = re.search(pattern, text)
            if not found:
                continue
            rest = " ".join(w for w in text[: found.start()].split() + text[found.end():].split()
                            if w not in FILLER_WORDS and w not in KEEP_NUMBERS)
            base = found.expand(phrase).replace("{name}", rest or quoted)
            stated = set(re.findall(r"[a-z0-9]+", base.lower()))
            modifiers = [MODIFIERS[w] for w in words if w in MODIFIERS and not {w, MODIFIERS[w]} & stated]
            if setting.modifier and setting.modifier not in stated:
                modifiers.append(setting.modifier)
            described = with_modifiers(base, modifiers)
            if setting.qualifier:
                described = f"{described} {setting.qualifier}"
            return Description(described, base, setting.category if setting.forced else category, True)
    if not allow_fallback:
        return None
    fallback = setting.fallback.format(name=quoted)
    return Description(fallback, fallback, setting.category, False)
