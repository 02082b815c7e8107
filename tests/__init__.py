"""The ctrader-twisted test suite (run with ``python -m twisted.trial tests``)."""
