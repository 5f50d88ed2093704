"""The step images' Dockerfiles and the names the compiled pipelines give them.

Building and running the images is scripts/build-images.sh (root, buildah and podman;
minutes per image), not part of this suite.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from image_tools import extra_distributions
from rai_audit import __version__
from rai_audit.cli import main
from rai_audit.images import ENV_REGISTRY, ENV_TAG, STEPS, dockerfile, step_image
from rai_audit.kfp_components import COMPONENT_STEPS, with_images

ROOT = Path(__file__).resolve().parents[1]
HADOLINT = Path(sys.executable).with_name("hadolint")


@pytest.mark.parametrize("step", STEPS)
def test_dockerfiles_are_written_from_the_images_module(step):
    assert (ROOT / "images" / step / "Dockerfile").read_text() == dockerfile(step), (
        "run `python -m rai_audit.images images` and commit the Dockerfiles"
    )


def test_hadolint_finds_nothing():
    # Default threshold: not even info or style findings.
    files = [str(ROOT / "images" / step / "Dockerfile") for step in STEPS]
    done = subprocess.run([str(HADOLINT), *files], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_hadolint_would_catch_an_unpinned_package(tmp_path):
    # The lint really sees the pip calls: an unpinned package is a warning (DL3013).
    bad = tmp_path / "Dockerfile"
    bad.write_text(dockerfile("constructor").replace("setuptools==", "setuptools>="))
    done = subprocess.run([str(HADOLINT), "--failure-threshold", "warning", str(bad)], capture_output=True, text=True)
    assert done.returncode == 1 and "DL3013" in done.stdout


@pytest.mark.parametrize("step", STEPS)
def test_each_image_installs_only_its_own_extra(step):
    text = dockerfile(step)
    assert re.findall(r'"/src\[(\w+)\]"', text) == [step]
    assert "-c /src/constraints.txt" in text and "--no-cache-dir" in text
    assert "ARG BASE_IMAGE=python:3.11-slim" in text and "USER 10001" in text
    assert "gcc" not in text and "build-essential" not in text
    # Only the build stage sees the sources; the image gets the finished environment.
    final_stage = text.split("\nFROM ${BASE_IMAGE}\n")[1]
    assert "COPY --from=build /opt/rai-audit /opt/rai-audit" in final_stage and "/src" not in final_stage


def test_heavy_libraries_are_in_one_image_each():
    carried = {step: extra_distributions(step) for step in STEPS}
    assert [s for s in STEPS if "dice-ml" in carried[s]] == ["counterfactual"]
    assert [s for s in STEPS if "xgboost" in carried[s]] == ["counterfactual"]
    assert [s for s in STEPS if "econml" in carried[s]] == ["causal"]
    assert [s for s in STEPS if "weasyprint" in carried[s]] == ["scorecard"]
    assert "interpret-community" not in carried["causal"] and "econml" not in carried["explainer"]
    # Every image carries the artifact contract's own dependencies.
    for step in STEPS:
        assert {"kfp", "pandas", "pyarrow", "scikit-learn", "skops"} <= carried[step]


def test_scorecard_image_pins_weasyprint_system_libraries():
    text = dockerfile("scorecard")
    for package in ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0", "fonts-dejavu-core"):
        assert re.search(rf"{re.escape(package)}=\$\{{\w+_VERSION\}}", text), package
    assert "rm -rf /var/lib/apt/lists/*" in text
    assert "apt-get" not in dockerfile("gather")


@pytest.mark.parametrize("step", STEPS)
def test_images_with_lightgbm_carry_openmp(step):
    # LightGBM's wheel needs the system's libgomp1 (found by running the images).
    assert ("lightgbm" in extra_distributions(step)) == ("libgomp1=${GOMP_VERSION}" in dockerfile(step))


def test_every_debian_version_is_given_for_the_local_base():
    arguments = {a for step in STEPS for a in re.findall(r"ARG (\w+_VERSION)=", dockerfile(step))}
    bookworm = (ROOT / "images" / "debian-bookworm.args").read_text()
    assert (
        arguments
        == set(re.findall(r"^(\w+_VERSION)=\S+$", bookworm, re.M))
        == {"GOMP_VERSION", "PANGO_VERSION", "HARFBUZZ_VERSION", "FONTS_DEJAVU_VERSION"}
    )


def test_image_names_take_registry_and_tag(monkeypatch):
    monkeypatch.delenv(ENV_REGISTRY, raising=False)
    monkeypatch.delenv(ENV_TAG, raising=False)
    assert step_image("gather") == f"rai-audit/gather:{__version__}"
    assert step_image("gather", registry="ghcr.io/acme/", tag="2.0") == "ghcr.io/acme/gather:2.0"
    monkeypatch.setenv(ENV_REGISTRY, "registry.local:5000/audit")
    monkeypatch.setenv(ENV_TAG, "nightly-3")
    assert step_image("causal") == "registry.local:5000/audit/causal:nightly-3"
    with pytest.raises(ValueError, match="`step` must be one of"):
        step_image("fairness")


def _images_of(path: Path) -> dict[str, str]:
    spec = next(yaml.safe_load_all(path.read_text()))
    return {
        name: executor["container"]["image"]
        for name, executor in spec["deploymentSpec"]["executors"].items()
        if "container" in executor
    }


def test_compiled_pipelines_name_each_steps_image():
    images = _images_of(ROOT / "pipelines" / "audit_pipeline.yaml")
    assert images["exec-constructor"] == f"rai-audit/constructor:{__version__}"
    assert images["exec-merge-explanations"] == f"rai-audit/explainer:{__version__}"
    assert images["exec-merge-counterfactuals"] == f"rai-audit/counterfactual:{__version__}"
    assert images["exec-register-model"] == f"rai-audit/scorecard:{__version__}"
    assert images["exec-publish"] == f"rai-audit/publish:{__version__}"
    assert {image.split("/")[1].split(":")[0] for image in images.values()} == set(STEPS)


def test_compile_with_another_registry_and_tag(tmp_path, capsys):
    out = tmp_path / "audit.yaml"
    assert (
        main(
            [
                "compile",
                "--pipeline",
                "audit",
                "--output",
                str(out),
                "--image-registry",
                "ghcr.io/acme/rai",
                "--image-tag",
                "1.2.3",
            ]
        )
        == 0
    )
    images = _images_of(out)
    assert images["exec-causal"] == "ghcr.io/acme/rai/causal:1.2.3"
    assert all(image.startswith("ghcr.io/acme/rai/") and image.endswith(":1.2.3") for image in images.values())
    # The components get their own images back for the next build.
    assert all(
        component.component_spec.implementation.container.image == step_image(step)
        for component, step in COMPONENT_STEPS.items()
    )


def test_chosen_images_are_copies_and_the_shared_components_keep_theirs():
    chosen = with_images("elsewhere", "x")
    assert {c.component_spec.implementation.container.image for c in chosen.values()} == {
        f"elsewhere/{step}:x" for step in COMPONENT_STEPS.values()
    }
    assert all(
        component.component_spec.implementation.container.image == step_image(step)
        for component, step in COMPONENT_STEPS.items()
    )
    # Without a registry or tag: the shared components themselves.
    assert set(with_images().values()) == set(COMPONENT_STEPS)


def test_build_context_is_only_the_package_and_its_pins():
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1 :] == [
        "!pyproject.toml",
        "!constraints.txt",
        "!README.md",
        "!components",
        "**/__pycache__",
    ]
    copied = {
        p
        for line in dockerfile("gather").splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for p in line.split()[1:-1]
    }
    assert copied == {"pyproject.toml", "constraints.txt", "README.md", "components"}


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_build_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "build-images.sh")]).returncode == 0
