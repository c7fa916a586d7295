"""The contract cases of every public facade, one module per family.

Each module defines ``CASES``: a list of `ContractCase`, one per facade (or per facade
configuration worth checking). ``tests/test_contract.py`` runs
`patterns.testing.check_facade` on each. A new facade adds its case here; the contract
test fails while a public facade has none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ContractCase:
    """How to run the facade contract on one facade (see `patterns.testing.check_facade`).

    Attributes:
        id: The test id (``"Counter"``, ``"Counter-with-store"``).
        facade: The public class the case covers.
        make: Builds a new facade that starts its own actors (on the shared cluster).
        call: A cheap request/response call, ``call(facade, timeout)``.
        bad_arguments: ``(build, expected error type)`` pairs refused before any actor.
        poison: A call crashing its actor on every attempt (None if no user code runs).
        attach: Makes a facade for the same actors (None if the facade cannot attach).
        hang_timeout_s: The timeout of the call sent to stopped actors.
        needs_spark: The case needs the Ray-on-Spark cluster (a SparkSession).
    """

    id: str
    facade: type
    make: Callable[[], Any]
    call: Callable[[Any, float | None], Any]
    bad_arguments: Sequence[tuple[Callable[[], Any], type[Exception]]] = field(default=())
    poison: Callable[[Any, float | None], Any] | None = None
    attach: Callable[[Any], Any] | None = None
    hang_timeout_s: float = 1.0
    needs_spark: bool = False
