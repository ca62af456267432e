"""An app with no tracing code at all: ``opentelemetry-instrument`` adds it from outside."""

from __future__ import annotations

import logging

from fastapi import FastAPI

app = FastAPI()
logger = logging.getLogger(__name__)


@app.get("/healthz")
async def healthz() -> str:
    return "ok"


@app.get("/hello/{name}")
async def hello(name: str) -> dict[str, str]:
    logger.warning("greeting %s", name)
    return {"hello": name}


@app.get("/fail")
async def fail() -> None:
    raise ValueError("zero-code failure")
