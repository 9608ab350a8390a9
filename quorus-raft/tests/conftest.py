"""Fixtures of the Raft core's tests: simulated clusters and single cores built from scratch."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from quorus.raft.core import InitialState, RaftConfig, RaftCore
from quorus.raft.membership import Configuration
from quorus.raft.sim.cluster import Cluster

ClusterFactory = Callable[..., Cluster]
CoreFactory = Callable[..., RaftCore]


@pytest.fixture
def make_cluster() -> ClusterFactory:
    """``make_cluster(n=3, seed=0, **Cluster options)``: voters ``n1..nN``, a clean network."""

    def make(n: int = 3, seed: int = 0, **kwargs: Any) -> Cluster:
        return Cluster([f"n{i}" for i in range(1, n + 1)], seed=seed, **kwargs)

    return make


@pytest.fixture
def make_core() -> CoreFactory:
    """``make_core(node, voters, **RaftConfig fields)``: a fresh core in a new cluster."""

    def make(node: str, voters: Iterable[str], learners: Iterable[str] = (),
             state: InitialState | None = None, **cfg: Any) -> RaftCore:
        boot = Configuration(frozenset(voters), frozenset(learners))
        return RaftCore(node, RaftConfig(**cfg), state or InitialState(bootstrap=boot), rng=7)

    return make
