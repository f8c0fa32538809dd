# The hamdb worker image (docker-compose.yml's `migrate` and `worker` services): CPU torch,
# GPAW (the model takes the exact overlap S from the basis through GPAW, and `hamdb verify`
# runs the reference DFT) and hamdb, installed as scripts/setup.sh does on a bare machine.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       build-essential libxc-dev libopenblas-dev \
    && rm -rf /var/lib/apt/lists/*
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install pybind11 ase "numpy>=2" \
    && CC=g++ pip install --no-build-isolation gpaw gpaw-data
WORKDIR /opt/hamdb
COPY pyproject.toml README.md ./
COPY hamdb ./hamdb
COPY cli ./cli
COPY alembic ./alembic
COPY models ./models
RUN pip install ".[dft]"
WORKDIR /project
CMD ["hamdb", "--help"]
