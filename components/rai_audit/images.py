"""Container images of the steps: one image per step, tagged with the package version.

The registry comes from ``RAI_AUDIT_IMAGE_REGISTRY`` when the pipeline is compiled
(default ``rai-audit``, the name the local image build uses); the tag is always this
package's version, never ``latest``, so compiled YAML and code cannot drift apart.
"""

from __future__ import annotations

import os

from rai_audit import __version__

STEPS = ("constructor", "error_analysis", "explainer", "counterfactual", "causal", "gather", "scorecard", "publish")
DEFAULT_REGISTRY = "rai-audit"


def step_image(step: str, *, registry: str | None = None) -> str:
    if step not in STEPS:
        raise ValueError(f"`step` must be one of {list(STEPS)}, got {step!r}")
    registry = registry or os.environ.get("RAI_AUDIT_IMAGE_REGISTRY") or DEFAULT_REGISTRY
    return f"{registry.rstrip('/')}/{step}:{__version__}"
