"""The reliability suite: hostile inputs, faults and the figures docs/RELIABILITY.md reports."""
