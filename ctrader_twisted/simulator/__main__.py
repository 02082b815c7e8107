"""``python -m ctrader_twisted.simulator`` (the ``ctrader-simulator`` script):
run the simulator in the foreground.

Prints where it listens and the credentials to use, then serves until
interrupted. It is ``ctrader-twisted simulator`` under its own name: the
same options (those of ``twistd ctrader-simulator``, in argparse style),
``--help``, ``--version`` (ctrader-twisted's) and one-line errors, such as
a port already in use.
"""

from __future__ import annotations

from typing import NoReturn

__all__ = ["main"]


def main(argv: list[str] | None = None) -> NoReturn:
    """Parse *argv* (``sys.argv[1:]`` by default) and run until interrupted.

    :raises SystemExit: always, with the exit status (2 for bad usage, 1 when
        the simulator cannot start, 0 after Ctrl-C).
    """
    from ..cli import simulatorMain

    simulatorMain(argv)


if __name__ == "__main__":
    main()
