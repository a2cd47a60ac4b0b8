# dvp-scheduler: one image, every service (the command picks which).
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts contracts
COPY dvp_cms dvp_cms
COPY ticker ticker
COPY executor executor
COPY projector projector
COPY dvp_scheduler dvp_scheduler
COPY examples examples
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 dvp
# The example plugins are loaded by module path from here.
ENV PYTHONPATH=/app
USER dvp
ENTRYPOINT ["dvp-scheduler"]
CMD ["--help"]
