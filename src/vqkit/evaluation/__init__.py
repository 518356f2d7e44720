"""Metrics and the ``evaluate`` step."""
