"""Benchmarks: `make bench` (python -m bench). They print figures next to a reference
measured in the same run and append them to bench/RESULTS.md; they never pass or fail."""
