# initlab: the API (default command) and, with another command, the Celery worker.
# docker compose up --scale worker=N runs redis + api + N workers (see docker-compose.yml).
FROM python:3.11-slim-bookworm

# OPENBLAS_THREAD_TIMEOUT: idle OpenBLAS threads sleep soon instead of spinning on cores the
# other processes need (API and worker; BLAS threads per worker pool process: worker/celery_app.py).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OPENBLAS_THREAD_TIMEOUT=4 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Fashion-MNIST from Debian: the udacity-fashion / too-small presets run offline.
RUN apt-get update \
    && apt-get install -y --no-install-recommends dataset-fashion-mnist=0.0~git20200523.55506a9-1 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin initlab

WORKDIR /srv/initlab

# Dependencies first, pinned: requirements.lock (`make lock` from pyproject.toml) is what every
# build installs; this layer is rebuilt only when the lock changes. The code after.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

COPY pyproject.toml README.md ./
COPY app ./app
COPY worker ./worker
# The float32 normal kernels, the Adam update and the diagnostics' unit clustering
# (distinct_units) are compiled by Numba: compile them now into a cache the app user can write
# (a host CPU other than the build machine's compiles again there, once).
ENV NUMBA_CACHE_DIR=/srv/initlab/numba-cache
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info \
    && python -c "import app.initializers as i, app.training as t; i.warm_up(); t.warm_up()" \
    && chown -R 10001:10001 "$NUMBA_CACHE_DIR"

USER 10001:10001
ENV INITLAB_DATA_DIR=/home/initlab/data
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
