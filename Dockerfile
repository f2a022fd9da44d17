# syntax=docker/dockerfile:1
# NetPulse's production image: built as wheels, installed without the source tree, run as a
# non-root user. docker-compose.yml runs every process from it.

# --- build: a wheel of NetPulse (the SQL migrations inside, see setup.py) and of each dependency
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY sql sql
COPY netpulse netpulse
COPY ingest ingest
COPY analytics analytics
COPY reports reports
COPY workers workers
COPY dashboard dashboard
COPY cli cli
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- run
FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/netpulse --create-home netpulse
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels netpulse && rm -rf /wheels
# ICMP probes need raw sockets (CAP_NET_RAW). Only the worker gets the capability: its container
# adds NET_RAW, every other one drops all capabilities, and it starts through its own copy of the
# interpreter that carries the file capability. (A capability on the shared interpreter would stop
# every process from starting in a container that does not grant it.)
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && cp /usr/local/bin/python3.11 /usr/local/bin/python3.11-probe \
 && setcap cap_net_raw+ep /usr/local/bin/python3.11-probe \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
USER netpulse
WORKDIR /var/lib/netpulse
ENV NETPULSE_DATA_DIR=/var/lib/netpulse PYTHONUNBUFFERED=1
ENTRYPOINT ["netpulse"]
CMD ["--help"]
