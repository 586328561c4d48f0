"""Benchmarks: ``python -m bench NAME [--quick]`` prints one JSON object per line."""
