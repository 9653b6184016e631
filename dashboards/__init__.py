"""Reports: what people look at once trials have landed in the study storage.

``dashboards.serve`` starts optuna-dashboard on the storage; ``dashboards.report`` writes a
self-contained plotly HTML report with the paper-style ablation table (mean +- std over seeds, a
paired interval and a verdict word per arm x column, a forest plot of the differences), parameter
importance, learning curves and costs. The launcher's final table comes from the same code, through
``console_table``, the one entry point of this package that other layers use.
"""

from dashboards.exports import console_table

__all__ = ["console_table"]
