"""Markdown reports of trained runs: config, training, evaluation, per-class accuracy, confusion matrices.

``xmic report RUN... --out report.md`` (:mod:`xmic.report.cli`), or from Python::

    from xmic.report import render_report, summarize_run
    render_report([summarize_run("runs/xmic-epic-noun-s0")], "report.md")
"""

from xmic.report.markdown import render_report
from xmic.report.predictions import ClassAccuracy, DatasetPredictions, predict_dataset, predict_run
from xmic.report.summary import RunSummary, summarize_run

__all__ = [
    "ClassAccuracy",
    "DatasetPredictions",
    "RunSummary",
    "predict_dataset",
    "predict_run",
    "render_report",
    "summarize_run",
]
