"""The one retry policy: how many attempts a request gets, for how long, how long to wait
between them, and which failures another attempt may cure.

The CRT's S3 client takes it as its ``S3RetryConfig`` (``crt_http.crt_retry_config``); the
CRT's streamed parts, every boto3 request and the bucket check go through ``RetryPolicy.call``.
botocore is told to make one attempt: its ``standard`` and ``adaptive`` modes keep a retry quota
that a few hundred throttled PUTs drain, after which nothing is retried, and no public setting
widens it; its ``legacy`` mode has no quota but an uncapped backoff
(docs/upstream/botocore-retry-quota.md).

Backoff is exponential with full jitter, as the AWS SDKs and the CRT do it, so that the mapped
tasks of one run, which meet the same outage, do not come back in step.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from airflow_s3pput.errors import S3Error

T = TypeVar("T")

#: S3 error codes that mean "try again later", whatever the status says
LATER_CODES = frozenset({"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling"})
#: what an adapter reports when no answer came: the connection failed, broke or timed out
_NO_ANSWER = frozenset({S3Error.UNREACHABLE, S3Error.TIMEOUT})


def is_transient(error: S3Error) -> bool:
    """Whether another attempt may succeed: no answer at all, a 5xx or 429 answer, or a code
    that means "later". A refusal (403, 404, BadDigest ...) is the caller's: the putter sends
    a damaged body again itself, after reading it again."""
    if error.status is None:
        return error.code in _NO_ANSWER
    return error.status >= 500 or error.status == 429 or error.code in LATER_CODES


def _pause(seconds: float, stop: threading.Event | None) -> bool:
    """Wait ``seconds``, ended early by ``stop``; whether it was."""
    if stop is None:
        time.sleep(seconds)
        return False
    return stop.wait(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` counts the first one (0: as many as ``budget`` allows); ``backoff_base``,
    ``backoff_cap`` and ``budget`` are seconds. No attempt starts once ``budget`` has passed
    since the first (a wait is cut to what is left; an attempt in flight is let finish, so the
    transport's timeouts bound the overrun). ``retryable``: the failures asked again.
    ``clock``, ``sleep`` (true: stopped, as ``_pause``) and ``jitter`` are for tests.
    """

    attempts: int
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    budget: float = math.inf
    retryable: Callable[[S3Error], bool] = is_transient
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float, threading.Event | None], object] = _pause
    jitter: Callable[[], float] = random.random

    def delay(self, retry: int) -> float:
        """The wait before retry ``retry`` (0 for the first): up to ``min(cap, base * 2**retry)``."""
        return self.jitter() * min(self.backoff_cap, self.backoff_base * 2.0**retry)

    def call(self, send: Callable[[], T], stop: threading.Event | None = None) -> T:
        """``send()`` until it returns, raises what another attempt cannot cure, or has had
        every attempt or the budget; the last error is raised. ``stop`` set (the upload was
        given up, the check closed) ends a wait at once, with the error it had: a wait of up to
        ``backoff_cap`` would hold Ctrl-C."""
        start = self.clock()
        retry = 0
        while True:
            try:
                return send()
            except S3Error as error:
                left = self.budget - (self.clock() - start)
                if retry + 1 == self.attempts or left <= 0 or not self.retryable(error):
                    raise
                if self.sleep(min(self.delay(retry), left), stop):
                    raise
                retry += 1
