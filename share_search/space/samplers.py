"""The built-in Optuna samplers, each a factory ``(seed, trials) -> sampler``.

Found by name through ``registry.SAMPLERS``; a user adds one with
``registry.register_sampler``. ``grid`` is the random sampler: the search enqueues every
grid point itself, so the sampler never draws.
"""

from __future__ import annotations

import optuna


def tpe(seed: int, trials: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=min(10, max(2, trials // 3))
    )


def nsga2(seed: int, trials: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed)


def random(seed: int, trials: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


grid = random
