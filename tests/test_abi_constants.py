"""The C++ plugin's ABI constants come from one source, mdval/abi.py: this test parses
pair_style/src and compares the abi version, the metadata file name, the metadata keys the
plugin reads and its wording of a broken output with mdval.abi. No build needed."""

from __future__ import annotations

import re
from pathlib import Path

from mdval import abi

SOURCES = sorted((Path(__file__).resolve().parents[1] / "pair_style" / "src").glob("*.[ch]*"))


def source_text() -> str:
    """All plugin sources, with adjacent string literals joined ("a " "b" -> "a b"), as the C++
    compiler joins them."""
    text = "\n".join(path.read_text() for path in SOURCES)
    return re.sub(r'"\s*\n\s*"', "", text)


def one_definition(pattern: str) -> str:
    found = re.findall(pattern, source_text())
    assert len(found) == 1, f"{pattern}: expected one definition in {[p.name for p in SOURCES]}, got {found}"
    return found[0]


def test_the_plugin_serves_the_abi_version_of_mdval_abi():
    assert int(one_definition(r"\bTAAFS_ABI_VERSION\s*=\s*(\d+)\s*;")) == abi.ABI_VERSION


def test_the_plugin_reads_the_metadata_file_of_mdval_abi():
    assert one_definition(r'\bTAAFS_METADATA_FILE\s*=\s*"([^"]*)"') == abi.METADATA_FILENAME


def test_the_plugin_reads_only_metadata_keys_that_mdval_abi_requires():
    """nlohmann json: j.at("key") throws when the key is missing (the plugin needs it),
    j.value("key", default) / j.contains("key") / j["key"] read it where present."""
    text = source_text()
    needed = set(re.findall(r'\.at\(\s*"(\w+)"\s*\)', text))
    read = (
        needed
        | set(re.findall(r'\.(?:value|contains)\(\s*"(\w+)"', text))
        | set(re.findall(r'\[\s*"(\w+)"\s*\]', text))
    )
    assert {"abi", "cutoff", "type_names"} <= needed  # what the plugin cannot serve a model without
    assert read <= set(abi.REQUIRED_METADATA_KEYS), read - set(abi.REQUIRED_METADATA_KEYS)


def test_the_plugin_words_a_broken_output_as_mdval_abi():
    """lmp, the ASE calculator and `mdval test` name a broken forward() output the same way."""
    text = source_text()
    assert abi.ENERGIES_FIX in text
    assert f"expected {abi.ENERGIES_DTYPE}" in text
