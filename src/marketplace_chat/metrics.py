"""Prometheus metrics, in a registry of the app's own (no process globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sockets = Gauge("chat_connected_sockets", "Sockets connected to this node", registry=r)
        self.connections = Counter(
            "chat_connections_total",
            "Connection attempts by outcome (accepted or the refusal code)",
            ["outcome"],
            registry=r,
        )
        self.events = Counter(
            "chat_events_total",
            "Client events by name and outcome (ok or the error code)",
            ["event", "outcome"],
            registry=r,
        )
        self.send_latency = Histogram(
            "chat_message_send_seconds",
            "message:send from receipt to ack",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fanout_latency = Histogram(
            "chat_fanout_seconds",
            "Time to hand a server event to the fan-out (local sockets and Redis)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.backend_errors = Counter(
            "chat_backend_errors_total", "Failures of PostgreSQL or Redis", ["backend"], registry=r
        )
        self.auth_cache = Counter(
            "chat_auth_cache_total", "Token cache lookups", ["result"], registry=r
        )
        self.verifier_latency = Histogram(
            "chat_auth_remote_seconds",
            "marketplace-api token verification latency",
            ["status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events_running = Gauge(
            "chat_events_running", "Client events being handled on this node", registry=r
        )
        self.events_waiting = Gauge(
            "chat_events_waiting",
            "Client events waiting for a free slot of their socket on this node",
            registry=r,
        )
        self.rate_limited = Counter(
            "chat_rate_limited_total", "Actions refused by a rate limit", ["action"], registry=r
        )

        self.webhook_deliveries = Counter(
            "chat_webhook_deliveries_total",
            "Webhook attempts by result: delivered, retried, failed (for good), dropped "
            "(a reminder of a message read meanwhile)",
            ["result"],
            registry=r,
        )
        self.webhooks_pending = Gauge(
            "chat_webhooks_pending", "Events in the outbox waiting for delivery", registry=r
        )
        self.webhooks_failed = Gauge(
            "chat_webhooks_failed", "Events that failed for good and are kept", registry=r
        )
        self.webhooks_oldest_pending = Gauge(
            "chat_webhooks_oldest_pending_seconds",
            "Age of the oldest event waiting for delivery (0 when none waits)",
            registry=r,
        )

    def observe_cache(self, hit: bool) -> None:
        self.auth_cache.labels("hit" if hit else "miss").inc()

    def observe_verifier(self, seconds: float, status: str) -> None:
        self.verifier_latency.labels(status).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
