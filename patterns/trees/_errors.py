"""The errors a supervision tree raises: `TreeError` and its subclasses, all `PatternError`s.

A supervisor's actor raises them (they travel back through Ray), and the `Supervisor`
facade raises them again with its own name and the method in front, so a message reads
``"Supervisor 'shop': start_child refused: a child named 'cache' exists already"``.

Two of them keep a built-in base as well, so that code catching the built-in keeps
working and reads naturally: a name the tree does not know is a ``LookupError`` (as a
missing key is), and a name it has already is a ``ValueError`` (the request's value
clashes with the tree's state). They are still `PatternError`s: the tree's state, not
the argument's form, refuses them, and the argument was checked before it was sent.
"""

from __future__ import annotations

from patterns.errors import PatternError

__all__ = [
    "ChildStartError",
    "ChildStateError",
    "DuplicateChildError",
    "TreeError",
    "TreeFailedError",
    "UnknownChildError",
]


class TreeError(PatternError):
    """Base of the errors a supervision tree raises about its children or itself.

    Examples:
        >>> issubclass(UnknownChildError, TreeError), issubclass(TreeError, RuntimeError)
        (True, True)
    """


class UnknownChildError(TreeError, LookupError):
    """No child has that name (or path) now: never added, deleted, or a forgotten temporary.

    Examples:
        >>> isinstance(UnknownChildError("no child named 'db'"), LookupError)
        True
    """


class DuplicateChildError(TreeError, ValueError):
    """`Supervisor.start_child` got a spec whose name a child of the tree has already.

    Examples:
        >>> isinstance(DuplicateChildError("a child named 'db' exists already"), ValueError)
        True
    """


class ChildStateError(TreeError):
    """The child is not in the state the request needs.

    `Supervisor.child` and `Supervisor.call` need it running (a stopped child stays
    stopped until `Supervisor.restart_child`); ``restart_child`` and ``delete_child``
    need it stopped (`Supervisor.terminate_child` first).

    Examples:
        >>> issubclass(ChildStateError, TreeError)
        True
    """


class ChildStartError(TreeError):
    """A child could not be started: its constructor (or ``restore``) raised, or timed out.

    Raised by ``Supervisor(...)`` (the children started before it are stopped again and
    no tree is left behind), `Supervisor.start_child` (the child is not added) and
    `Supervisor.restart_child` (the child stays stopped).

    Examples:
        >>> issubclass(ChildStartError, TreeError)
        True
    """


class TreeFailedError(TreeError):
    """The supervisor is not running: it gave up (more than ``max_restarts`` restarts
    within ``within_s``), or it is stopping. The message gives its reason.

    A supervisor that gave up has stopped its children; a root that gave up stays
    ``"failed"`` until it is closed.

    Examples:
        >>> issubclass(TreeFailedError, TreeError)
        True
    """
