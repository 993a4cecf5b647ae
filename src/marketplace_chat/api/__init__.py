"""The HTTP edge: REST over the same service, plus health, readiness and metrics."""
