"""The report of a run, built from its saved files: :mod:`~vqkit.reports.read` gathers them,
:mod:`~vqkit.reports.page` renders the HTML page (styles in ``report.css``)."""

from vqkit.reports.page import render, write_report
from vqkit.reports.read import ReportData, gather

__all__ = ["ReportData", "gather", "render", "write_report"]
