# One image for both halves of homelabcmd:
#   control: homelab-control serve --host 0.0.0.0   (the default command)
#   agent:   homelab-agent                            (configure with HOMELAB_* env vars)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY control ./control
COPY exporter_agent ./exporter_agent
RUN pip install ".[control,agent]" \
    && cd / && rm -rf /src \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/homelab homelab

# The SQLite database and anything else control keeps lives here (a volume in docker-compose.yml).
ENV HOMELAB_DATA_DIR=/var/lib/homelab
WORKDIR /var/lib/homelab
USER homelab

# 8000: control's API and /metrics; 9100: the agent's /metrics (node_exporter's port).
EXPOSE 8000 9100
CMD ["homelab-control", "serve", "--host", "0.0.0.0"]
