"""A benchmark request that cannot run, and the argument that makes it so.

:func:`.op_level.plan` and :func:`.user_level.plan_model` check a request in
full before anything runs. When they refuse one, the error says which of
their arguments to change, so that the command line can name its flag
(``argument --sizes: ...``, argparse's own form) instead of leaving the
reader to guess which flag a message is about.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["RequestError", "about"]


class RequestError(ValueError):
    """A request that cannot run.

    A ``ValueError``, so callers that catch that keep working.

    Attributes:
        argument: The keyword argument of the plan to change, e.g.
            ``"sizes"`` or ``"candidates"``.
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


@contextlib.contextmanager
def about(argument: str) -> Iterator[None]:
    """Turns a ``ValueError`` raised in the block into a :class:`RequestError` on ``argument``.

    Args:
        argument: The keyword argument the block checks.

    Yields:
        Nothing.

    Raises:
        RequestError: With the message of the ``ValueError`` the block
            raised; a ``RequestError`` passes through unchanged.
    """
    try:
        yield
    except RequestError:
        raise
    except ValueError as error:
        raise RequestError(argument, str(error)) from None
