"""Grid trials queue the longest first: the estimate follows MACs, phases and epochs."""

import pytest
import torch

from share_search import grid_order
from share_search.arch import build_model
from share_search.arch._cost import count_macs
from share_search.grid_order import estimated_cost, longest_first
from share_search.problem import load_problem
from share_search.spaces import decode, grid_points
from share_search.spec import parse_spec


@pytest.fixture(scope="module")
def problem():
    return load_problem(
        parse_spec(
            {
                "name": "order",
                "data": {"source": "digits", "max_samples": 200},
                "tasks": {"digit": None, "odd": None, "loop": None},
                "backbone": {"name": "mlp", "options": {"widths": [32, 16, 8]}},
                "families": {"tree": {}, "progressive": {}},
                "train": {"epochs": [1, 3]},
                "search": {"sampler": "grid"},
            }
        )
    )


def macs_of(params, problem):
    plan = decode(params, problem)
    return count_macs(build_model(plan.arch, problem.backbone, problem.tasks), problem.backbone.input_shape)


def test_cost_is_macs_times_phases_times_epochs(problem):
    points = grid_points(problem)
    for p in points:
        phases = 3 if p["family"] == "progressive" else 1  # one column per task
        assert estimated_cost(p, problem) == macs_of(p, problem) * phases * p["train.epochs"]


def test_longest_first_sorts_by_cost_and_keeps_the_grid_order_on_ties(problem):
    points = grid_points(problem)
    ordered = longest_first(points, problem)
    assert sorted(map(repr, ordered)) == sorted(map(repr, points))  # the same points, once each
    costs = [estimated_cost(p, problem) for p in ordered]
    assert costs == sorted(costs, reverse=True)
    assert costs[0] > costs[-1]
    # the grid lists trees from the most shared (cheapest) on: the order really changes
    assert ordered != points and ordered[-1]["train.epochs"] == 1
    for cost in set(costs):  # equal costs stay in the grid's order
        tied = [p for p in ordered if estimated_cost(p, problem) == cost]
        assert tied == [p for p in points if estimated_cost(p, problem) == cost]


def test_pricing_leaves_the_driver_random_stream_alone(problem):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    longest_first(grid_points(problem)[:4], problem)
    assert torch.equal(torch.rand(3), expected)


def test_a_point_that_does_not_build_costs_nothing_and_keeps_its_place(problem, monkeypatch):
    points = grid_points(problem)[:3]

    def broken(*args, **kwargs):
        raise RuntimeError("cannot build")

    monkeypatch.setattr(grid_order, "build_model", broken)
    assert [estimated_cost(p, problem) for p in points] == [0.0, 0.0, 0.0]
    assert longest_first(points, problem) == points  # the trial itself then fails with its reason
