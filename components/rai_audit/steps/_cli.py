"""Shared command-line plumbing for the step modules: user errors exit 2 with one clear line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from rai_audit.core import RAIInputError


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
