"""One retry policy module: exponential backoff with jitter, built on tenacity, configured per call
site by name and counted in ``mevwatch_retries_total{policy}``.

Every wait is ``min(max_s, initial_s * 2**(attempt-1))`` scaled by a random factor in [50%, 100%]
("equal jitter": never zero, so a fleet restarting together spreads out). A stop event ends the
wait at once (shutdown never waits for a backoff). The policies:

| name      | used by                                                   | first  | cap    |
|-----------|-----------------------------------------------------------|--------|--------|
| sink      | a sink that is down (ClickHouse, the broker): offsets held | 0.25 s | 10 s   |
| commit    | committing consumer offsets                               | 0.25 s | 5 s    |
| startup   | opening the store when the daemon starts                  | 0.5 s  | 10 s   |
| attest    | an attestation round that failed                          | 5 s    | 300 s  |
| node      | reconnecting to the node (cap: ``node.reconnect_max_s``)  | 0.25 s | 30 s   |
| trace     | a block's call traces the node answered with an error     | 0.5 s  | 4 s    |
| webhook   | the next delivery of a failed webhook (settings: backoff) | 2 s    | 600 s  |

A block's traces are tried three times (streams/node.py); then that block is decoded from its
event logs and the next block asks for traces again.

The webhook outbox does not loop here: a failed message is rescheduled with :meth:`Policy.delay`
and delivered by the next round, so one slow receiver never blocks the others.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import tenacity

from mevwatch.monitor import metrics

T = TypeVar("T")


@dataclass(frozen=True)
class Policy:
    name: str
    initial_s: float
    max_s: float

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``attempt`` (1 = the first retry)."""
        base = min(self.max_s, self.initial_s * 2 ** max(0, attempt - 1))
        return base * (0.5 + rand() / 2)

    def capped(self, max_s: float) -> Policy:
        return replace(self, max_s=max_s)

    def scaled(self, initial_s: float, max_s: float) -> Policy:
        return replace(self, initial_s=initial_s, max_s=max_s)


POLICIES: dict[str, Policy] = {p.name: p for p in (
    Policy("sink", 0.25, 10.0),
    Policy("commit", 0.25, 5.0),
    Policy("startup", 0.5, 10.0),
    Policy("attest", 5.0, 300.0),
    Policy("node", 0.25, 30.0),
    Policy("trace", 0.5, 4.0),
    Policy("webhook", 2.0, 600.0),
)}


def policy(name: str) -> Policy:
    return POLICIES[name]


class Stopped(Exception):
    """The stop event was set while waiting to retry."""


def call(fn: Callable[[], T], *, policy: Policy | str, retry_if: Callable[[BaseException], bool],
         stop: threading.Event | None = None, on_retry: Callable[[BaseException, float], None] | None = None) -> T:
    """``fn()`` until it returns; an exception for which ``retry_if`` is true waits and tries again,
    any other propagates. Raises :class:`Stopped` when ``stop`` is set before a retry."""
    pol = POLICIES[policy] if isinstance(policy, str) else policy
    event = stop or threading.Event()
    counter = metrics.RETRIES.labels(pol.name)

    def wait(state: tenacity.RetryCallState) -> float:
        return pol.delay(state.attempt_number)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        counter.inc()
        exc = state.outcome.exception() if state.outcome is not None else None
        if on_retry is not None and exc is not None and state.next_action is not None:
            on_retry(exc, state.next_action.sleep)

    def sleep(seconds: float) -> None:
        if event.wait(seconds):
            raise Stopped()

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(retry_if), wait=wait, sleep=sleep, before_sleep=before_sleep,
        stop=lambda _state: event.is_set(), reraise=True)
    try:
        return retrying(fn)
    except tenacity.RetryError as exc:  # stopped after a failed attempt
        raise Stopped() from exc.last_attempt.exception()


async def call_async(fn: Callable[[], object], *, policy: Policy | str, retry_if: Callable[[BaseException], bool],
                     stop: Callable[[], bool] = lambda: False,
                     on_retry: Callable[[BaseException, float], None] | None = None) -> object:
    """The async form of :func:`call`: ``await fn()`` until it returns; ``stop()`` true ends it."""
    pol = POLICIES[policy] if isinstance(policy, str) else policy
    counter = metrics.RETRIES.labels(pol.name)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        counter.inc()
        exc = state.outcome.exception() if state.outcome is not None else None
        if on_retry is not None and exc is not None and state.next_action is not None:
            on_retry(exc, state.next_action.sleep)

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(retry_if), wait=lambda s: pol.delay(s.attempt_number),
        before_sleep=before_sleep, stop=lambda _s: stop(), reraise=True)
    async for attempt in retrying:
        with attempt:
            return await fn()  # type: ignore[misc]
    raise Stopped()
