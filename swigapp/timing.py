"""Wall-clock timing of the participant steps, recorded in the QC JSON's ``Seconds``."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, ParamSpec

P = ParamSpec("P")


def timed(step: Callable[P, dict[str, Any]]) -> Callable[P, dict[str, Any]]:
    """Decorate a step that returns a dict (a result's record): its wall time in seconds
    goes into ``"seconds"`` where the step left none or 0 (a value it set is kept)."""

    @functools.wraps(step)
    def run(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        start = time.perf_counter()
        result = step(*args, **kwargs)
        if not result.get("seconds"):
            result["seconds"] = time.perf_counter() - start
        return result

    return run
