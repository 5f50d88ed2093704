"""Shared command-line plumbing for the step modules: user errors exit 2 with one clear line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from rai_audit.core import RAIInputError
from rai_audit.specs import OPTIONS, options_from_parameters, step_options


def json_arg(text: str) -> Any:
    """argparse type for list/dict options given as JSON (e.g. '["sex", "race"]')."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"must be JSON, got {text!r}: {err}") from err


def bool_arg(text: str) -> bool:
    """argparse type for a switch that can also be given a value (an orchestrator's parameter)."""
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")
    return value in ("true", "1", "yes")


def run_cli(action: Callable[[], Any]) -> int:
    try:
        action()
    except RAIInputError as err:
        print(f"rai-audit: error: {err}", file=sys.stderr)
        return 2
    return 0


def add_options(parser: argparse.ArgumentParser, step: str) -> None:
    """The step's options as flags, from its spec (``rai_audit.specs``). Each takes the
    parameter form the KFP component and the Argo template pass too: JSON for lists and
    mappings, text for labels, ``true``/``false`` (or the bare flag) for a switch."""
    for o in step_options(step, "cli"):
        kind: dict[str, Any] = {"type": _PARSERS[o.parameter_type]}
        if o.parameter_type is bool:
            kind.update(nargs="?", const=True)
        if o.json_text:
            kind["type"] = str  # the JSON text itself; the spec reads it
        default = {"required": True} if o.required else {"default": o.parameter_default}
        # Azure ML's names too, as its components' command lines spell them (--filter_features).
        azure = [f"--{name}" for name in o.azure if f"--{name}" != o.flag]
        parser.add_argument(o.flag, *azure, dest=o.name, choices=o.choices, help=o.help, **kind, **default)


def options_from_args(step: str, args: dict[str, Any], **given: Any) -> Any:
    """The step's options instance from parsed flags (those of its options are taken out of
    ``args``) and the options ``given`` apart (the constructor's cohort file)."""
    values = {o.name: args.pop(o.name) for o in step_options(step, "cli") if o.name in args}
    return options_from_parameters(OPTIONS[step], values | given)


_PARSERS: dict[type, Callable[[str], Any]] = {
    bool: bool_arg,
    int: int,
    float: float,
    str: str,
    list: json_arg,
    dict: json_arg,
}


def sharded_parser(step: str, description: str, artifact: str, instead: str) -> argparse.ArgumentParser:
    """The command line of a step that runs in shards: its inputs and options, or ``--merge`` of
    its shards' folders into one artifact."""
    p = argparse.ArgumentParser(prog=f"rai-audit {step}", description=description)
    p.add_argument("--constructor", required=True, help="the constructor's insights artifact folder")
    p.add_argument("--output", required=True, help=f"{artifact} artifact folder to create")
    p.add_argument(
        "--merge", nargs="+", default=None, metavar="SHARD", help=f"merge these {artifact} shards instead of {instead}"
    )
    add_options(p, step)
    return p


def run_sharded_cli(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    step: str,
    run: Callable[..., Any],
    merge: Callable[..., Any],
    report: Callable[[str, Any], str],
) -> int:
    """Run a sharded step (or merge its shards, with ``--merge``) and print ``report``'s line."""
    args = vars(parser.parse_args(argv))

    def action() -> None:
        options = options_from_args(step, args)
        constructor, output, shards = args.pop("constructor"), args.pop("output"), args.pop("merge")
        result = merge(constructor, shards, output) if shards else run(constructor, output, options=options)
        print(report(output, result))

    return run_cli(action)
