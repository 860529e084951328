"""Report: matplotlib figures and one self-contained HTML page per set of studies
(``rotelab.report.page.build_report``; sections per study kind in ``*_section.py``)."""
