"""The search space: per family, its Optuna define-by-run sampling, enumeration and size
(``FamilySpace``); the trial plans built from them (``spaces``); the samplers."""

from ._base import FamilySpace

__all__ = ["FamilySpace"]
