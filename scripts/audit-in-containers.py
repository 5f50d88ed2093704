"""Run the demo audit step by step in the step images and compare it with the local run.

Each step runs in its own container (podman, no network) from its own image, sees its
inputs as read-only mounted folders and writes one output folder; nothing else passes
between containers. The same audit then runs locally (kfp.local, this Python
environment), and the final bundle and scorecard must be equal (scripts/compare_artifacts.py).
With ``--kfp-docker`` the audit pipeline itself also runs under kfp.local's DockerRunner,
talking to podman's Docker-compatible socket, so every task runs in its step's image, and
its result must be equal too.

    python scripts/audit-in-containers.py --registry localhost/rai-audit --tag 0.1.0 --output DIR [--kfp-docker]

scripts/build-images.sh builds the images and then runs this.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from compare_artifacts import artifact_differences
from image_tools import PODMAN_RUN, podman
from rai_audit.config import resolve_config
from rai_audit.demo import prepare_demo
from rai_audit.images import USER_ID, image_registry, image_tag
from rai_audit.local_run import run_audit_locally


def _flags(options: dict) -> list[str]:
    """A step's config options as its command's flags (lists and objects as JSON)."""
    flags = []
    for key, value in options.items():
        flags += [f"--{key.replace('_', '-')}", json.dumps(value) if isinstance(value, (list, dict)) else str(value)]
    return flags


class ContainerRun:
    def __init__(self, work: Path, registry: str, tag: str) -> None:
        self.work, self.registry, self.tag = work, registry, tag
        self.seconds: dict[str, float] = {}

    def step(self, name: str, image: str, command: list[str], inputs: dict[str, Path]) -> Path:
        """Run ``rai-audit <command>`` in ``image``; inputs mounted read-only, one output folder.

        ``command`` names inputs as ``{key}`` placeholders, the output folder as ``{output}``.
        """
        out = self.work / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        os.chown(out, USER_ID, USER_ID)  # the images run as this non-root user
        mounts = []
        for key, path in inputs.items():
            mounts += ["-v", f"{path.resolve()}:/audit/in/{key}:ro"]
        places = {key: f"/audit/in/{key}" for key in inputs} | {"output": f"/audit/out/{name}"}
        argv = [part.format(**places) for part in command]
        started = time.perf_counter()
        done = subprocess.run(
            [
                *podman(),
                *PODMAN_RUN,
                *mounts,
                "-v",
                f"{out}:/audit/out",
                f"{self.registry}/{image}:{self.tag}",
                "rai-audit",
                *argv,
            ]
        )
        self.seconds[name] = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"step {name} failed in its container (exit {done.returncode})")
        return out / name


def run_demo_in_containers(config: dict, inputs: Path, scorecard_config: Path, run: ContainerRun) -> tuple[Path, Path]:
    """The demo audit, one container per task; returns the bundle and the scorecard folders."""
    files = {key: Path(config[key]).name for key in ("model", "train_data", "test_data", "cohorts")}
    constructor = run.step(
        "constructor",
        "constructor",
        [
            "constructor",
            "--model",
            f"{{inputs}}/{files['model']}",
            "--train",
            f"{{inputs}}/{files['train_data']}",
            "--test",
            f"{{inputs}}/{files['test_data']}",
            "--cohorts",
            f"{{inputs}}/{files['cohorts']}",
            "--output",
            "{output}",
            "--target-column",
            config["target_column"],
            "--task-type",
            config["task_type"],
            "--positive-label",
            str(config["positive_label"]),
            "--sensitive-features",
            json.dumps(config["sensitive_features"]),
            "--sample-size",
            str(config["sample_size"]),
            "--random-state",
            str(config["random_state"]),
            "--allow-pickle",
            json.dumps(config["allow_pickle"]),
        ],
        {"inputs": inputs},
    )
    uses_constructor = {"constructor": constructor}
    insights = {}
    for step, image in (
        ("error_analysis", "error_analysis"),
        ("explainer", "explainer"),
        ("counterfactual", "counterfactual"),
        ("causal", "causal"),
    ):
        options = dict(config[step])
        shards = options.pop("shards", 1)
        command = [step, "--constructor", "{constructor}", "--output", "{output}", *_flags(options)]
        if shards == 1:
            insights[step] = run.step(step, image, command, uses_constructor)
            continue
        parts = {
            f"shard{i}": run.step(
                f"{step}-shard{i}",
                image,
                [*command, "--shard-index", str(i), "--shard-count", str(shards)],
                uses_constructor,
            )
            for i in range(shards)
        }
        insights[step] = run.step(
            f"{step}-merge",
            image,
            [
                step,
                "--constructor",
                "{constructor}",
                "--output",
                "{output}",
                "--merge",
                *(f"{{{key}}}" for key in parts),
            ],
            uses_constructor | parts,
        )
    bundle = run.step(
        "gather",
        "gather",
        [
            "gather",
            "--constructor",
            "{constructor}",
            "--output",
            "{output}",
            *(arg for step in insights for arg in ("--insight", f"{{{step}}}")),
        ],
        uses_constructor | insights,
    )
    scorecard = run.step(
        "scorecard",
        "scorecard",
        [
            "scorecard",
            "--dashboard",
            "{bundle}",
            "--config",
            f"{{config}}/{scorecard_config.name}",
            "--output",
            "{output}",
            "--random-state",
            str(config["random_state"]),
        ],
        {"bundle": bundle, "config": scorecard_config.parent},
    )
    return bundle, scorecard


def run_container_then_remove(client, image: str, command: list[str], volumes: dict, **run_args) -> int:
    """kfp.local's ``run_docker_container``, with the container removed by us after ``wait``.

    kfp starts its containers with ``auto_remove`` and takes Docker's 404 for "already removed,
    so it succeeded". Podman's service answers 500 "no such container" when a task's container
    is removed between kfp's calls (seen with the two shards started together), and kfp then
    fails a task that had finished. Removing the container ourselves after reading its exit
    code has no such race and keeps the real exit code.
    """
    run_args.pop("auto_remove", None)
    container = client.containers.run(image=image, command=command, volumes=volumes, detach=True, **run_args)
    try:
        for line in container.logs(stream=True, follow=True):
            print(line.decode(), end="")
        return int(container.wait()["StatusCode"])
    finally:
        container.remove(force=True)


def run_pipeline_in_images(config: dict, inputs: Path, out: Path, registry: str, tag: str) -> Path:
    """The audit pipeline under kfp.local's DockerRunner on podman's socket; returns the bundle."""
    import docker
    from kfp import local
    from kfp.local import docker_task_handler

    docker_task_handler.run_docker_container = run_container_then_remove

    root = out / "pipeline_root"
    root.mkdir(parents=True)
    # DockerRunner mounts only the pipeline root: the inputs go inside it. The tasks run as
    # the images' non-root user and create their output folders there.
    shutil.copytree(inputs, root / "inputs")
    for folder in (root, root / "inputs"):
        os.chown(folder, USER_ID, USER_ID)
    moved = {
        key: str(root / "inputs" / Path(config[key]).name) for key in ("model", "train_data", "test_data", "cohorts")
    }
    socket = out / "podman.sock"
    service = subprocess.Popen([*podman(), "system", "service", "--time=0", f"unix://{socket}"])
    try:
        for _ in range(100):
            if socket.exists():
                break
            time.sleep(0.1)
        os.environ["DOCKER_HOST"] = f"unix://{socket}"
        runner = local.DockerRunner(
            network_mode="none",
            ulimits=[
                docker.types.Ulimit(name="nofile", soft=4096, hard=4096),
                docker.types.Ulimit(name="nproc", soft=4096, hard=4096),
            ],
        )
        arguments, build = resolve_config(config | moved, base_dir=out)
        return run_audit_locally(arguments, root.parent, runner=runner, registry=registry, tag=tag, **build)
    finally:
        service.terminate()
        service.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=None, help="default: $RAI_AUDIT_IMAGE_REGISTRY or rai-audit")
    parser.add_argument("--tag", default=None, help="default: $RAI_AUDIT_IMAGE_TAG or the package version")
    parser.add_argument("--output", default="rai-audit-containers", help="folder for inputs and the runs")
    parser.add_argument(
        "--kfp-docker",
        action="store_true",
        help="also run the pipeline under kfp.local's DockerRunner (podman's socket)",
    )
    args = parser.parse_args()
    out = Path(args.output).resolve()
    shutil.rmtree(out, ignore_errors=True)
    inputs = out / "inputs"
    config = prepare_demo(inputs)
    config.pop("name")
    config.pop("publish")  # archiving needs an S3 server; the comparison is of what the steps compute
    for path in inputs.iterdir():
        path.chmod(0o644)
    card_config = out / "scorecard-config" / "scorecard.json"
    card_config.parent.mkdir()
    card_config.write_text(json.dumps(config["scorecard"]["config"]))
    card_config.chmod(0o644)

    registry, tag = image_registry(args.registry), image_tag(args.tag)
    run = ContainerRun(out / "containers", registry, tag)
    started = time.perf_counter()
    bundle, scorecard = run_demo_in_containers(config, inputs, card_config, run)
    container_seconds = time.perf_counter() - started

    started = time.perf_counter()
    arguments, build = resolve_config(config, base_dir=out)
    local_bundle = run_audit_locally(arguments, out / "local", **build)
    local_seconds = time.perf_counter() - started
    local_scorecard = local_bundle.parents[1] / "scorecard" / "scorecard"

    print("\nstep in its container          seconds")
    for name, seconds in run.seconds.items():
        print(f"  {name:<28} {seconds:7.1f}")
    print(f"all containers: {container_seconds:.1f} s; the same audit locally (kfp.local): {local_seconds:.1f} s")
    differences = artifact_differences(local_bundle, bundle) + [
        f"scorecard: {d}" for d in artifact_differences(local_scorecard, scorecard)
    ]
    if args.kfp_docker:
        started = time.perf_counter()
        docker_bundle = run_pipeline_in_images(config, inputs, out / "kfp-docker", registry, tag)
        print(
            f"the pipeline under kfp.local's DockerRunner (one container per task): "
            f"{time.perf_counter() - started:.1f} s"
        )
        docker_scorecard = docker_bundle.parents[1] / "scorecard" / "scorecard"
        differences += [f"DockerRunner: {d}" for d in artifact_differences(local_bundle, docker_bundle)]
        differences += [f"DockerRunner scorecard: {d}" for d in artifact_differences(local_scorecard, docker_scorecard)]
    if differences:
        print(f"the container runs differ from the local run in {len(differences)} places:")
        print("\n".join(f"  {d}" for d in differences[:50]))
        return 1
    n_files = sum(1 for p in bundle.rglob("*") if p.is_file())
    print(
        f"bundle ({n_files} files) and scorecard equal to the local run's "
        f"(run ids, times and durations set aside): {bundle}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
