# otelhouse in server mode: OTLP/gRPC receiver on 4317 and the query API on 8080, storing into
# the ClickHouse server named by OTELHOUSE_CLICKHOUSE_URL (embedded chdb in /data otherwise).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . .
RUN pip install . \
    && useradd --system --create-home --home-dir /home/otelhouse otelhouse \
    && mkdir /data && chown otelhouse /data

USER otelhouse
WORKDIR /home/otelhouse
ENV OTELHOUSE_DATA_DIR=/data \
    OTELHOUSE_OTLP_GRPC_ADDR=0.0.0.0:4317 \
    OTELHOUSE_API_ADDR=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 4317 8080

ENTRYPOINT ["otelhouse"]
CMD ["serve"]
