"""What the launcher needs from the installed Ray, checked before anything starts.

The project installs with any Ray in pyproject.toml's range; a few launcher features
exist only from some Ray on. Each gate here checks the feature itself (not only the
version string) and fails with the Ray version it needs, never by quietly doing less:
token authentication above all, where a silent fallback would be an open cluster.
"""

from __future__ import annotations

__all__ = [
    "TOKEN_AUTH_MIN_RAY",
    "UnsupportedRayError",
    "has_token_auth",
    "ray_version",
    "require_token_auth",
    "supports_include_log_monitor",
]

# ray._raylet.AuthenticationTokenLoader (token authentication: RAY_AUTH_MODE=token)
# first ships in Ray 2.52 (checked in the 2.40-2.60 wheels).
TOKEN_AUTH_MIN_RAY = (2, 52)
# `ray start --include-log-monitor` first ships in Ray 2.41.
INCLUDE_LOG_MONITOR_MIN_RAY = (2, 41)


class UnsupportedRayError(RuntimeError):
    """The installed Ray lacks a feature the requested launch needs."""


def ray_version() -> tuple[int, int]:
    """The installed Ray's (major, minor)."""
    import ray

    major, minor = ray.__version__.split(".")[:2]
    return int(major), int(minor)


def has_token_auth() -> bool:
    """Whether the installed Ray can do token authentication."""
    try:
        from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]  # noqa: F401
    except ImportError:
        return False
    return True


def require_token_auth() -> None:
    """Raise `UnsupportedRayError` unless the installed Ray can do token authentication.

    Raises:
        UnsupportedRayError: The Ray in use has no token authentication; the message
            names the Ray needed and the explicit way to launch without it.
    """
    if has_token_auth():
        return
    import ray

    need = ".".join(map(str, TOKEN_AUTH_MIN_RAY))
    msg = (
        f"auth='token' needs Ray >= {need} (token authentication), but Ray {ray.__version__} "
        f"is installed. Upgrade Ray (pip install 'ray[default]>={need}'), or launch an "
        "unauthenticated cluster deliberately with auth='disabled' (--auth disabled) "
        "on a network only trusted users reach."
    )
    raise UnsupportedRayError(msg)


def supports_include_log_monitor() -> bool:
    """Whether ``ray start`` takes ``--include-log-monitor`` (Ray >= 2.41)."""
    return ray_version() >= INCLUDE_LOG_MONITOR_MIN_RAY
