"""The check every family's space must pass: enumeration lists each architecture once,
its size says how many, and decode(to_params(config)) gives the config back."""


def assert_decode_inverts_to_params(space, names, n_stages, options):
    configs = space.enumerate(names, n_stages, options)
    assert len(set(configs)) == len(configs) == space.space_size(names, n_stages, options)
    for cfg in configs:
        params = space.to_params(cfg, names, n_stages, options)
        assert all(k.startswith(space.name + ".") for k in params)
        assert space.decode(params, names, n_stages, options) == cfg


def sample_randomly(space, names, n_stages, options, trials=60):
    """Sample ``trials`` configs with Optuna's random sampler; every parameter name must keep one
    distribution (Optuna's samplers require it). Returns (configs seen, distributions by name)."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen, distributions = [], {}
    for _ in range(trials):
        trial = study.ask()
        seen.append(space.sample(trial, names, n_stages, options))
        for name, dist in trial.distributions.items():
            assert distributions.setdefault(name, dist) == dist, name
        study.tell(trial, 0.0)
    return seen, distributions
