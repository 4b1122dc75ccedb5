"""The engine, the only package that imports Ray: the Tune searcher over Optuna, the trainable, the phases of a run."""
