"""A fault scenario that also keeps what each model call sent (the simulator's view, not the client's)."""

from __future__ import annotations

from pydantic import PrivateAttr

from annotator.simulator.behaviours import Fault, RequestInfo
from annotator.simulator.scenarios import Scenario


class Recording(Scenario):
    """Scenario rules as usual; `seen` lists every model call's RequestInfo in arrival order."""

    _seen: list[RequestInfo] = PrivateAttr(default_factory=list)

    def before_answer(self, request: RequestInfo) -> Fault | None:
        with self._lock:
            self._seen.append(request)
        return super().before_answer(request)

    @property
    def seen(self) -> list[RequestInfo]:
        with self._lock:
            return list(self._seen)

    @classmethod
    def of(cls, *flags: str) -> Recording:
        return cls(rules=Scenario.from_flags(list(flags)).rules)
