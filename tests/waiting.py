"""The one way a test waits for something to happen: poll a condition until it holds, or fail saying what
did not happen. A fixed sleep stands only where the time itself is what is tested (an outage's length,
a window in which nothing may happen), with a comment saying so."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float, message: str | Callable[[], str], interval: float = 0.2
) -> T:
    """Calls `condition` every `interval` seconds until it returns something truthy, and returns that; after
    `timeout` seconds fails the test with `message` (a callable is called then, to say what it saw)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message() if callable(message) else message} (waited {timeout:.0f} s)")
        time.sleep(interval)
    return value
