"""share-search: search how tasks should share a network.

Sample sharing architectures (branching trees, cross-stitch, progressive networks) with
Optuna, train them as parallel Ray Tune trials, rank them per task, export the winners.
"""

__version__ = "0.1.0"
