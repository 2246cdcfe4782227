"""Reliability tests: hostile input, faults, concurrency (issue 12)."""
