"""Counters that live in Ray actors, with exactly-once acknowledged increments.

`Counter` keeps one count in one actor. `ShardedCounter` spreads the
increments of many writers over ``n_shards`` actors and sums them on read, and can
batch increments on the client for very high rates.

Counters count things: values start at ``start >= 0`` and increments are ints
``n >= 0``. Because the value never goes down (except by ``reset()``), "the final
value equals the number of acknowledged increments" is something a test can check,
and a lost or doubled increment shows.

**Exactly-once.** Give a counter a checkpoint store and every increment whose call
returned is counted exactly once, even if the actor's process is killed and Ray
restarts it:

* each facade instance (and each copy of it unpickled in a task) draws a random
  client id and numbers its calls 1, 2, 3, ...; the actor remembers which
  ``(client, seq)`` it has applied (`patterns._requests.RequestLog`), so a call
  that arrives twice is applied once;
* the actor writes a checkpoint (value and that memory) before the call returns, so
  what was acknowledged is in the store;
* with a store the actor is created with ``max_restarts=-1`` and
  ``max_task_retries=3`` (override them in ``actor_options``), and its ``__init__``
  restores the newest checkpoint, so after a crash Ray brings it back by itself.

Without a store, calls carry no request ids (a restarted actor starts over, so there
is nothing to deduplicate against) and a counter costs what a bare Ray actor costs.

Calls in flight when the process dies are re-sent by Ray to the restarted actor: a
call that was applied and checkpointed before the crash is recognised and not applied
again (its reply is then the counter's current value); a call that was not is applied
now. Either way the caller sees one successful return and the count moves once. A
call that *raises* was not acknowledged: it may or may not have been counted. That is
the case of a call whose every attempt crashes the process (the store's ``save`` dies
on it, say): after ``max_task_retries`` retries it fails with
`patterns.errors.ActorLostError` naming the counter and the call, and the restarted
actor serves the next calls from its last checkpoint.

With ``checkpoint_every=N > 1`` a checkpoint is written every N applied changes, which
is cheaper, but up to N - 1 acknowledged increments since the last checkpoint are lost
if the process dies (never double-counted: the request memory is in the same
snapshot).

Both facades follow the library's conventions (``CONTRIBUTING.md``): ``close()`` stops
the actors they started (``with`` calls it), copies and attached facades release them,
``kill()`` is the crash simulation, and every call waits at most its ``timeout``.
"""

from patterns.counters._counter import Counter
from patterns.counters._sharded_counter import ShardedCounter

__all__ = ["Counter", "ShardedCounter"]
