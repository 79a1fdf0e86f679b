"""Remembered Cedar answers for people alike to a slice of policies.

``policies.projection`` proves that, for a batchable slice whose projection is usable,
Cedar's answer depends only on the projection key of the request (what the slice can
see of the person, their break-glass state and the record) and on the (assurance,
break glass) variant asked. An engine is immutable (one compiled bundle, one
environment), so an answer once computed for a key stays right for the engine's whole
life: a later request with the same key is answered without asking Cedar again.

London has about a million people but, to the twenty or so policies of one service, far
fewer kinds of people: a service's policies name a handful of organisations, teams,
groups and roles, so the keys of the morning's sign-ins repeat. The memo is bounded
(``limit`` keys; emptied when full, so a hostile spread of keys costs memory only up
to the limit and never a wrong answer). Answers that carried evaluation errors are
never remembered: they are asked again, and fail closed again, each time.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping

from policies.batch import Variant
from policies.obligations import Outcome

#: Keys remembered per engine before the memo is emptied and starts again.
DEFAULT_LIMIT = 100_000


class AnswerMemo:
    """A bounded map from (action, service, projection key, variants) to Cedar's answers; thread-safe."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        """``limit`` 0 remembers nothing (every request goes to Cedar)."""
        self._limit = limit
        self._answers: dict[Hashable, Mapping[Variant, Outcome]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        """True when answers are remembered at all."""
        return self._limit > 0

    def get(self, key: Hashable) -> dict[Variant, Outcome] | None:
        """Return a copy of the answers remembered for ``key``, or None."""
        found = self._answers.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        return dict(found)

    def remember(self, key: Hashable, answers: Mapping[Variant, Outcome], variants: tuple[Variant, ...]) -> None:
        """Remember ``answers`` for ``key`` if every variant was answered without errors."""
        if not self.enabled:
            return
        if any(v not in answers or answers[v].errors for v in variants):
            return
        snapshot = {v: answers[v] for v in variants}
        with self._lock:
            if len(self._answers) >= self._limit:
                self._answers.clear()
            self._answers[key] = snapshot

    def __len__(self) -> int:
        return len(self._answers)
