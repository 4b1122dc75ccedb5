"""The search space: per family, its Optuna define-by-run sampling, plans, enumeration and size; the samplers."""
