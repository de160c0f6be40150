"""Throughput benchmarks: `python -m benchmarks.<name>`; results in benchmarks/RESULTS.md."""
