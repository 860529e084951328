"""Report: matplotlib figures and one self-contained HTML page per set of studies."""

from rotelab.report.page import build_report

__all__ = ["build_report"]
