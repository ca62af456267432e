# otelhouse in server mode: OTLP receivers on 4317 (gRPC) and 4318 (HTTP), the query API on 8080,
# storing into the ClickHouse server named by OTELHOUSE_CLICKHOUSE_URL (embedded chdb in /data
# otherwise); /data also holds the write-ahead log, so keep it on a volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . .
RUN pip install ./instrumentation . \
    && useradd --system --create-home --home-dir /home/otelhouse otelhouse \
    && mkdir /data && chown otelhouse /data

USER otelhouse
WORKDIR /home/otelhouse
ENV OTELHOUSE_DATA_DIR=/data \
    OTELHOUSE_OTLP_GRPC_ADDR=0.0.0.0:4317 \
    OTELHOUSE_OTLP_HTTP_ADDR=0.0.0.0:4318 \
    OTELHOUSE_API_ADDR=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 4317 4318 8080

ENTRYPOINT ["otelhouse"]
CMD ["serve"]
