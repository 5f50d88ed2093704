"""The ``rai-audit`` command: run audits locally, compile pipelines, and run single steps."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rai_audit.steps._cli import run_cli

if TYPE_CHECKING:  # local_run imports kfp, and rich is needed on a terminal only
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from rai_audit.local_run import ArtifactOutput, TaskRun

PIPELINES_DIR = Path("pipelines")


def _report(bundle: Path, tasks: list[TaskRun]) -> None:
    # sys.stdout, not print: kfp.local leaves print() indented after a ParallelFor run.
    sys.stdout.write(f"dashboard bundle: {bundle}\nopen the dashboard: {bundle / 'dashboard.html'}\n")
    card = _output(tasks, "scorecard")
    verdict = _verdict(card.path) if card is not None else None
    if card is not None and verdict is not None:
        registered = _output(tasks, "registered_model")
        sys.stdout.write(
            f"scorecard: {card.path / 'scorecard.pdf'}: {verdict}\n"
            f"model {'registered: ' + str(registered.path) if registered is not None else 'not registered'}\n"
        )


def _output(tasks: list[TaskRun], name: str) -> ArtifactOutput | None:
    """The artifact ``name`` that a task of the run wrote, or None."""
    return next((task.artifact(name) for task in tasks if task.artifact(name) is not None), None)


def _verdict(card: Path) -> str | None:
    """A scorecard folder's verdict, as the scorecard states it."""
    if not (card / "scorecard.json").is_file():
        return None
    result = json.loads((card / "scorecard.json").read_text())
    return (
        "PASSED" if result["passed"] else f"NOT PASSED ({result['n_missed']} of {result['n_targets']} targets missed)"
    )


def _count(value: float) -> str:
    """A count from an artifact's metadata (KFP keeps its numbers as floats)."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _key_figure(task: TaskRun) -> str:
    """What a task found, in a few words, from its outputs' metadata (the steps put it there)."""
    meta = {name: value.metadata for name, value in task.outputs.items() if hasattr(value, "metadata")}
    if "n_test" in meta.get("insights", {}):
        kind = str(meta["insights"].get("task_type", "")).replace("_", " ")
        return f"{_count(meta['insights']['n_test'])} test rows, {kind}"
    if "leaves" in meta.get("error_analysis", {}):
        return f"{_count(meta['error_analysis']['leaves'])} leaves in the error tree"
    if "method" in meta.get("explanation", {}):
        explained = meta["explanation"]
        return f"{explained['method']} explanations of {_count(explained.get('rows', 0))} rows"
    if "valid" in meta.get("counterfactuals", {}):
        found = meta["counterfactuals"]
        return f"{_count(found['valid'])} valid counterfactuals for {_count(found.get('rows', 0))} rows"
    if "treatments" in meta.get("causal", {}):
        causal = meta["causal"]
        return f"effects of {', '.join(causal['treatments'])} ({_count(causal.get('fit_rows', 0))} train rows)"
    if "insights" in meta.get("dashboard", {}):
        return f"dashboard with {', '.join(meta['dashboard']['insights']) or 'the overview only'}"
    card = task.artifact("scorecard")
    if card is not None:
        return _verdict(card.path) or ("PASSED" if card.metadata.get("passed") else "NOT PASSED")
    if "registered_model" in meta:
        return "model registered"
    if "baseline" in meta:
        earlier = meta["baseline"].get("audit")
        return f"earlier audit: {earlier}" if earlier else "no earlier audit to compare with"
    value = task.outputs.get("Output")
    if task.name == "fingerprint-inputs" and isinstance(value, str):
        return f"inputs sha256 {value[:12]}..."
    if task.name == "publish" and isinstance(value, str):
        return f"archived: {value}"
    return ""


def _took(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {round(seconds % 60):02d} s"


class _TaskDisplay:
    """What `rai-audit run` and `demo` show while the audit runs: a line as each task starts and
    one as it ends (its time and key figure); on a terminal, a live display of the running tasks
    (rich) stands for the start lines. Told by ``run_audit_locally`` from the tasks' threads."""

    STYLES = {"started": "dim", "done": "green", "reused": "cyan", "failed": "bold red"}

    def __init__(self, stream: TextIO, *, verbose: bool) -> None:
        self.stream, self.verbose = stream, verbose
        self.tasks: list[TaskRun] = []
        self.lock = threading.Lock()
        self.console: Console | None = None  # on a terminal
        self.live: Progress | None = None  # its progress display (not with --verbose: the log scrolls by)
        self.rows: dict[int, TaskID] = {}  # a running task's row in it
        self.overall: TaskID | None = None  # its first row: how many tasks are done

    def __enter__(self) -> _TaskDisplay:
        if getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console

            self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
            if not self.verbose:
                from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

                self.live = live = Progress(
                    SpinnerColumn(),
                    TextColumn("{task.description}"),
                    TimeElapsedColumn(),
                    console=self.console,
                    transient=True,
                    redirect_stdout=False,  # the run sends stdout to its log
                    redirect_stderr=True,  # a warning prints above the display
                )
                live.start()
                self.overall = live.add_task("audit: 0 tasks done")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def task_started(self, task: TaskRun) -> None:
        with self.lock:
            self.tasks.append(task)
            if self.live is not None:
                self.rows[id(task)] = self.live.add_task(f"  {task.label}")
            else:
                self._task_line("started", task)

    def task_ended(self, task: TaskRun) -> None:
        with self.lock:
            if self.live is not None and self.overall is not None:
                self.live.remove_task(self.rows.pop(id(task)))
                ended = sum(t.state != "running" for t in self.tasks)
                self.live.update(self.overall, description=f"audit: {ended} task{'s' * (ended != 1)} done")
            self._task_line(task.state, task, _key_figure(task))

    def _task_line(self, state: str, task: TaskRun, figure: str = "") -> None:
        word = "FAILED" if state == "failed" else state
        took = _took(task.seconds) if state in ("done", "failed") else ""
        line = f"{word:>7}  {task.label:<24} {took:>8}  {figure}".rstrip()
        if self.console is None:
            self.say(line)
            return
        from rich.text import Text

        text = Text(line)
        text.stylize(self.STYLES.get(state, ""), 0, 7)
        self.console.print(text)

    def say(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def tail(self, task: TaskRun) -> None:
        """A failed task's last log lines."""
        lines = task.tail()
        if not lines:
            self.say(f"{task.label} printed nothing")
            return
        self.say(f"the last {len(lines)} lines of {task.label}'s log:")
        for line in lines:
            self.say(f"  | {line}")


def _run_locally(
    arguments: dict[str, Any], output: Path, *, verbose: bool, **options: Any
) -> tuple[Path, list[TaskRun]]:
    """Run the audit with kfp.local, its tasks shown as they start and end; the bundle's folder
    and the tasks. kfp.local's full log goes to a file in ``output`` (and to stdout with ``verbose``);
    a failed task's last lines are shown before its error (raised)."""
    from rai_audit.core import RAIInputError
    from rai_audit.local_run import LOG_FILE, TaskFailed, run_audit_locally

    display = _TaskDisplay(sys.stdout, verbose=verbose)
    try:
        with display:
            bundle = run_audit_locally(
                arguments, output, progress=display, echo=sys.stdout if verbose else None, **options
            )
    except RAIInputError as err:
        if isinstance(err, TaskFailed) and not verbose:
            display.tail(err.task)
        if (output / LOG_FILE).is_file():
            display.say(f"full log: {output / LOG_FILE}")
        raise
    return bundle, display.tasks


def _folder(path: str | Path, option: str) -> Path:
    """A folder option (new or existing): refused in one line when a file is in the way."""
    from rai_audit.core import RAIInputError

    path = Path(path)
    for place in (path, *path.parents):
        if place.exists() and not place.is_dir():
            raise RAIInputError(
                f"{option} {path}: {place} is a file, not a folder; give a folder (it is created if it does not exist)"
            )
        if place.exists():
            break
    return path


def _file(path: str | Path, option: str) -> Path:
    """A file option to write: refused in one line when it is a folder or under a file."""
    from rai_audit.core import RAIInputError

    path = Path(path)
    if path.is_dir():
        raise RAIInputError(f"{option} {path} is a folder; give the file to write")
    _folder(path.parent, option)
    return path


def _cmd_run(args: argparse.Namespace) -> None:
    from rai_audit.config import load_config
    from rai_audit.local_run import LOG_FILE
    from rai_audit.storage import local_inputs

    output = _folder(args.output, "--output")
    arguments, build = load_config(args.config)
    arguments = local_inputs(arguments, output / "inputs", ("model_uri", "train_data_uri", "test_data_uri"))
    bundle, tasks = _run_locally(
        arguments, output, verbose=args.verbose, enable_caching=args.cache, parallel_tasks=args.parallel_tasks, **build
    )
    _report(bundle, tasks)
    sys.stdout.write(f"full log: {output / LOG_FILE}\n")


def _cmd_demo(args: argparse.Namespace) -> None:
    from rai_audit.config import resolve_config
    from rai_audit.demo import prepare_demo
    from rai_audit.local_run import LOG_FILE
    from rai_audit.storage import ENV_ACCESS, ENV_ENDPOINT, ENV_SECRET, storage_down, storage_up

    output = _folder(args.output, "--output")
    config = prepare_demo(output / "inputs")
    config.pop("name")
    print(f"demo model and data (UCI Adult) written to {output / 'inputs'}")
    arguments, build = resolve_config(config, base_dir=output)
    # The audit is archived in a local SeaweedFS server, started for the run and stopped
    # after it; its data stays in <output>/storage for `rai-audit storage up --dir`.
    settings = storage_up(output / "storage")
    saved = {k: os.environ.get(k) for k in (ENV_ENDPOINT, ENV_ACCESS, ENV_SECRET)}
    os.environ.update(
        {ENV_ENDPOINT: settings.endpoint, ENV_ACCESS: settings.access_key, ENV_SECRET: settings.secret_key}
    )
    try:
        bundle, tasks = _run_locally(
            arguments, output, verbose=args.verbose, parallel_tasks=args.parallel_tasks, **build
        )
    finally:
        storage_down(output / "storage")
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    _report(bundle, tasks)
    uri = next((task.outputs.get("Output") for task in tasks if task.name == "publish"), None)
    if uri:
        sys.stdout.write(
            f"archived: {uri} (storage data in {output / 'storage'}; "
            f"`rai-audit storage up --dir {output / 'storage'}` serves it again)\n"
        )
    sys.stdout.write(f"full log: {output / LOG_FILE}\n")


def _cmd_compile(args: argparse.Namespace) -> None:
    from rai_audit.core import RAIInputError
    from rai_audit.specs import PIPELINE_OPTIONS

    if args.pipeline not in PIPELINE_OPTIONS:
        raise RAIInputError(f"--pipeline must be one of {list(PIPELINE_OPTIONS)}, got {args.pipeline!r}")
    if args.target == "argo":  # no Kubeflow needed
        from rai_audit.argo import write_argo

        folder = _folder(args.output or "argo", "--output")
        written = write_argo(
            folder,
            PIPELINE_OPTIONS[args.pipeline]["steps"],
            registry=args.image_registry,
            tag=args.image_tag,
            schedule=args.schedule,
            bucket=args.bucket,
            endpoint=args.s3_endpoint,
            s3_secret=args.s3_secret,
            notify=args.notify,
            model_image=args.model_image,
        )
        print(f"pipeline {args.pipeline!r} compiled for Argo Workflows: {', '.join(map(str, written))}")
        return
    from kfp import compiler

    from rai_audit.pipelines import build_audit_pipeline, pipeline

    output = _file(args.output or PIPELINES_DIR / f"{args.pipeline}_pipeline.yaml", "--output")
    output.parent.mkdir(parents=True, exist_ok=True)
    built = pipeline(args.pipeline)
    if args.pipeline_root or args.image_registry or args.image_tag or args.model_image:
        try:
            built = build_audit_pipeline(
                **PIPELINE_OPTIONS[args.pipeline],
                pipeline_root=args.pipeline_root,
                registry=args.image_registry,
                tag=args.image_tag,
                model_image=args.model_image,
            )
        except ValueError as err:
            raise RAIInputError(str(err)) from err
    compiler.Compiler().compile(built, str(output))
    print(f"pipeline {args.pipeline!r} compiled to {output}")


def _cmd_schedule(args: argparse.Namespace) -> None:
    from rai_audit.config import load_config
    from rai_audit.core import RAIInputError
    from rai_audit.schedule import Schedule, schedule_audit

    arguments, _ = load_config(args.config)
    local = [k for k in ("model_uri", "train_data_uri", "test_data_uri") if "://" not in arguments[k]]
    if local:
        raise RAIInputError(
            f"a run on a cluster cannot read local files: give {[k[:-4] for k in local]} "
            "as s3://, minio:// or gs:// URIs in the config"
        )
    plan = Schedule(
        name=args.name,
        cron=args.cron,
        interval_seconds=args.interval,
        max_concurrency=args.max_concurrency,
        catch_up=args.catch_up,
        start_time=args.start_time,
        end_time=args.end_time,
        description=args.description,
    )
    done = schedule_audit(
        args.pipeline,
        arguments,
        plan,
        host=args.host,
        experiment=args.experiment,
        namespace=args.namespace,
        dry_run=args.dry_run,
    )
    if args.dry_run:
        sys.stdout.write(f"{done['method']} {done['url']}\n{json.dumps(done['body'], indent=2, sort_keys=True)}\n")
    else:
        sys.stdout.write(
            f"recurring run {done['name']!r} created: {done['recurring_run_id']} (experiment {done['experiment_id']})\n"
        )


DEFAULT_STORAGE_DIR = ".rai-audit-storage"


def _cmd_storage(args: argparse.Namespace) -> None:
    from rai_audit.storage import CREDENTIALS_FILE, storage_down, storage_up

    folder = _folder(args.dir, "--dir")
    if args.action == "up":
        settings = storage_up(folder)
        # The credentials stay in their file (mode 0600); only where to find them is printed.
        print(
            f"SeaweedFS S3 server on {settings.endpoint} (data in {folder / 'data'})\n"
            f"to use it: source {folder / CREDENTIALS_FILE}"
        )
    else:
        print("stopped" if storage_down(folder) else "no server was running")


def _cmd_publish(args: argparse.Namespace) -> None:
    from rai_audit.archive import publish_audit
    from rai_audit.storage import check_bucket_name, settings_from_env

    check_bucket_name(args.bucket)
    prefix = publish_audit(
        settings_from_env(),
        args.bucket,
        bundle_dir=args.bundle,
        scorecard_dir=args.scorecard,
        model_name=args.model_name,
        model_version=args.model_version,
        pipeline_run=args.pipeline_run,
        retention_mode=args.retention_mode,
        retention_days=args.retention_days,
    )
    print(f"published s3://{args.bucket}/{prefix}")


VERDICTS = {True: "PASSED", False: "NOT PASSED", None: "no scorecard"}


def _cmd_audits(args: argparse.Namespace) -> None:
    from rai_audit import archive
    from rai_audit.core import ArtifactIntegrityError
    from rai_audit.storage import check_bucket_name, settings_from_env

    check_bucket_name(args.bucket)
    if args.action == "fetch":
        _folder(args.to, "--to")
    settings = settings_from_env()
    if args.action == "list":
        passed = {"passed": True, "failed": False, None: None}[args.verdict]
        listed = archive.list_audits(
            settings,
            args.bucket,
            model=args.model,
            version=args.version,
            since=args.since,
            passed=passed,
            verify=args.verify,
        )
        if args.json:  # for other tools: every field, one JSON document
            print(json.dumps({"bucket": args.bucket, "audits": listed}, indent=2, sort_keys=True, default=str))
        for a in [] if args.json else listed:
            if a["verified"] is False:  # never shown as PASSED, whatever its manifest claims
                verdict = f"FAILED VERIFICATION: {a['problem']}"
            else:
                verdict = VERDICTS[a["passed"]] + ("" if a["verified"] else " (not verified)")
            print(f"{a['audit']}  {a['published_at'] or '?'}  {verdict}  ({a['files']} files)")
        failed = [a for a in listed if a["verified"] is False]
        if failed:
            raise ArtifactIntegrityError(
                f"{len(failed)} of {len(listed)} audits failed verification (marked above); do not rely on them"
            )
    elif args.action == "fetch":
        print(f"fetched and verified: {archive.fetch_audit(settings, args.bucket, args.audit, args.to)}")
    elif args.action == "verify":
        manifest = archive.verify_audit(settings, args.bucket, args.audit)
        print(
            f"verified: {len(manifest['files'])} files of run {manifest['run_id']} match their sha256 "
            "and the manifest's run id, model and verdict"
        )
    elif args.action == "diff":
        _print_diff(archive.diff_audits(settings, args.bucket, args.audit, args.other))
    else:
        print(archive.link_audit(settings, args.bucket, args.audit, hours=args.hours))


def _archive_settings(args: argparse.Namespace):
    """The credentials `archive serve` uses: a local server's read-only ones when --storage-dir
    names one (the default folder, if it exists), else the environment's."""
    from rai_audit.core import RAIInputError
    from rai_audit.storage import READ_ONLY_CREDENTIALS_FILE, _read_env, settings_from_env

    folder = Path(args.storage_dir) if args.storage_dir else Path(DEFAULT_STORAGE_DIR)
    reader = folder / READ_ONLY_CREDENTIALS_FILE
    if args.storage_dir and not reader.is_file():
        raise RAIInputError(f"--storage-dir {folder}: no {READ_ONLY_CREDENTIALS_FILE} there (`rai-audit storage up`)")
    if reader.is_file() and not args.write_credentials:
        return settings_from_env(_read_env(reader)), f"read-only credentials of {reader}"
    return settings_from_env(), "the credentials in the environment"


def _cmd_archive(args: argparse.Namespace) -> None:
    from rai_audit import archive
    from rai_audit.storage import check_bucket_name, settings_from_env

    check_bucket_name(args.bucket)
    if args.action == "reindex":
        done = archive.rebuild_index(settings_from_env(), args.bucket)
        print(
            f"index s3://{args.bucket}/{archive.INDEX_KEY}: {done['count']} audits "
            f"({'was missing; ' if done['was_missing'] else ''}{len(done['added'])} added, "
            f"{len(done['dropped'])} dropped, {len(done['changed'])} changed)"
        )
        for bad in done["unreadable"]:
            print(f"  not indexed: {bad['audit']}: {bad['problem']}")
        return
    from rai_audit.live.archive_app import start_archive

    settings, which = _archive_settings(args)
    running = start_archive(settings, args.bucket, host=args.host, port=args.port, allow_remote=args.allow_remote)
    print(f"serving the archive s3://{args.bucket} at {settings.endpoint} with {which}")
    print(f"open: {running.url}")
    print("the token in the URL lets anyone who has it read the archive: do not share it")
    if not args.no_browser:
        import webbrowser

        webbrowser.open(running.url)
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        while running.thread.is_alive():
            running.thread.join(timeout=0.5)
    except KeyboardInterrupt:
        running.stop()
    print("stopped")


def _cmd_dashboard(args: argparse.Namespace) -> None:
    from rai_audit.dashboard import serve

    serve(
        args.bundle,
        host=args.host,
        port=args.port,
        allow_remote=args.allow_remote,
        open_browser=not args.no_browser,
        block=True,
    )


def _print_diff(changes: dict) -> None:
    before, after = changes["before"], changes["after"]
    print(f"{before['audit']} ({VERDICTS[before['passed']]}) -> {after['audit']} ({VERDICTS[after['passed']]})")
    for name, c in changes["metrics"].items():
        print(f"  {name}: {_num(c['before'])} -> {_num(c['after'])} ({_num(c['change'], signed=True)})")
    for f in changes["fairness"]:
        if f["change"]:
            print(f"  {f['metric']} {f['kind']} across {f['features']}: {_num(f['before'])} -> {_num(f['after'])}")
    for key, how in (("removed", "no longer measured in the later audit"), ("added", "new in the later audit")):
        for features in changes.get("fairness_features", {}).get(key, []):
            print(f"  fairness across {features}: {how}")
    targets = changes["targets"]
    for t in targets:
        if t["status"] == "removed":
            print(
                f"  target REMOVED {t['target']}: was {_num(t['before'])}, {t['verdict_before']}; "
                "not judged in the later audit"
            )
        elif t["status"] == "added":
            print(f"  target ADDED {t['target']}: {_num(t['after'])}, {t['verdict_after']}")
        else:
            definition = (
                f" (definition changed: {t['definition_before']} -> {t['definition_after']})"
                if t["definition_changed"]
                else ""
            )
            name = t["what"] if t["definition_changed"] else t["target"]
            print(
                f"  target {name}: {_num(t['before'])} -> {_num(t['after'])}, "
                f"{t['verdict_before']} -> {t['verdict_after']}{definition}"
            )
    if not before["scorecard"] or not after["scorecard"]:
        which = " and ".join(side for side, d in (("the earlier", before), ("the later", after)) if not d["scorecard"])
        print(f"  {which} audit has no scorecard: its targets are not known")
    dropped = [t for t in targets if t["status"] == "removed" and t["verdict_before"] == "FAIL"]
    if dropped:
        print(
            f"warning: {len(dropped)} target(s) that FAILED in the earlier audit are gone from the later one: "
            + "; ".join(t["target"] for t in dropped)
        )


def _num(value, *, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


STEP_COMMANDS = {
    "constructor": "rai_audit.steps.constructor",
    "error_analysis": "rai_audit.steps.error_analysis",
    "explainer": "rai_audit.steps.explainer",
    "counterfactual": "rai_audit.steps.counterfactual",
    "causal": "rai_audit.steps.causal",
    "scorecard": "rai_audit.steps.scorecard",
    "gather": "rai_audit.steps.gather",
    "notify": "rai_audit.steps.notify",
}


VERBOSE_HELP = "show kfp.local's full log as the run goes (it is always written to a log file in --output)"
PARALLEL_HELP = (
    "run up to N tasks at once, each as soon as the tasks it needs have ended, as a cluster does; "
    "'auto': one per core, at most 4 (the analyses); default 1: one task at a time, as kfp.local "
    "runs them. Each running task holds its own memory and sizes its thread pools to its share "
    "of the cores, unless OMP_NUM_THREADS and the like are set"
)


def _task_count(text: str) -> int:
    """--parallel-tasks: 'auto' or a whole number >= 1, refused in one line otherwise."""
    from rai_audit.local_run import auto_parallel_tasks

    if text == "auto":
        return auto_parallel_tasks()
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a whole number >= 1, got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rai-audit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the audit pipeline locally (kfp.local) from a YAML/JSON config")
    run.add_argument("config", help="audit config file")
    run.add_argument("--output", default="rai-audit-output", help="folder for the run's artifacts")
    run.add_argument(
        "--cache",
        action="store_true",
        help="reuse the constructor and analyses of an earlier run in --output on the same "
        "model, data and parameters (kfp.local's cache); re-running a failed run "
        "recomputes only what failed",
    )
    run.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    run.add_argument("--parallel-tasks", type=_task_count, default=1, metavar="N", help=PARALLEL_HELP)
    run.set_defaults(func=_cmd_run)
    demo = sub.add_parser("demo", help="train a model on the shipped Adult data and audit it locally")
    demo.add_argument("--output", default="rai-audit-demo", help="folder for the demo's inputs and artifacts")
    demo.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    demo.add_argument("--parallel-tasks", type=_task_count, default=1, metavar="N", help=PARALLEL_HELP)
    demo.set_defaults(func=_cmd_demo)
    comp = sub.add_parser("compile", help="compile a pipeline to KFP IR YAML")
    comp.add_argument(
        "--pipeline",
        default="audit",
        help="audit (default), overview, or a flow: overview_error_analysis, overview_fairness, "
        "data_analysis_causal, interpretability_causal, error_analysis_counterfactuals",
    )
    comp.add_argument(
        "--target",
        choices=["kfp", "argo"],
        default="kfp",
        help="kfp: KFP IR YAML; argo: an Argo WorkflowTemplate and CronWorkflow (no Kubeflow)",
    )
    comp.add_argument(
        "--output", default=None, help="default: pipelines/<pipeline>_pipeline.yaml; for argo a folder (default argo/)"
    )
    comp.add_argument("--schedule", default="0 3 * * *", help="argo: the CronWorkflow's cron (5 fields)")
    comp.add_argument("--bucket", default="rai-audit", help="argo: the S3 bucket of the artifacts")
    comp.add_argument(
        "--s3-endpoint",
        default="http://minio.argo.svc.cluster.local:9000",
        help="argo: the S3 endpoint the workflow's artifacts go to",
    )
    comp.add_argument(
        "--s3-secret",
        default="rai-audit-s3",
        help="argo: the Kubernetes secret holding that store's access_key and secret_key",
    )
    comp.add_argument(
        "--notify",
        action="store_true",
        help="argo: an exit handler posts the run's verdict to the webhook of the Kubernetes secret "
        "rai-audit-webhook (key url) when the scorecard failed (notify_* parameters)",
    )
    comp.add_argument(
        "--pipeline-root",
        default=None,
        help="where a cluster keeps the artifacts, e.g. s3://bucket/pipeline-root (MinIO/SeaweedFS)",
    )
    comp.add_argument(
        "--image-registry",
        default=None,
        help="registry of the step images, e.g. ghcr.io/acme/rai-audit (default: "
        "$RAI_AUDIT_IMAGE_REGISTRY or rai-audit)",
    )
    comp.add_argument(
        "--image-tag",
        default=None,
        help="tag of the step images (default: $RAI_AUDIT_IMAGE_TAG or the package version)",
    )
    comp.add_argument(
        "--model-image",
        default=None,
        help="image of the steps that call the model (constructor, explainer, counterfactual), for a model "
        "whose library the step images lack; build it FROM a step image (images/README.md)",
    )
    comp.set_defaults(func=_cmd_compile)
    sched = sub.add_parser("schedule", help="create a recurring audit on a Kubeflow Pipelines cluster")
    sched.add_argument("config", help="the audit config (as for `run`), model and data as s3:// URIs")
    sched.add_argument(
        "--pipeline",
        default=str(PIPELINES_DIR / "audit_pipeline.yaml"),
        help="the compiled pipeline (default: pipelines/audit_pipeline.yaml)",
    )
    sched.add_argument("--host", default=None, help="the KFP API endpoint, e.g. http://localhost:8888")
    sched.add_argument("--namespace", default=None, help="the Kubeflow profile namespace (multi-user clusters)")
    sched.add_argument("--experiment", default="rai-audit", help="experiment to file the runs under")
    sched.add_argument("--name", default="rai-audit recurring audit", help="the recurring run's name")
    sched.add_argument("--description", default=None)
    when = sched.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", default=None, help="KFP's 6-field cron, seconds first, e.g. '0 0 3 * * *'")
    when.add_argument("--interval", type=int, default=None, help="seconds between runs")
    sched.add_argument("--max-concurrency", type=int, default=1)
    sched.add_argument("--catch-up", action="store_true", help="run the intervals missed while paused")
    sched.add_argument("--start-time", default=None, help="RFC 3339, e.g. 2026-12-01T00:00:00Z")
    sched.add_argument("--end-time", default=None, help="RFC 3339")
    sched.add_argument("--dry-run", action="store_true", help="print the request instead of sending it")
    sched.set_defaults(func=_cmd_schedule)
    store = sub.add_parser("storage", help="start or stop the local SeaweedFS S3 server (127.0.0.1)")
    store.add_argument("action", choices=["up", "down"])
    store.add_argument("--dir", default=DEFAULT_STORAGE_DIR, help="its data and credentials folder")
    store.set_defaults(func=_cmd_storage)
    pub = sub.add_parser("publish", help="archive a dashboard bundle (and scorecard) in object storage")
    pub.add_argument("--bundle", required=True, help="the gathered dashboard bundle folder")
    pub.add_argument("--scorecard", default=None, help="the scorecard folder")
    pub.add_argument("--model-name", required=True)
    pub.add_argument("--model-version", required=True)
    pub.add_argument("--pipeline-run", default=None)
    pub.add_argument("--bucket", default="rai-audit")
    pub.add_argument(
        "--retention-mode",
        choices=["governance", "compliance"],
        default=None,
        help="lock every object (S3 object lock; a new bucket is created with it)",
    )
    pub.add_argument("--retention-days", type=int, default=None)
    pub.set_defaults(func=_cmd_publish)
    audits = sub.add_parser(
        "audits", help="archived audits: list, fetch, verify, link, diff (read-only credentials do)"
    )
    audits.add_argument("action", choices=["list", "fetch", "verify", "link", "diff"])
    audits.add_argument("audit", nargs="?", help="an audit's prefix, as `list` prints it")
    audits.add_argument("other", nargs="?", help="diff: the later audit")
    audits.add_argument("--bucket", default="rai-audit")
    audits.add_argument("--model", default=None)
    audits.add_argument("--version", default=None)
    audits.add_argument("--since", default=None, help="ISO date/time, e.g. 2026-01-01")
    audits.add_argument("--verdict", choices=["passed", "failed"], default=None)
    audits.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="list: check every audit's files against its manifest and the manifest's "
        "verdict against its scorecard (default); --no-verify lists faster, "
        "taking each manifest's word",
    )
    audits.add_argument("--to", default=None, help="fetch: a new folder to download into")
    audits.add_argument("--hours", type=float, default=24.0, help="link: hours the URL stays valid")
    audits.add_argument("--json", action="store_true", help="list: print the audits as JSON")
    audits.set_defaults(func=_cmd_audits)
    arch = sub.add_parser(
        "archive", help="the archive's pages for risk officers (serve), or rebuild its index (reindex)"
    )
    arch.add_argument("action", choices=["serve", "reindex"])
    arch.add_argument("--bucket", default="rai-audit")
    arch.add_argument(
        "--storage-dir",
        default=None,
        help=f"serve: a local storage folder whose read-only credentials to use (default {DEFAULT_STORAGE_DIR} "
        "if it exists, else the RAI_AUDIT_S3_* environment)",
    )
    arch.add_argument(
        "--write-credentials",
        action="store_true",
        help="serve: use the environment's credentials even when read-only ones are found (it never writes)",
    )
    arch.add_argument("--port", type=int, default=0, help="serve: port (default: any free port)")
    arch.add_argument("--host", default="127.0.0.1", help="serve: address (default 127.0.0.1: this machine only)")
    arch.add_argument("--allow-remote", action="store_true", help="serve: let --host be reachable from elsewhere")
    arch.add_argument("--no-browser", action="store_true", help="serve: do not open the browser")
    arch.set_defaults(func=_cmd_archive)
    dash = sub.add_parser(
        "dashboard", help="serve an audit bundle with its model: the dashboard with live what-if and full-data cohorts"
    )
    dash.add_argument(
        "bundle", help="a dashboard bundle folder, a fetched audit folder, or an archived audit's s3:// URI"
    )
    dash.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    dash.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    dash.add_argument(
        "--allow-remote",
        action="store_true",
        help="let --host be an address other machines reach (anyone with the URL's token can then use it)",
    )
    dash.add_argument("--no-browser", action="store_true", help="do not open the browser")
    dash.set_defaults(func=_cmd_dashboard)
    from rai_audit.azure import add_command as add_from_azure  # light: the specs and yaml

    add_from_azure(sub)  # rai-audit from-azure: an Azure ML pipeline job as an audit config
    for step in STEP_COMMANDS:
        sub.add_parser(step, help=f"run the {step} step alone (see `rai-audit {step} --help`)", add_help=False)
    return parser


def _interrupted(err: KeyboardInterrupt) -> int:
    """Ctrl-C or SIGTERM: one line, and the shell's exit code for the signal (130, 143)."""
    import signal

    signum = getattr(err, "signum", signal.SIGINT)
    how = "interrupted (Ctrl-C)" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    print(f"rai-audit: {how}; nothing more was done", file=sys.stderr)
    return 128 + signum


def _os_error(err: OSError) -> str:
    """A file system error a user caused (a path that is a file, not writable, ...), in one line."""
    where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
    return f"{where}: {err.strerror or err}" if where else str(err)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in STEP_COMMANDS:
            import importlib

            return importlib.import_module(STEP_COMMANDS[argv[0]]).main(argv[1:])
        parser = _parser()
        args = parser.parse_args(argv)
        if args.command == "audits" and args.action != "list" and not args.audit:
            parser.error(f"`audits {args.action}` needs an audit (its prefix, as `audits list` prints it)")
        if args.command == "audits" and args.action == "diff" and not args.other:
            parser.error("`audits diff` needs two audits: the earlier, then the later")
        if args.command == "audits" and args.action == "fetch" and not args.to:
            parser.error("`audits fetch` needs --to FOLDER")
        return run_cli(lambda: args.func(args))
    except KeyboardInterrupt as err:
        return _interrupted(err)
    except OSError as err:
        if err.filename is None:  # not a path the user gave: a bug to see in full
            raise
        print(f"rai-audit: error: {_os_error(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
