"""Benchmark suite for ctrader-twisted: ``python -m bench`` (see docs/benchmarks.rst)."""
