"""Plots and reports built from a run's saved artifacts."""
