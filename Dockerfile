# The API image: the same code `booking serve` runs on a laptop, pointed at external PostgreSQL
# and NATS through BOOKING_* variables (see compose.yaml). Without BOOKING_DATABASE_URL it would
# start the embedded PostgreSQL instead; in a container, always give it an external database.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BOOKING_HOME=/var/lib/booking

WORKDIR /app
# only what the package needs: no .venv, .booking or .git from the build context
COPY pyproject.toml README.md ./
COPY booking ./booking
COPY projections ./projections
COPY api ./api
COPY fanout ./fanout
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/booking --create-home booking

USER booking
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["booking", "serve", "--host", "0.0.0.0", "--port", "8000"]
