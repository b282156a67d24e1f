# Type stub of the compiled module _calls.pyx (keep the two in step: a test compares them).
from collections.abc import Callable, Iterable


class BoundCall:
    def __call__(self) -> None: ...


def run_calls(calls: Iterable[Callable[[], object]]) -> None: ...
