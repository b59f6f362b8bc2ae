"""Benchmarks: figures and side-by-side ratios, never asserted in unit tests. `make bench` runs them."""
