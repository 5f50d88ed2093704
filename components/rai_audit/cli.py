"""The ``rai-audit`` command: run audits locally, compile pipelines, and run single steps."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rai_audit.steps._cli import run_cli

PIPELINES_DIR = Path("pipelines")


def _report(bundle: Path) -> None:
    # sys.stdout, not print: kfp.local leaves print() indented after a ParallelFor run.
    sys.stdout.write(f"dashboard bundle: {bundle}\nopen the dashboard: {bundle / 'dashboard.html'}\n")
    run_dir = bundle.parents[1]  # kfp.local: <run>/<task>/<output>
    card = run_dir / "scorecard" / "scorecard"
    if (card / "scorecard.json").is_file():
        result = json.loads((card / "scorecard.json").read_text())
        verdict = "PASSED" if result["passed"] else f"NOT PASSED ({result['n_missed']} of {result['n_targets']} targets missed)"
        registered = run_dir / "register-model" / "registered_model"
        sys.stdout.write(f"scorecard: {card / 'scorecard.pdf'}: {verdict}\n"
                         f"model {'registered: ' + str(registered) if registered.is_dir() else 'not registered'}\n")


def _cmd_run(args: argparse.Namespace) -> None:
    from rai_audit.config import load_config
    from rai_audit.local_run import run_audit_locally

    arguments, build = load_config(args.config)
    _report(run_audit_locally(arguments, args.output, **build))


def _cmd_demo(args: argparse.Namespace) -> None:
    from rai_audit.config import resolve_config
    from rai_audit.demo import prepare_demo
    from rai_audit.local_run import run_audit_locally

    output = Path(args.output)
    config = prepare_demo(output / "inputs")
    config.pop("name")
    print(f"demo model and data (UCI Adult) written to {output / 'inputs'}")
    arguments, build = resolve_config(config, base_dir=output)
    _report(run_audit_locally(arguments, output, **build))


def _cmd_compile(args: argparse.Namespace) -> None:
    from kfp import compiler

    from rai_audit.pipelines import PIPELINES

    output = Path(args.output or PIPELINES_DIR / f"{args.pipeline}_pipeline.yaml")
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(PIPELINES[args.pipeline], str(output))
    print(f"pipeline {args.pipeline!r} compiled to {output}")


STEP_COMMANDS = {
    "constructor": "rai_audit.steps.constructor",
    "error_analysis": "rai_audit.steps.error_analysis",
    "explainer": "rai_audit.steps.explainer",
    "counterfactual": "rai_audit.steps.counterfactual",
    "causal": "rai_audit.steps.causal",
    "scorecard": "rai_audit.steps.scorecard",
    "gather": "rai_audit.steps.gather",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rai-audit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the audit pipeline locally (kfp.local) from a YAML/JSON config")
    run.add_argument("config", help="audit config file")
    run.add_argument("--output", default="rai-audit-output", help="folder for the run's artifacts")
    run.set_defaults(func=_cmd_run)
    demo = sub.add_parser("demo", help="train a model on the shipped Adult data and audit it locally")
    demo.add_argument("--output", default="rai-audit-demo", help="folder for the demo's inputs and artifacts")
    demo.set_defaults(func=_cmd_demo)
    comp = sub.add_parser("compile", help="compile a pipeline to KFP IR YAML")
    comp.add_argument("--pipeline", default="audit", choices=["audit", "overview"])
    comp.add_argument("--output", default=None, help="default: pipelines/<pipeline>_pipeline.yaml")
    comp.set_defaults(func=_cmd_compile)
    for step in STEP_COMMANDS:
        sub.add_parser(step, help=f"run the {step} step alone (see `rai-audit {step} --help`)",
                       add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in STEP_COMMANDS:
        import importlib

        return importlib.import_module(STEP_COMMANDS[argv[0]]).main(argv[1:])
    args = _parser().parse_args(argv)
    return run_cli(lambda: args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
