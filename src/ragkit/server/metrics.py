"""Prometheus metrics of one app, in the text exposition format, without a client library.

Labels are route templates (``/v1/kbs/{kb}/search``), methods and statuses: never a
tenant, kb name, key or path a client sent.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING

from ragkit.backends.catalog import JobRecord

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Counters and histograms of one app; :meth:`render` writes them for ``/metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._latency: dict[tuple[str, str], list[int]] = {}
        self._latency_sum: dict[tuple[str, str], float] = defaultdict(float)
        self._jobs: dict[tuple[str, str], int] = defaultdict(int)
        self._in_flight = 0
        self._streams = 0

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count a finished request."""
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            key = (method, route)
            counts = self._latency.setdefault(key, [0] * (len(_BUCKETS) + 1))
            for i, bound in enumerate(_BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self._latency_sum[key] += seconds

    def in_flight(self, delta: int) -> None:
        with self._lock:
            self._in_flight += delta

    def stream(self, delta: int) -> None:
        """One more (or fewer) open event stream."""
        with self._lock:
            self._streams += delta

    def job_finished(self, job: JobRecord) -> None:
        with self._lock:
            self._jobs[(job.kind, job.state)] += 1

    def render(self) -> str:
        """The metrics in Prometheus's text format."""
        out: list[str] = []
        with self._lock:
            out += [
                "# HELP ragkit_http_requests_total HTTP requests answered.",
                "# TYPE ragkit_http_requests_total counter",
            ]
            for (method, route, status), n in sorted(self._requests.items()):
                labels = f'method="{method}",route="{_escape(route)}",status="{status}"'
                out.append(f"ragkit_http_requests_total{{{labels}}} {n}")
            out += [
                "# HELP ragkit_http_request_duration_seconds Time to answer (to the last byte).",
                "# TYPE ragkit_http_request_duration_seconds histogram",
            ]
            for (method, route), counts in sorted(self._latency.items()):
                labels = f'method="{method}",route="{_escape(route)}"'
                for bound, n in zip((*_BUCKETS, "+Inf"), counts, strict=True):
                    out.append(
                        f'ragkit_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} '
                        f"{int(n)}"
                    )
                total = self._latency_sum[(method, route)]
                out.append(f"ragkit_http_request_duration_seconds_sum{{{labels}}} {total:.6f}")
                out.append(
                    f"ragkit_http_request_duration_seconds_count{{{labels}}} {int(counts[-1])}"
                )
            out += [
                "# HELP ragkit_http_requests_in_flight Requests being answered.",
                "# TYPE ragkit_http_requests_in_flight gauge",
                f"ragkit_http_requests_in_flight {self._in_flight}",
                "# HELP ragkit_event_streams_open Server-sent event streams open.",
                "# TYPE ragkit_event_streams_open gauge",
                f"ragkit_event_streams_open {self._streams}",
                "# HELP ragkit_jobs_finished_total Ingest jobs finished by this process.",
                "# TYPE ragkit_jobs_finished_total counter",
            ]
            for (kind, state), n in sorted(self._jobs.items()):
                out.append(f'ragkit_jobs_finished_total{{kind="{kind}",state="{state}"}} {n}')
        return "\n".join(out) + "\n"


class MetricsMiddleware:
    """Count every HTTP request of the app by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight(1)
        try:
            await self.app(scope, receive, tracking_send)
        finally:
            self.metrics.in_flight(-1)
            route = scope.get("route")
            template = str(getattr(route, "path", "")) or "unmatched"
            self.metrics.request(scope["method"], template, status, time.perf_counter() - start)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
