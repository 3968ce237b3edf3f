"""``make bench`` and the other measurements: run as modules, ``python -m benchmarks.run``."""
