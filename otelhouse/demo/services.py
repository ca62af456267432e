"""The demo's two services: ``shop`` (what users call) and ``inventory`` (what shop calls).

Every kind of request a trace view has to show is here: fast ones, slow ones, ones that fail
with a 5xx now and then, ones that raise, client errors (404), and requests that cross from
shop to inventory over HTTP with the trace context propagated in ``traceparent``. Each
service logs to a logger of its own (:data:`SHOP_LOGGER`, :data:`INVENTORY_LOGGER`): a line at
info per request, a warning when one is slow or inventory is busy, an error when one fails
(``logger.exception`` where it raised), so with ``instrument_app(..., logger_name=...)`` every
trace has its logs.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI, HTTPException, Request
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from otelhouse.instrumentation.instrument import instrumentation_of

SHOP_LOGGER = f"{__name__}.shop"
INVENTORY_LOGGER = f"{__name__}.inventory"
SLOW_REQUEST_S = 0.5
"""Requests slower than this log a warning."""

STOCK: dict[str, int] = {"apple": 120, "pear": 40, "plum": 0, "kiwi": 75, "fig": 12}
PRICES_CENTS: dict[str, int] = {"apple": 45, "pear": 60, "plum": 80, "kiwi": 35, "fig": 150}


@dataclass(frozen=True)
class Behaviour:
    """How slow and how flaky the services are; tests pin these, the demo randomises."""

    slow_seconds: tuple[float, float] = (0.2, 0.9)
    reservation_seconds: tuple[float, float] = (0.02, 0.15)
    failure_rate: float = 0.15
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def pause(self, bounds: tuple[float, float]) -> float:
        return self.rng.uniform(*bounds)

    def fails(self) -> bool:
        return self.rng.random() < self.failure_rate


def create_inventory_app(behaviour: Behaviour | None = None) -> FastAPI:
    behaviour = behaviour or Behaviour()
    app = FastAPI(title="inventory")
    logger = logging.getLogger(INVENTORY_LOGGER)

    @app.get("/stock/{sku}")
    async def stock(sku: str) -> dict[str, object]:
        if sku not in STOCK:
            logger.info("stock of unknown sku %r asked for", sku)
            raise HTTPException(status_code=404, detail=f"unknown sku {sku!r}")
        logger.info("stock of %s: %d", sku, STOCK[sku])
        return {"sku": sku, "available": STOCK[sku]}

    @app.post("/reservations")
    async def reserve(sku: str, quantity: int = 1) -> dict[str, object]:
        await asyncio.sleep(behaviour.pause(behaviour.reservation_seconds))
        if behaviour.fails():
            logger.warning("warehouse lock timed out for %s", sku)
            raise HTTPException(status_code=503, detail="warehouse busy, retry later")
        if STOCK.get(sku, 0) < quantity:
            logger.info("cannot reserve %d %s: %d left", quantity, sku, STOCK.get(sku, 0))
            raise HTTPException(status_code=409, detail=f"only {STOCK.get(sku, 0)} {sku} left")
        logger.info("reserved %d %s", quantity, sku)
        return {"sku": sku, "reserved": quantity}

    return app


def create_shop_app(inventory_url: str, behaviour: Behaviour | None = None) -> FastAPI:
    """Shop's client to inventory, and its own spans, use the tracer provider of shop's
    instrumentation (found on the app when it starts), so they are ``shop``'s spans."""
    behaviour = behaviour or Behaviour()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        handle = instrumentation_of(app)
        provider = handle.tracer_provider if handle else trace.get_tracer_provider()
        app.state.tracer = provider.get_tracer(__name__)
        async with httpx.AsyncClient(base_url=inventory_url, timeout=5.0) as client:
            HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
            app.state.inventory = client
            yield

    app = FastAPI(title="shop", lifespan=lifespan)
    logger = logging.getLogger(SHOP_LOGGER)

    def inventory(request: Request) -> httpx.AsyncClient:
        return request.app.state.inventory

    @app.get("/products")
    async def products() -> list[dict[str, object]]:
        logger.info("listing %d products", len(PRICES_CENTS))
        return [{"sku": sku, "price_cents": price} for sku, price in PRICES_CENTS.items()]

    @app.get("/products/{sku}")
    async def product(sku: str, request: Request) -> dict[str, object]:
        answer = await inventory(request).get(f"/stock/{sku}")
        if answer.status_code == 404:
            logger.info("no product %r", sku)
            raise HTTPException(status_code=404, detail=f"no product {sku!r}")
        answer.raise_for_status()
        logger.info("product %s shown", sku)
        return {"sku": sku, "price_cents": PRICES_CENTS[sku], **answer.json()}

    @app.post("/checkout")
    async def checkout(sku: str, request: Request, quantity: int = 1) -> dict[str, object]:
        with request.app.state.tracer.start_as_current_span("price order") as span:
            span.set_attribute("shop.sku", sku)
            total = PRICES_CENTS.get(sku, 0) * quantity
        answer = await inventory(request).post(
            "/reservations", params={"sku": sku, "quantity": quantity}
        )
        if answer.status_code >= 500:
            logger.error("checkout of %s failed: inventory answered %s", sku, answer.status_code)
            raise HTTPException(status_code=502, detail="inventory unavailable")
        if answer.status_code >= 400:
            logger.info("checkout of %s refused: inventory answered %s", sku, answer.status_code)
            raise HTTPException(status_code=answer.status_code, detail=answer.json()["detail"])
        logger.info("checkout of %d %s for %d cents", quantity, sku, total)
        return {"sku": sku, "quantity": quantity, "total_cents": total}

    @app.get("/reports/sales")
    async def sales_report() -> dict[str, object]:
        pause = behaviour.pause(behaviour.slow_seconds)
        await asyncio.sleep(pause)
        if pause > SLOW_REQUEST_S:
            logger.warning("sales report took %.2f s, over %.1f s", pause, SLOW_REQUEST_S)
        else:
            logger.info("sales report took %.2f s", pause)
        return {"orders": behaviour.rng.randint(10, 500)}

    @app.get("/recommendations")
    async def recommendations() -> dict[str, object]:
        try:
            raise LookupError("recommendation model not loaded")
        except LookupError:
            logger.exception("recommendations failed")
            raise

    return app
