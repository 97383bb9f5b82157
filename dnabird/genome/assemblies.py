"""Known reference assemblies, read from ``data_manifests/<name>.json``.

An assembly manifest says where a reference can be downloaded (sources with URLs and, where
known, checksums) and lists its primary chromosomes with their lengths in both naming
styles. ``dnabird preprocess --assembly`` compares a FASTA against it;
``dnabird fetch-genome`` downloads from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dnabird.errors import ConfigError
from dnabird.genome.chromosomes import canonical_name

#: Folder of the assembly manifests, shipped inside the package (the repository's top-level
#: ``data_manifests`` is a link to it).
MANIFEST_DIR = Path(__file__).resolve().parents[1] / "data_manifests"


def known_assemblies() -> list[str]:
    """Names of the assembly manifests available (``grch37``, ...)."""
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.json"))


def load_assembly(name: str) -> dict[str, Any]:
    """The manifest of assembly ``name`` or one of its aliases (``grch37``, ``hg19``; case
    does not matter), or ConfigError if unknown."""
    path = MANIFEST_DIR / f"{name.lower()}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    for other in sorted(MANIFEST_DIR.glob("*.json")):
        manifest = json.loads(other.read_text(encoding="utf-8"))
        if name.lower() in (alias.lower() for alias in manifest.get("aliases", [])):
            return manifest
    raise ConfigError(
        f"unknown assembly {name!r}: no {path} (known: {', '.join(known_assemblies()) or 'none'})"
    )


def length_mismatches(assembly: dict[str, Any], lengths: dict[str, int]) -> dict[str, Any]:
    """Compare FASTA record lengths ({name: bp}) with the assembly's chromosomes.

    Returns ``{"mismatched": {name: [fasta_bp, expected_bp]}, "missing": [ucsc names]}``
    for the assembly's chromosomes; records of other names are ignored.
    """
    expected = {c["ucsc"]: int(c["length"]) for c in assembly["chromosomes"]}
    found = {canonical_name(n): (n, bp) for n, bp in lengths.items() if canonical_name(n)}
    mismatched = {
        found[c][0]: [found[c][1], bp]
        for c, bp in expected.items()
        if c in found and found[c][1] != bp
    }
    missing = [c for c in expected if c not in found]
    return {"mismatched": mismatched, "missing": missing}
