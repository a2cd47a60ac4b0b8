# dvp-scheduler: one image, every service (the command picks which).
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md requirements-runtime.lock ./
COPY contracts contracts
COPY natsio natsio
COPY dvp_cms dvp_cms
COPY ticker ticker
COPY executor executor
COPY projector projector
COPY dvp_scheduler dvp_scheduler
COPY examples examples
# Exactly the locked runtime dependencies, then the project on top of them.
RUN pip install --no-cache-dir --require-hashes -r requirements-runtime.lock \
    && pip install --no-cache-dir --no-deps . \
    && useradd --system --uid 10001 dvp
# The example plugins are loaded by module path from here.
ENV PYTHONPATH=/app
USER dvp
ENTRYPOINT ["dvp-scheduler"]
CMD ["--help"]
