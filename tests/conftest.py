"""Shared fixtures: one thread for torch, one local Ray for the whole test session."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray started once; searches in tests reuse it instead of starting their own."""
    import ray

    from share_search.engine.search import start_ray

    started = start_ray(None)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def small_run(ray_session, tmp_path_factory):
    """A finished tiny search (digits, 3 tasks, every family, 7 trials, 2 exported) whose run
    folder the report, dashboard and browser tests read; returns ``run_search``'s outcome."""
    from share_search.engine.runner import run_search
    from share_search.spec.model import parse_spec

    spec = parse_spec(
        {
            "name": "small",
            "seed": 3,
            "data": {"source": "digits", "max_samples": 500},
            "tasks": {"digit": None, "odd": None, "loop": {"metric": "f1"}},
            "backbone": {"name": "mlp", "options": {"widths": [32, 32, 16]}},
            "families": {"tree": {}, "cross_stitch": {}, "progressive": {}},
            "train": {"epochs": 2, "lr": 0.005, "batch_size": 32},
            "search": {"trials": 7, "concurrency": 2, "export_top": 2},
        }
    )
    return run_search(spec, out=tmp_path_factory.mktemp("small_run") / "small", show_progress=False)


@pytest.fixture(scope="session")
def dense_run(ray_session, tmp_path_factory):
    """``search_spaces/dense.yaml`` shortened (fewer pairs, one epoch, 5 trials: the two
    references and one per family), run once for the dense demo and dense report tests."""
    import yaml

    from share_search.engine.runner import run_search
    from share_search.spec.model import parse_spec

    from .runs import REPO

    raw = yaml.safe_load((REPO / "search_spaces" / "dense.yaml").read_text())
    raw["data"]["options"]["pairs"] = {"train": 96, "val": 32, "test": 32}
    raw["train"]["epochs"] = 1
    raw["search"].update(trials=5, concurrency=2, export_top=2)
    return run_search(parse_spec(raw), out=tmp_path_factory.mktemp("dense_run") / "dense", show_progress=False)
