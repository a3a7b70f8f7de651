"""The genre arrangements `mma_grooves` renders: which MMA style files, called what, at what tempi.

Debian's `mma` (Musical MIDI Accompaniment, GPL-2+) ships style files in /usr/share/mma/lib, each
defining named grooves (drums, bass and comping patterns). `STYLES` names the files we render, the
genre words a caption uses for them, a genre family (for balancing and evaluation), a tempo range
a player of that genre would choose, and which chord progressions suit it. Files that are only
fills, intros or endings, metronomes, or whose metre MMA writes in another count than it plays
(12/8 written as 4/4, 6/8 marches in 2) are left out, so a caption's metre and BPM are what a
listener would count. `zoom/*` files hold drum patterns only; the renderer adds a bass line and
comping of its own to some of them (`mma_grooves.BACKING`).
"""

from __future__ import annotations

from dataclasses import dataclass

# Progressions as scale degrees: (semitones above the tonic, MMA chord suffix), one chord a bar.
PROGRESSIONS: dict[str, tuple[str, tuple[tuple[int, str], ...]]] = {
    # name: (mode, chords)
    "pop": ("major", ((0, ""), (7, ""), (9, "m"), (5, ""))),  # I V vi IV
    "doo-wop": ("major", ((0, ""), (9, "m"), (5, ""), (7, ""))),  # I vi IV V
    "rock": ("major", ((0, ""), (5, ""), (7, ""), (5, ""))),  # I IV V IV
    "mixolydian rock": ("major", ((0, ""), (10, ""), (5, ""), (0, ""))),  # I bVII IV I
    "country": ("major", ((0, ""), (5, ""), (0, ""), (7, "7"))),  # I IV I V7
    "jazz": ("major", ((2, "m7"), (7, "7"), (0, "M7"), (9, "7"))),  # ii7 V7 Imaj7 VI7
    "twelve-bar blues": ("major", ((0, "7"),) * 4 + ((5, "7"),) * 2 + ((0, "7"),) * 2
                         + ((7, "7"), (5, "7"), (0, "7"), (7, "7"))),
    "minor pop": ("minor", ((0, "m"), (8, ""), (3, ""), (10, ""))),  # i VI III VII
    "minor": ("minor", ((0, "m"), (5, "m"), (7, "7"), (0, "m"))),  # i iv V7 i
    "minor jazz": ("minor", ((2, "m7b5"), (7, "7"), (0, "m7"), (0, "m7"))),  # ii0 V7 i7
    "andalusian": ("minor", ((0, "m"), (10, ""), (8, ""), (7, ""))),  # i VII VI V
    "minor vamp": ("minor", ((0, "m7"), (5, "7"), (0, "m7"), (5, "7"))),  # i7 IV7 (dorian)
}

HARMONY = {  # genre family -> progressions that suit it
    "rock": ("rock", "mixolydian rock", "pop", "minor pop", "andalusian"),
    "metal": ("minor pop", "andalusian", "minor", "mixolydian rock"),
    "pop": ("pop", "doo-wop", "minor pop", "rock"),
    "ballad": ("pop", "doo-wop", "minor pop", "minor"),
    "funk": ("minor vamp", "minor pop", "pop"),
    "soul": ("pop", "doo-wop", "minor vamp", "jazz"),
    "jazz": ("jazz", "minor jazz", "twelve-bar blues"),
    "blues": ("twelve-bar blues",),
    "latin": ("jazz", "minor jazz", "andalusian", "minor", "pop"),
    "country": ("country", "rock", "pop"),
    "folk": ("country", "pop", "minor"),
    "electronic": ("minor pop", "pop", "minor vamp", "andalusian"),
    "hip hop": ("minor vamp", "minor pop", "minor"),
    "reggae": ("pop", "rock", "minor vamp"),
    "waltz": ("country", "pop", "minor"),
    "march": ("country", "rock", "minor"),
    "show": ("pop", "jazz", "minor"),
    "sacred": ("country", "pop", "doo-wop"),
}


@dataclass(frozen=True)
class Style:
    """One MMA style file as the renderer uses it."""

    path: str  # relative to the MMA library, without .mma, e.g. "stdlib/bossanova"
    genre: str  # caption words, e.g. "bossa nova"
    family: str  # a key of HARMONY
    tempo: tuple[int, int]  # BPM range, in the style's counted beats
    drums_only: bool = False  # zoom/*: drum patterns without bass or chords


def _styles(family: str, tempo: tuple[int, int], entries: dict[str, str], drums_only: bool = False) -> list[Style]:
    return [Style(path, genre, family, tempo, drums_only) for path, genre in entries.items()]


STYLES: tuple[Style, ...] = tuple(
    _styles("rock", (130, 170), {"stdlib/50srock": "1950s rock and roll", "kara/K50s_rock": "1950s rock and roll",
                                 "stdlib/jive": "jive", "stdlib/twist": "twist", "casio/twist": "twist"})
    + _styles("rock", (105, 140), {"stdlib/60srock": "1960s rock", "casio/60srock": "1960s rock",
                                   "stdlib/8beat": "eight-beat rock", "casio/8beat1": "eight-beat rock",
                                   "casio/8beat2": "eight-beat rock", "pflib/8beat1": "eight-beat rock",
                                   "stdlib/basicrock": "rock", "casio/rock1": "rock", "casio/rock2": "rock",
                                   "pflib/rock1": "rock", "stdlib/softrock": "soft rock",
                                   "stdlib/folkrock": "1960s folk rock", "stdlib/jazzrock": "jazz rock",
                                   "stdlib/strut": "driving rock", "casio/poprock1": "pop rock",
                                   "casio/poprock2": "pop rock", "casio/digitalrock": "digital rock",
                                   "casio/shufflerock": "shuffle rock", "stdlib/bubblerock": "bubblegum rock"})
    + _styles("rock", (60, 85), {"casio/slowrock": "slow rock", "pflib/slowrock": "slow rock"})
    + _styles("rock", (120, 150), {"zoom/rock": "rock", "zoom/hrk": "hard rock"}, drums_only=True)
    + _styles("rock", (160, 200), {"zoom/punk": "punk rock"}, drums_only=True)
    + _styles("metal", (100, 160), {"casio/heavymetal": "heavy metal", "pflib/metal1": "heavy metal",
                                    "pflib/metal2": "heavy metal"})
    + _styles("metal", (120, 170), {"zoom/mtl": "heavy metal"}, drums_only=True)
    + _styles("pop", (95, 128), {"casio/16beat1": "sixteen-beat pop", "casio/16beat2": "sixteen-beat pop",
                                 "pflib/16beat1": "sixteen-beat pop", "casio/60spop": "1960s pop",
                                 "casio/80spop": "1980s pop", "casio/8beatpop1": "eight-beat pop",
                                 "casio/8beatpop2": "eight-beat pop", "casio/pop": "pop",
                                 "casio/popshuffle1": "pop shuffle", "casio/worldpop": "world pop",
                                 "kara/happyshuffle": "happy shuffle", "stdlib/popspiritual": "gospel-style pop",
                                 "casio/16shuffle1": "sixteen-beat shuffle"})
    + _styles("pop", (100, 125), {"zoom/pop": "pop", "zoom/beat8": "eight-beat pop"}, drums_only=True)
    + _styles("ballad", (60, 85), {"stdlib/ballad": "ballad", "stdlib/popballad": "pop ballad",
                                   "casio/popballad": "pop ballad", "stdlib/pianoballad": "piano ballad",
                                   "stdlib/guitarballad": "guitar ballad", "stdlib/stringballad": "string ballad",
                                   "stdlib/rockballad": "doo-wop rock ballad", "casio/8beatballad1": "eight-beat ballad",
                                   "casio/16beatballad1": "sixteen-beat ballad", "casio/oldieballad": "oldies ballad",
                                   "stdlib/lullaby": "lullaby", "casio/serenade": "serenade",
                                   "stdlib/arpeggio44": "arpeggiated ballad"})
    + _styles("funk", (90, 116), {"stdlib/bvfunk": "funk", "casio/funk1": "funk", "casio/funk2": "funk",
                                  "kara/Kfunk1": "funk"})
    + _styles("funk", (90, 116), {"zoom/funk": "funk"}, drums_only=True)
    + _styles("funk", (108, 126), {"stdlib/dsoul": "disco soul", "casio/discosoul": "disco soul",
                                   "stdlib/boneym": "disco"})
    + _styles("soul", (95, 125), {"casio/60ssoul": "1960s soul", "casio/soul": "soul", "casio/soulpop": "soul pop",
                                  "stdlib/rb": "rhythm and blues", "casio/r+b": "rhythm and blues",
                                  "kara/8beatmotown": "Motown soul", "casio/modernrb": "modern R&B"})
    + _styles("soul", (65, 90), {"stdlib/rb-ballad": "R&B ballad", "casio/mellowrb": "mellow R&B"})
    + _styles("soul", (85, 105), {"zoom/rnb": "R&B"}, drums_only=True)
    + _styles("jazz", (110, 160), {"stdlib/swing": "swing", "casio/swing": "swing", "stdlib/bigband": "big band swing",
                                   "casio/middlebigband": "big band swing", "yamaha/jazzbasie": "big band swing",
                                   "stdlib/easyswing": "easy swing", "stdlib/jazzcombo": "jazz combo",
                                   "casio/jazzcombo": "jazz combo", "stdlib/modernjazz": "modern jazz",
                                   "casio/modernjazz": "modern jazz", "yamaha/jazzswing": "jazz swing",
                                   "yamaha/jazztrio": "jazz trio", "yamaha/jazzGrtrio": "jazz guitar trio",
                                   "yamaha/jazzbouncy": "bouncy jazz", "stdlib/bebop": "bebop",
                                   "casio/fusion": "jazz fusion", "stdlib/descendingjazz": "jazz",
                                   "stdlib/softshoe": "soft-shoe", "stdlib/folkyjazz": "folky jazz"})
    + _styles("jazz", (150, 210), {"stdlib/dixie": "Dixieland jazz", "stdlib/gypsyjazz": "gypsy jazz",
                                   "stdlib/fastswing": "fast swing", "casio/fastbigband": "fast big band swing"})
    + _styles("jazz", (65, 100), {"stdlib/mellowjazz": "mellow jazz", "stdlib/nitejazz": "late-night jazz",
                                  "stdlib/slowjazz": "slow jazz piano trio", "stdlib/jazzguitar": "jazz guitar ballad",
                                  "casio/slowswing": "slow swing", "casio/slowbigband": "slow big band"})
    + _styles("jazz", (120, 160), {"stdlib/jazzwaltz": "jazz waltz", "casio/jazzwaltz": "jazz waltz",
                                   "yamaha/jazzwaltz": "jazz waltz", "stdlib/modernjazzwaltz": "modern jazz waltz"})
    + _styles("jazz", (90, 120), {"stdlib/ragtime": "ragtime"})
    + _styles("jazz", (110, 150), {"zoom/jazz": "jazz", "zoom/fusion": "jazz fusion"}, drums_only=True)
    + _styles("blues", (75, 115), {"stdlib/blues": "blues", "casio/blues": "blues", "stdlib/countryblues": "country blues"})
    + _styles("blues", (60, 80), {"stdlib/slowblues": "slow blues"})
    + _styles("blues", (115, 170), {"stdlib/fastblues": "fast blues", "stdlib/boggiewoggie": "boogie-woogie",
                                    "stdlib/shuffleboggie": "blues shuffle", "casio/shuffleboogie": "shuffle boogie"})
    + _styles("blues", (80, 120), {"zoom/blues": "blues", "zoom/shuffle": "shuffle"}, drums_only=True)
    + _styles("latin", (120, 150), {"stdlib/bossanova": "bossa nova", "kara/kbossa": "bossa nova",
                                    "yamaha/jazzbossa": "jazz bossa nova"})
    + _styles("latin", (100, 135), {"stdlib/beguine": "beguine", "stdlib/chacha": "cha-cha-cha",
                                    "stdlib/rhumba": "rhumba", "stdlib/jazzrhumba": "jazz rhumba",
                                    "stdlib/lfusion": "Latin fusion", "casio/latinfusion": "Latin fusion",
                                    "stdlib/son": "son montuno", "stdlib/bolero": "bolero"})
    + _styles("latin", (112, 130), {"stdlib/tango": "tango", "stdlib/lighttango": "light tango"})
    + _styles("latin", (160, 200), {"stdlib/mambo": "mambo", "yamaha/mambo": "mambo", "stdlib/salsa": "salsa",
                                    "yamaha/salsa1": "salsa", "yamaha/salsa2": "salsa", "stdlib/merengue": "merengue"})
    + _styles("latin", (95, 120), {"stdlib/samba": "samba"})
    + _styles("latin", (70, 95), {"stdlib/slowbolero": "slow bolero", "stdlib/cubanguitar": "Cuban guitar"})
    + _styles("latin", (95, 125), {"zoom/bossa": "bossa nova", "zoom/samba": "samba", "zoom/latin": "Latin"},
              drums_only=True)
    + _styles("country", (115, 165), {"stdlib/bluegrass": "bluegrass", "stdlib/countryswing": "country swing",
                                      "stdlib/westernswing": "western swing", "stdlib/hillcountry": "hillbilly country",
                                      "yamaha/western": "western", "yamaha/jazzcountry": "country jazz"})
    + _styles("country", (60, 85), {"stdlib/slowcountry": "slow country", "kara/kwestballad": "western ballad"})
    + _styles("country", (100, 130), {"zoom/country": "country"}, drums_only=True)
    + _styles("folk", (90, 130), {"stdlib/folk": "folk", "stdlib/bluefolk": "blues-folk", "stdlib/zydeco": "zydeco"})
    + _styles("folk", (60, 90), {"stdlib/folkballad": "folk ballad"})
    + _styles("folk", (105, 135), {"stdlib/polka": "polka", "casio/polka": "polka", "casio/poppolka": "pop polka"})
    + _styles("electronic", (118, 130), {"casio/house": "house", "casio/latinhouse": "Latin house",
                                         "casio/dance1": "dance", "casio/dance2": "dance",
                                         "casio/dancepop1": "dance pop", "casio/dancepop2": "dance pop",
                                         "casio/8beatdance": "eight-beat dance pop", "casio/electricpop": "electro pop"})
    + _styles("electronic", (126, 142), {"casio/techno": "techno", "alexis/teamtechno": "techno",
                                         "stdlib/trance": "trance", "casio/trance1": "trance",
                                         "casio/trance2": "trance"})
    + _styles("electronic", (135, 150), {"casio/rave": "rave"})
    + _styles("electronic", (70, 100), {"casio/ambient1": "ambient", "casio/ambient2": "ambient",
                                        "casio/ambient3": "ambient"})
    + _styles("electronic", (118, 130), {"zoom/house": "house", "zoom/dance": "dance"}, drums_only=True)
    + _styles("electronic", (125, 140), {"zoom/techno": "techno"}, drums_only=True)
    + _styles("electronic", (160, 178), {"zoom/dnb": "drum and bass"}, drums_only=True)
    + _styles("hip hop", (80, 100), {"casio/hip-hop": "hip hop", "alexis/hiphop": "hip hop"})
    + _styles("hip hop", (72, 95), {"casio/triphop": "trip hop"})
    + _styles("hip hop", (80, 100), {"zoom/hiphop": "hip hop", "zoom/trip": "trip hop"}, drums_only=True)
    + _styles("reggae", (100, 130), {"stdlib/calypso": "calypso"})
    + _styles("reggae", (140, 170), {"stdlib/ska": "ska"})
    + _styles("reggae", (70, 90), {"zoom/reggae": "reggae"}, drums_only=True)
    + _styles("reggae", (140, 170), {"zoom/ska": "ska"}, drums_only=True)
    + _styles("waltz", (85, 115), {"stdlib/waltz": "waltz", "casio/popwaltz": "pop waltz",
                                   "stdlib/arpeggiowaltz": "arpeggiated waltz"})
    + _styles("waltz", (120, 165), {"stdlib/countrywaltz": "country waltz", "stdlib/frenchwaltz": "French café waltz",
                                    "stdlib/latinwaltz": "Latin waltz", "stdlib/rockwaltz": "rock waltz",
                                    "stdlib/broadwaywaltz": "Broadway waltz"})
    + _styles("waltz", (150, 180), {"stdlib/vienesewaltz": "Viennese waltz"})
    + _styles("march", (105, 130), {"stdlib/march": "march", "casio/march1": "march", "casio/germanmarch": "German march",
                                    "stdlib/dixiemarch": "Dixieland march"})
    + _styles("show", (95, 135), {"stdlib/broadway": "Broadway show tune", "stdlib/showtune": "orchestral show tune",
                                  "stdlib/foxtrot": "foxtrot", "casio/foxtrot": "foxtrot"})
    + _styles("show", (180, 210), {"stdlib/quickstep": "quickstep", "casio/quickstep": "quickstep"})
    + _styles("show", (180, 240), {"stdlib/charleston": "Charleston"})
    + _styles("sacred", (70, 100), {"stdlib/hymn": "hymn"})
    + _styles("sacred", (60, 80), {"stdlib/slowspiritual": "slow spiritual"})
    + _styles("sacred", (120, 160), {"stdlib/spiritual": "spiritual"})
)

FAMILIES = tuple(dict.fromkeys(style.family for style in STYLES))
assert set(FAMILIES) <= set(HARMONY), set(FAMILIES) - set(HARMONY)
