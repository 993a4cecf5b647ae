"""`/health`, `/ready` and `/metrics`: for load balancers and Prometheus."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from marketplace_chat.metrics import Metrics

READY_TIMEOUT_S = 2.0  # a probe must answer well inside a load balancer's check interval


def ops_router(checks: dict[str, Callable[[], Awaitable[object]]], metrics: Metrics) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        """The process is up and serving."""
        return {"status": "ok"}

    @router.get("/ready")
    async def ready() -> JSONResponse:
        """PostgreSQL and Redis answer and the fan-out between nodes reads and publishes; 503
        when any of them does not (each named in the body)."""
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), READY_TIMEOUT_S)
                results[name] = "ok"
            except Exception:  # any failure of a dependency means "not ready", never a 500
                results[name] = "unavailable"
        ok = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", **results}, status_code=200 if ok else 503
        )

    @router.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router
