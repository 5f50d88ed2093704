"""Reading the shards of a sharded step (explainer, counterfactual) before they are merged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rai_audit.core import ArtifactIntegrityError, RAIInputError
from rai_audit.core import artifacts as A


def read_shards(
    run_id: str, shard_dirs: list[str | Path], kind: str, *, free_options: tuple[str, ...] = ("shard_index",)
) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, meta) of each shard, in shard order, once they are known to make one whole:
    verified, of ``kind``, from run ``run_id``, made with the same options (but
    ``free_options``), and numbered 0..n-1 of one split of n."""
    shards = []
    for folder in map(Path, shard_dirs):
        meta = A.read_artifact_meta(folder, expected_kind=kind)
        if meta["run_id"] != run_id:
            raise ArtifactIntegrityError(f"{kind} shard {folder} comes from run {meta['run_id']!r}, not {run_id!r}")
        shards.append((folder, meta))
    if not shards:
        raise RAIInputError(f"`shard_dirs` must name at least one {kind} shard")
    settings = {repr({k: v for k, v in meta["options"].items() if k not in free_options}) for _, meta in shards}
    if len(settings) != 1:
        raise RAIInputError(f"{kind} shards must be made with the same options, got {sorted(settings)}")
    indices = sorted(meta["options"]["shard_index"] for _, meta in shards)
    if indices != list(range(shards[0][1]["options"]["shard_count"])):
        raise RAIInputError(f"{kind} shards must be 0..n-1 of one split, got indices {indices}")
    return sorted(shards, key=lambda shard: shard[1]["options"]["shard_index"])
