"""Benchmarks: one script per question, ``python -m benchmarks.<name> [--quick]``."""
