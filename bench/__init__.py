"""Benchmarks: speed and latency as ratios against a reference in one run."""
