"""Artifact contract: manifests catch any change, meta is checked, writes are all-or-nothing."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from rai_audit.core._errors import ArtifactIntegrityError, RAIInputError
from rai_audit.core.artifacts import (
    KIND_CONSTRUCTOR,
    KIND_DASHBOARD,
    MANIFEST_FILE,
    META_FILE,
    SCHEMA_VERSION,
    artifact_writer,
    new_meta,
    read_artifact_meta,
    read_yaml,
    to_jsonable,
    verify_manifest,
    write_json,
    write_manifest,
    write_parquet,
)

FILES = {
    "table.parquet": None,  # written with write_parquet
    "nested/values.json": b'{"a": 1}\n',
    "notes.txt": b"hello\n",
}


def fill(folder, **meta_fields):
    """Write FILES and a meta.json (fields override new_meta's) into ``folder``."""
    (folder / "nested").mkdir(parents=True, exist_ok=True)
    write_parquet(pd.DataFrame({"x": [1, 2, 3]}), folder / "table.parquet")
    for name, content in FILES.items():
        if content is not None:
            (folder / name).write_bytes(content)
    write_json(folder / META_FILE, {**new_meta(KIND_CONSTRUCTOR, "run-1"), **meta_fields})


def artifact(folder, **meta_fields):
    fill(folder, **meta_fields)
    return write_manifest(folder)


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


# --- manifest ------------------------------------------------------------------------------


def test_manifest_round_trip(tmp_path):
    manifest = artifact(tmp_path)
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert sorted(manifest["files"]) == sorted([*FILES, META_FILE])
    for name, entry in manifest["files"].items():
        content = (tmp_path / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
    assert json.loads((tmp_path / MANIFEST_FILE).read_text()) == manifest
    assert verify_manifest(tmp_path) == manifest


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))


TAMPERING = {
    "changed": ("nested/values.json", _flip_byte),
    "missing": ("notes.txt", lambda path: path.unlink()),
    "not in manifest": ("nested/extra.bin", lambda path: path.write_bytes(b"\x00")),
}


@pytest.mark.parametrize(("label", "name", "tamper"), [(k, *v) for k, v in TAMPERING.items()], ids=TAMPERING.keys())
def test_tampered_artifact_is_refused(tmp_path, label, name, tamper):
    artifact(tmp_path)
    tamper(tmp_path / name)
    with pytest.raises(ArtifactIntegrityError, match=rf"\({label}: {name}\)"):
        verify_manifest(tmp_path)


@pytest.mark.parametrize(
    ("setup", "match"),
    [(fill, rf"has no {MANIFEST_FILE}"), (lambda folder: None, r"does not exist or is not a folder")],
    ids=["no-manifest", "no-folder"],
)
def test_unverifiable_folder_is_refused(tmp_path, setup, match):
    folder = tmp_path / "artifact"
    setup(folder)
    with pytest.raises(ArtifactIntegrityError, match=match):
        verify_manifest(folder)


@pytest.mark.parametrize(
    ("meta_fields", "expected_kind", "expectation"),
    [
        ({}, KIND_CONSTRUCTOR, contextlib.nullcontext()),
        ({}, None, contextlib.nullcontext()),
        (
            {"schema_version": "999"},
            None,
            pytest.raises(ArtifactIntegrityError, match=r"schema_version '999'.*reads \['1\.0'\]"),
        ),
        (
            {},
            KIND_DASHBOARD,
            pytest.raises(ArtifactIntegrityError, match=r"must be of kind 'dashboard', got 'constructor'"),
        ),
    ],
    ids=["kind-ok", "any-kind", "unknown-schema", "wrong-kind"],
)
def test_read_artifact_meta(tmp_path, meta_fields, expected_kind, expectation):
    artifact(tmp_path, **meta_fields)
    with expectation:
        meta = read_artifact_meta(tmp_path, expected_kind=expected_kind)
        assert (meta["kind"], meta["run_id"], meta["schema_version"]) == (KIND_CONSTRUCTOR, "run-1", SCHEMA_VERSION)


def test_read_artifact_meta_verifies_manifest_first(tmp_path):
    artifact(tmp_path)
    _flip_byte(tmp_path / "notes.txt")
    with pytest.raises(ArtifactIntegrityError, match=r"changed: notes\.txt"):
        read_artifact_meta(tmp_path, expected_kind=KIND_CONSTRUCTOR)


# --- artifact_writer -------------------------------------------------------------------------


@pytest.mark.parametrize("relative", ["out", "deeper/still/out"])
@pytest.mark.parametrize("pre_existing_empty", [False, True], ids=["new", "empty-existing"])
def test_writer_success_moves_complete_folder(tmp_path, relative, pre_existing_empty):
    out = tmp_path / relative
    if pre_existing_empty:
        out.mkdir(parents=True)
    with artifact_writer(out) as work:
        assert work.parent == out.parent and work.name.startswith(".out.partial-")
        fill(work)
    assert listing(out.parent) == ["out"]
    assert sorted(verify_manifest(out)["files"]) == sorted([*FILES, META_FILE])


@pytest.mark.parametrize("pre_existing_empty", [False, True], ids=["new", "empty-existing"])
def test_writer_failure_leaves_nothing(tmp_path, pre_existing_empty):
    out = tmp_path / "out"
    if pre_existing_empty:
        out.mkdir()
    with pytest.raises(RuntimeError, match="boom"), artifact_writer(out) as work:
        fill(work)
        assert work.is_dir()
        raise RuntimeError("boom")
    assert not work.exists()
    assert listing(tmp_path) == (["out"] if pre_existing_empty else [])
    assert not pre_existing_empty or listing(out) == []


@pytest.mark.parametrize(
    "make_existing",
    [
        lambda out: (out.mkdir(), (out / "keep.txt").write_text("old results")),
        lambda out: out.write_text("old results"),
    ],
    ids=["non-empty-folder", "file"],
)
def test_writer_refuses_existing_output(tmp_path, make_existing):
    out = tmp_path / "out"
    make_existing(out)
    body_ran = False
    with pytest.raises(RAIInputError, match=r"already exists and is not empty"), artifact_writer(out):
        body_ran = True
    assert not body_ran
    assert listing(tmp_path) == ["out"]
    kept = out / "keep.txt" if out.is_dir() else out
    assert kept.read_text() == "old results"
    assert not out.is_dir() or listing(out) == ["keep.txt"]


# --- JSON ----------------------------------------------------------------------------------------


def typed(value):
    """``value`` with every leaf paired with its exact type, so that 1, 1.0 and True differ."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value), value)


JSONABLE = {
    "nan": (math.nan, None),
    "inf": (math.inf, None),
    "-inf": (-math.inf, None),
    "np.nan float32": (np.float32("nan"), None),
    "np.inf": (np.float64(np.inf), None),
    "np.float64": (np.float64(1.5), 1.5),
    "np.float32": (np.float32(0.25), 0.25),
    "np.int64": (np.int64(7), 7),
    "np.uint8": (np.uint8(255), 255),
    "np.bool_": (np.bool_(True), True),
    "bool": (False, False),
    "pd.NA": (pd.NA, None),
    "pd.NaT": (pd.NaT, None),
    "timestamp": (pd.Timestamp("2024-05-01T12:00:00"), "2024-05-01T12:00:00"),
    "date": (dt.date(2024, 5, 1), "2024-05-01"),
    "array": (np.array([1.0, np.nan, 3.0]), [1.0, None, 3.0]),
    "int array": (np.array([1, 2], dtype=np.int32), [1, 2]),
    "tuple": ((np.int8(1), "a"), [1, "a"]),
    "nested": (
        {np.int64(1): {"a": np.int32(2), "b": [np.float64(np.inf), np.bool_(False)]}, "c": {"d": math.nan}},
        {"1": {"a": 2, "b": [None, False]}, "c": {"d": None}},
    ),
}


@pytest.mark.parametrize(("value", "expected"), JSONABLE.values(), ids=JSONABLE.keys())
def test_to_jsonable(value, expected):
    assert typed(to_jsonable(value)) == typed(expected)


def _reject_constant(name):
    raise AssertionError(f"non-standard JSON constant {name} in output")


def test_write_json_is_strict(tmp_path):
    path = tmp_path / "data.json"
    write_json(path, {key: value for key, (value, _) in JSONABLE.items()})
    loaded = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    assert typed(loaded) == typed({key: expected for key, (_, expected) in JSONABLE.items()})


def test_read_yaml_refuses_a_value_pyyaml_cannot_construct(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("when: 2021-13-45\n", encoding="utf-8")  # a date PyYAML parses, datetime refuses
    with pytest.raises(RAIInputError, match=r"config\.yaml is not valid YAML/JSON: month must be in 1\.\.12"):
        read_yaml(path)
