# The hamdb worker image (docker-compose.yml's `migrate` and `worker` services): CPU torch,
# hamdb and its dependencies. GPAW (hamdb[dft]) is left out: workers only predict and screen.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /opt/hamdb
COPY pyproject.toml README.md ./
COPY hamdb ./hamdb
COPY cli ./cli
COPY alembic ./alembic
COPY models ./models
RUN pip install .
WORKDIR /project
CMD ["hamdb", "--help"]
