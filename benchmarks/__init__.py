"""Benchmark scripts (bench_*.py) and the README's figure scripts (figures/); see docs/benchmarks.md."""
