"""``python -m ctrader_twisted.simulator``: run the simulator in the foreground.

Prints where it listens and the credentials to use, then serves until
interrupted. Options: ``--help`` (the same as ``twistd ctrader-simulator``).
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python import usage

from .tap import Options, SimulatorService, describe


def run(reactor: Any, options: Options) -> Deferred[None]:
    """Start the simulator on *reactor*, print the summary, and wait until
    the reactor stops (the returned Deferred never fires on its own)."""
    service = SimulatorService(options, reactor)
    service.startService()
    certDir = None if options["certificate"] else options["cert-dir"]
    print(describe(service.simulator, service.listening, certDir))
    print(f"  (credentials also in {options['cert-dir']}/credentials.json; Ctrl-C stops)")
    sys.stdout.flush()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    return Deferred()


def main(argv: list[str] | None = None) -> None:
    """Parse *argv* (``sys.argv[1:]`` by default) and run until interrupted."""
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        print(f"{options}\nerror: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    from twisted.internet import task

    task.react(run, [options])


if __name__ == "__main__":
    main()
