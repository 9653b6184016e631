"""The search service: plan -> search space -> trials.

An ablation *plan* (which part of the model is varied, its arms, the seeds) becomes an Optuna study
whose grid cells are arm x seed; Ray places the trials on workers, and each worker runs one Optuna
trial of the objective in ``objectives`` against the shared study storage from ``storage``.
"""
