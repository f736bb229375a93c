"""Synthetic data generators (``pv simulate``)."""
