"""Synthetic data for the demo, tests and benchmarks (FAERS quarterly extracts with known injected
signals; CAR-T cohorts with follow-up)."""
