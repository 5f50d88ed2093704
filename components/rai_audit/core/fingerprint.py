"""A content fingerprint of the audit's inputs: what KFP's cache cannot see behind a URI.

A scheduled audit reads the same model and data URIs each run while what they hold may
change (a retrained model written to the same place). KFP keys its cache on the URI, so
the pipeline passes this fingerprint to the constructor as a parameter: same content, same
key (the cached analyses are reused); one byte changed, a new key (everything recomputes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from rai_audit.core._errors import RAIInputError
from rai_audit.core.artifacts import sha256_file


def _files(path: Path, what: str) -> list[tuple[str, Path]]:
    """(relative path, file) of a file ("" for itself) or of every file under a folder, sorted."""
    if path.is_file():
        return [("", path)]
    if path.is_dir():
        return sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file())
    raise RAIInputError(f"{what} {path} does not exist")


def input_fingerprint(inputs: Mapping[str, str | Path]) -> str:
    """sha256 over the named inputs' bytes: each is a file, or a folder whose files count in
    the order of their relative paths (names included, so a renamed or moved file counts).

    The names are part of it (model, train and test data swapped give another fingerprint);
    where a file lies does not: the same bytes at another path give the same fingerprint.
    """
    digest = hashlib.sha256(b"rai-audit input fingerprint v1\n")
    for name in sorted(inputs):
        for relative, file in _files(Path(inputs[name]), name):
            digest.update(f"{name}\0{relative}\0{file.stat().st_size}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()
