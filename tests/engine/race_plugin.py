"""A sampler for the confirmation-race tests (``search.sampler: race_replay``): every searched
trial copies the hard-sharing reference's architecture, and takes its learning rate from
``LEARNING_RATES`` in turn. With ``train.lr: [0.01, 0.01, 1e-6]``-style choices this makes a
twin of the reference (the same values and seeds give the same results: tied by
construction) and one with a useless learning rate (clearly worse)."""

from __future__ import annotations

import optuna

from share_search.spec.registry import register_sampler

LEARNING_RATES = (0.01, 1e-6)


class ReplayHardSharing(optuna.samplers.BaseSampler):
    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        trials = study.get_trials(deepcopy=False)
        if param_name == "train.lr":
            searched = [t for t in trials if t.number < trial.number and not t.user_attrs.get("role") and "race" not in t.user_attrs]
            return LEARNING_RATES[len(searched) % len(LEARNING_RATES)]
        reference = next(t for t in trials if t.user_attrs.get("role") == "hard_sharing")
        return reference.params[param_name]


@register_sampler("race_replay")
def race_replay(seed: int, trials: int) -> optuna.samplers.BaseSampler:
    return ReplayHardSharing()
