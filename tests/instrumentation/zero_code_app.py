"""An app with no tracing code at all: ``opentelemetry-instrument`` adds it from outside."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
async def healthz() -> str:
    return "ok"


@app.get("/hello/{name}")
async def hello(name: str) -> dict[str, str]:
    return {"hello": name}


@app.get("/fail")
async def fail() -> None:
    raise ValueError("zero-code failure")
