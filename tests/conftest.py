"""Shared fixtures: one thread for torch, one local Ray for the whole test session."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray started once; searches in tests reuse it instead of starting their own."""
    import ray

    from share_search.search import start_ray

    started = start_ray(None)
    yield
    if started:
        ray.shutdown()
