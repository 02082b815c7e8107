"""Shared helpers for the test suite."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.trial.unittest import SkipTest

ROOT = Path(__file__).resolve().parent.parent


def sharedDir() -> Path:
    """The ``shared/`` folder beside the checkout (or ``$CTRADER_TWISTED_SHARED``)."""
    return Path(os.environ.get("CTRADER_TWISTED_SHARED", ROOT.parent / "shared"))


def referenceDir(*parts: str) -> Path:
    """A folder under ``shared/reference``; skips the test when it is absent."""
    path = sharedDir().joinpath("reference", *parts)
    if not path.exists():
        raise SkipTest(f"{path} is not available (a fresh clone has no shared/)")
    return path
