"""``python -m ctrader_twisted.cli``: the ``ctrader-twisted`` command."""

from . import main

main()
