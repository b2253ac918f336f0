"""Benchmarks of the whole pipeline (not tests): they print figures and never assert timings.

Run `python -m bench.run` (or `--quick`); see bench/README.md for what each figure means.
"""
