"""Shared helpers for the test suite."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.trial.unittest import SkipTest

ROOT = Path(__file__).resolve().parent.parent


def sharedDir() -> Path:
    """The ``shared/`` folder beside the checkout (or ``$CTRADER_TWISTED_SHARED``)."""
    return Path(os.environ.get("CTRADER_TWISTED_SHARED", ROOT.parent / "shared"))


#: What each folder of reference files holds, for skip messages.
REFERENCE_FILES = {
    "openapi-proto": "Spotware's .proto files of the Open API",
    "recorded": "payloads recorded from a real cTrader server",
}


def referenceDir(*parts: str) -> Path:
    """A folder under ``shared/reference``; skips the test when it is absent.

    The skip says what is missing and how to provide it, in words (no path
    of the machine the suite runs on).
    """
    path = sharedDir().joinpath("reference", *parts)
    if not path.exists():
        name = "/".join(parts)
        what = REFERENCE_FILES.get(parts[0] if parts else "", "reference files")
        raise SkipTest(
            f"needs the project's reference files ({what}), which are not part of a release or of a clone "
            f"of the repository: to run it, set CTRADER_TWISTED_SHARED to the folder that holds reference/{name}"
        )
    return path
