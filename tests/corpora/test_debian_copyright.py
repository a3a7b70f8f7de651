"""Tests for audiodit/corpora/debian_copyright.py: DEP-5 parsing, matching installed paths to Files
stanzas (last match wins, suffix matching, dropped source folders) and the licence policy."""

import pytest

from audiodit.corpora.debian_copyright import (
    is_machine_readable,
    licence_verdict,
    match_file,
    parse_copyright,
    pattern_matches,
)

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: Fake Quest
Source: https://example.org/fakequest

Files: *
Copyright: 2019-2020 Fake Quest Team
           2020 Dana Developer
License: GPL-2+

Files:
 data/music/*
Copyright: 2021 Alice Composer
License: CC-BY-SA-3.0

Files: data/music/secret/*
Copyright: 2022 Bob Label
License: CC-BY-NC-4.0

Files: data/music/secret/free.ogg
Copyright: 2023 Carol
License: CC0-1.0

License: GPL-2+
 This program is free software; you can redistribute it and/or modify
 .
 it under the terms of the GNU General Public License.
"""
ROOT = "/usr/share/games/fakequest"  # the game installs its source data/ folder here


def test_parse_stanzas_header_and_multiline_fields():
    parsed = parse_copyright(COPYRIGHT)
    assert parsed.upstream_name == "Fake Quest"
    assert [s.patterns for s in parsed.stanzas] == [
        ("*",), ("data/music/*",), ("data/music/secret/*",), ("data/music/secret/free.ogg",)]
    assert parsed.stanzas[0].copyright == "2019-2020 Fake Quest Team\n2020 Dana Developer"
    assert [s.license for s in parsed.stanzas] == ["GPL-2+", "CC-BY-SA-3.0", "CC-BY-NC-4.0", "CC0-1.0"]


def test_free_form_file_is_not_machine_readable():
    text = "This package was debianized by someone.\n\nCopyright (C) 2003 David White\n\nLicense: GPL\n"
    assert not is_machine_readable(text)
    with pytest.raises(ValueError, match="DEP-5"):
        parse_copyright(text)
    assert is_machine_readable(COPYRIGHT)


@pytest.mark.parametrize("path, licence, pattern, how", [
    (f"{ROOT}/sounds/boom.wav", "GPL-2+", "*", "suffix"),
    (f"{ROOT}/music/forest/a.ogg", "CC-BY-SA-3.0", "data/music/*", "suffix without 'data/'"),
    (f"{ROOT}/music/secret/loop.ogg", "CC-BY-NC-4.0", "data/music/secret/*", "suffix without 'data/'"),
    (f"{ROOT}/music/secret/free.ogg", "CC0-1.0", "data/music/secret/free.ogg", "suffix without 'data/'"),
])
def test_last_matching_stanza_wins(path, licence, pattern, how):
    match = match_file(parse_copyright(COPYRIGHT), path)
    assert (match.license, match.pattern, match.how) == (licence, pattern, how)


def test_only_folders_the_package_does_not_install_are_dropped():
    """minetest-data: 'mtg/' is the source tree's, but 'mods/tnt/' is installed, so the CC0 stanza of
    the tnt sounds must not claim another mod's sounds/ folder through a bare 'sounds/*'."""
    installed = "/usr/share/games/minetest/games/minetest_game/mods"
    assert pattern_matches("mtg/mods/tnt/sounds/*", f"{installed}/tnt/sounds/tnt_explode.ogg") == \
        "suffix without 'mtg/'"
    assert pattern_matches("mtg/mods/tnt/sounds/*", f"{installed}/env_sounds/sounds/env_sounds_water.1.ogg") is None


def test_stanza_order_decides():
    """DEP-5: the last match wins, so a general stanza after a specific one overrides it."""
    paragraphs = COPYRIGHT.split("\n\n")
    reordered = "\n\n".join([paragraphs[0], paragraphs[1], paragraphs[4], paragraphs[2], paragraphs[5]])
    match = match_file(parse_copyright(reordered), f"{ROOT}/music/secret/free.ogg")
    assert match.license == "CC-BY-SA-3.0"


def test_no_stanza_matches():
    text = COPYRIGHT.replace("Files: *\n", "Files: src/*\n")
    match = match_file(parse_copyright(text), "/usr/share/doc/other/readme.wav")
    assert match.license is None and match.stanza is None


@pytest.mark.parametrize("pattern, path, expected", [
    ("./dat/snd/music/x.ogg", "/usr/share/naev/dat/snd/music/x.ogg", "suffix"),
    ("music/a.ogg", "/games/xmusic/a.ogg", None),  # only on a "/" boundary
    ("music/track?.ogg", "/games/music/track7.ogg", "suffix"),
    ("music/track?.ogg", "/games/music/track17.ogg", None),
    ("data/a.ogg", "/games/other/a.ogg", None),  # never shortened to a bare file name
    ("data/*/a.ogg", "/games/x/a.ogg", None),  # never shortened to a leading wildcard
    ("base/music/*.ogg", "/usr/share/games/ufoai/base/music/sub/x.ogg", "suffix"),  # * crosses "/"
    (r"music/odd\*name.ogg", "/g/music/odd*name.ogg", "suffix"),
])
def test_pattern_matching(pattern, path, expected):
    assert pattern_matches(pattern, path) == expected


@pytest.mark.parametrize("expression, ok", [
    ("GPL-2+", True), ("GPL", True), ("LGPL-2.1+", True), ("GPL-3.0-or-later", True),
    ("CC-BY-3.0", True), ("CC-BY-SA-4.0", True), ("CC0-1.0", True), ("public-domain", True), ("PD", True),
    ("Artistic-2.0", True), ("Expat", True), ("BSD-3-clause", True), ("Zlib", True),
    ("GPL-3 or CC-BY-3.0", True), ("GPL-2+ or CC-BY-NC-3.0", True), ("LGPL-2.1+ and MIT-Brian-Paul", True),
    ("GPL-2+ with Font exception", True),
    ("CC-BY-NC-SA-3.0", False), ("CC-BY-ND-4.0", False), ("GPL-2+ and Proprietary", False),
    ("non-free", False), ("Foo-License", False), ("", False), (None, False),
    ("GPL-2+ or CC-BY-SA-3.0, and GAP", False),  # ", and" binds loosest: GAP must hold too
])
def test_licence_verdict(expression, ok):
    verdict, reason = licence_verdict(expression)
    assert verdict is ok, reason
    if not ok and expression and "nc" in expression.lower():
        assert "non-free" in reason
