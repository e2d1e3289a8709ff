"""What every part of the platform reports with."""

from __future__ import annotations

import sys


class PlatformError(Exception):
    """A problem the operator can act on; printed without a traceback."""


def log(msg: str) -> None:
    print(f"[platform] {msg}", file=sys.stderr, flush=True)
