"""Container images of the steps: one image per step, each with only that step's extra.

``step_image(step)`` names an image ``<registry>/<step>:<tag>``; the registry and tag come
from the arguments, else ``RAI_AUDIT_IMAGE_REGISTRY`` / ``RAI_AUDIT_IMAGE_TAG``, else
``rai-audit`` and this package's version (never ``latest``, so compiled YAML and code
cannot drift apart). An image ``make images REGISTRY=... TAG=...`` pushed is named by its
digest too (``<registry>/<step>:<tag>@sha256:...``): the push records each digest in
``images/pushed.json`` (or the file ``RAI_AUDIT_IMAGE_DIGESTS`` names), read here, so a
compiled pipeline runs exactly what was pushed.

The Dockerfiles under ``images/`` are written from ``dockerfile(step)``
(``python -m rai_audit.images images``); a test keeps them in step with this module.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from rai_audit import __version__

STEPS = ("constructor", "error_analysis", "explainer", "counterfactual", "causal", "gather", "scorecard", "publish")
DEFAULT_REGISTRY = "rai-audit"
ENV_REGISTRY, ENV_TAG = "RAI_AUDIT_IMAGE_REGISTRY", "RAI_AUDIT_IMAGE_TAG"
# The digests of pushed images, {"<registry>/<step>:<tag>": "sha256:..."} (scripts/push-images.sh).
ENV_DIGESTS = "RAI_AUDIT_IMAGE_DIGESTS"
PUSHED_FILE = Path(__file__).resolve().parents[2] / "images" / "pushed.json"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

# What each image carries besides the project's own dependencies (pyproject.toml's extras).
STEP_SUMMARY = {
    "constructor": "model and data checks, predictions, cohorts (onnxruntime for ONNX models)",
    "error_analysis": "error tree and heatmap (LightGBM)",
    "explainer": "explanations and their merge (interpret-community, shap, LightGBM, onnxruntime)",
    "counterfactual": "counterfactuals and their merge (dice-ml with xgboost, onnxruntime)",
    "causal": "causal analysis (econml)",
    "gather": "the dashboard bundle (altair, vl-convert)",
    "scorecard": "the PDF scorecard and the gated registration (weasyprint with Pango)",
    "publish": "archiving in S3 object storage (minio)",
}

# Debian packages by step. Versions are build arguments whose defaults are those of
# python:3.11-slim's Debian (trixie); a base on another release passes its own
# (images/debian-bookworm.args).
# LightGBM's wheel links the system's OpenMP runtime, which slim Debian lacks.
_OPENMP = {"libgomp1": "GOMP_VERSION"}
# weasyprint loads Pango and HarfBuzz with dlopen and needs a font.
_WEASYPRINT = {
    "libpango-1.0-0": "PANGO_VERSION",
    "libpangoft2-1.0-0": "PANGO_VERSION",
    "libharfbuzz-subset0": "HARFBUZZ_VERSION",
    "fonts-dejavu-core": "FONTS_DEJAVU_VERSION",
}
SYSTEM_PACKAGES = {
    "error_analysis": _OPENMP,
    "explainer": _OPENMP,
    "counterfactual": _OPENMP,
    "causal": _OPENMP,
    "scorecard": _WEASYPRINT,
}
TRIXIE_VERSIONS = {
    "GOMP_VERSION": "14.2.0-19",
    "PANGO_VERSION": "1.56.3-1",
    "HARFBUZZ_VERSION": "10.2.0-1+deb13u1",
    "FONTS_DEJAVU_VERSION": "2.37-8",
}

PIP_VERSION, SETUPTOOLS_VERSION = "26.3", "80.9.0"

# The images' non-root user.
USER_ID = 10001


def _check_step(step: str) -> None:
    if step not in STEPS:
        raise ValueError(f"`step` must be one of {list(STEPS)}, got {step!r}")


def image_registry(registry: str | None = None) -> str:
    return (registry or os.environ.get(ENV_REGISTRY) or DEFAULT_REGISTRY).rstrip("/")


def image_tag(tag: str | None = None) -> str:
    return tag or os.environ.get(ENV_TAG) or __version__


def pushed_digests() -> dict[str, str]:
    """Image name -> digest of the images pushed from here (empty when none were)."""
    path = Path(os.environ.get(ENV_DIGESTS) or PUSHED_FILE)
    if not path.is_file():
        return {}
    try:
        digests = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path}: the pushed images' digests are not JSON: {err}") from None
    bad = {k: v for k, v in digests.items() if not isinstance(v, str) or not _DIGEST.fullmatch(v)}
    if bad:
        raise ValueError(f"{path}: not sha256 digests: {bad}")
    return digests


def step_image(step: str, *, registry: str | None = None, tag: str | None = None) -> str:
    """``<registry>/<step>:<tag>``, with ``@<digest>`` when that image was pushed from here."""
    _check_step(step)
    name = f"{image_registry(registry)}/{step}:{image_tag(tag)}"
    digest = pushed_digests().get(name)
    return f"{name}@{digest}" if digest else name


# The steps that load and call the model: a model whose library is not in their images (an
# MLflow flavour, a booster) runs in an image of the user's own, built FROM the step's image.
MODEL_STEPS = ("constructor", "explainer", "counterfactual")


def task_image(
    step: str, *, registry: str | None = None, tag: str | None = None, model_image: str | None = None
) -> str:
    """The image a step's task runs: ``model_image`` for a model-calling step when given, else
    the step's own (``step_image``)."""
    if model_image is not None:
        if not model_image.strip() or any(c.isspace() for c in model_image):
            raise ValueError(f"`model_image` must be an image name (e.g. ghcr.io/acme/audit:1), got {model_image!r}")
        if step in MODEL_STEPS:
            return model_image
    return step_image(step, registry=registry, tag=tag)


# A step image's name: <registry>/<step>:<tag>, perhaps @<digest>.
STEP_IMAGE = re.compile(rf"^(?P<registry>.+)/(?P<step>{'|'.join(STEPS)}):(?P<tag>[^@/:]+)(?:@sha256:[0-9a-f]{{64}})?$")


def _system_packages(step: str) -> str:
    packages = SYSTEM_PACKAGES.get(step)
    if not packages:
        return ""
    args = "".join(f"ARG {arg}={TRIXIE_VERSIONS[arg]}\n" for arg in dict.fromkeys(packages.values()))
    pinned = " \\\n        ".join(f"{name}=${{{arg}}}" for name, arg in packages.items())
    return (
        f"{args}RUN apt-get update \\\n"
        f" && apt-get install -y --no-install-recommends \\\n        {pinned} \\\n"
        f" && apt-get clean \\\n && rm -rf /var/lib/apt/lists/*\n"
    )


def _build_extra(step: str) -> str:
    """A step's own last build command: gather keeps the Vega bundle its page carries in the
    image (bundling it takes 2-6 s, and every task is a new container)."""
    if step != "gather":
        return ""
    return (
        " \\\n && python3 -c 'from rai_audit.report import dashboard as d; "
        "d.write_vega_bundle(d.vega_bundle_files()[0])'"
    )


def dockerfile(step: str) -> str:
    """The Dockerfile of ``step``'s image (build context: the repository's root)."""
    _check_step(step)
    return f"""\
# rai-audit `{step}` step: {STEP_SUMMARY[step]}.
# Written by `python -m rai_audit.images images`; edit rai_audit/images.py, not this file.
# Build from the repository's root: scripts/build-images.sh, or
#   docker build -f images/{step}/Dockerfile -t {DEFAULT_REGISTRY}/{step}:{__version__} .
ARG BASE_IMAGE=python:3.11-slim

FROM ${{BASE_IMAGE}} AS build
# A virtual environment with pinned pip and setuptools; every other package at the version
# constraints.txt pins (the set the tests ran with). Only this stage sees the sources.
# The packages' own test suites (about 60 MB) are left out. Every module is compiled here
# (unchecked hashes: the image never changes): a task importing from source compiles
# scikit-learn, SciPy and pandas first, which made its start about 3x longer. A package's
# file that is no valid Python (a template) is left uncompiled, hence `|| true`.
COPY pyproject.toml constraints.txt README.md /src/
COPY components /src/components
ENV PATH=/opt/rai-audit/bin:$PATH
RUN python3 -m venv /opt/rai-audit \\
 && pip install --no-cache-dir pip=={PIP_VERSION} setuptools=={SETUPTOOLS_VERSION} \\
 && pip install --no-cache-dir --no-build-isolation \\
        -c /src/constraints.txt "/src[{step}]" \\
 && find /opt/rai-audit -depth -type d \\( -name "__pycache__" -o -name tests \\) -exec rm -rf {{}} + \\
 && (python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/rai-audit/lib \\
     >/dev/null || true){_build_extra(step)}

FROM ${{BASE_IMAGE}}
ARG VERSION={__version__}
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="rai-audit-{step}" \\
      org.opencontainers.image.description="rai-audit {step} step: {STEP_SUMMARY[step]}" \\
      org.opencontainers.image.version="${{VERSION}}" \\
      org.opencontainers.image.revision="${{REVISION}}" \\
      org.opencontainers.image.source="${{SOURCE}}" \\
      org.opencontainers.image.licenses="MIT"
{_system_packages(step)}RUN useradd --no-log-init --uid {USER_ID} --create-home --home-dir /home/rai rai
COPY --from=build /opt/rai-audit /opt/rai-audit
ENV PATH=/opt/rai-audit/bin:$PATH \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    MPLCONFIGDIR=/tmp/matplotlib
USER {USER_ID}
WORKDIR /home/rai
CMD ["rai-audit", "--help"]
"""


def write_dockerfiles(folder: str | Path) -> list[Path]:
    written = []
    for step in STEPS:
        path = Path(folder) / step / "Dockerfile"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dockerfile(step))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_dockerfiles(sys.argv[1] if len(sys.argv) > 1 else "images"):
        print(path)
