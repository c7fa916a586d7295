"""The workloads themselves, without any engine: sizes as labelled, examples that run."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from benchmarks import _workloads


def test_docstring_examples_run() -> None:
    result = doctest.testmod(_workloads, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("kind", ["numpy", "sklearn"])
def test_models_weigh_what_their_label_says(kind: str) -> None:
    model = _workloads.make_model(kind, 1)
    assert 0.75 < _workloads.pickled_mb(model) < 1.25


def test_online_stream_is_learnable() -> None:
    """The serial loop learns: later cycles choose the right action more often."""
    spec = _workloads.StreamSpec(cycles=30, features=2**10)
    stream = _workloads.make_stream(spec)
    model = _workloads.new_learner(spec, stream[0])
    hits = []
    for contexts, right in stream[1:]:
        hits.append(np.mean(_workloads.choose(model, contexts) == right))
        _workloads.learn(model, contexts, right)
    assert np.mean(hits[-10:]) > np.mean(hits[:10])


def test_sparse_rows_survive_the_dataframe_round_trip() -> None:
    spec = _workloads.StreamSpec(cycles=1, features=256)
    contexts, _ = _workloads.make_stream(spec)[0]
    rebuilt = _workloads.from_arrays(*_workloads.to_arrays(contexts), spec.features)
    assert (rebuilt != contexts).nnz == 0
