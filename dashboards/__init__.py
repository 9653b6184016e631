"""Reports: what people look at once trials have landed in the study storage.

``dashboards.serve`` starts optuna-dashboard on the storage; ``dashboards.report`` writes a
self-contained plotly HTML report with the paper-style ablation table (mean +- std over seeds,
significance against the baseline), parameter importance, learning curves and costs.
"""
