# qmriprep container: CPU build (torch from the PyTorch CPU wheel index).
#   docker build -t qmriprep/qmriprep:0.1.0 .
#   docker run --rm -v /data/bids:/data:ro -v /data/out:/out qmriprep/qmriprep:0.1.0 /data /out participant
FROM python:3.11.7-slim-bookworm

ARG QMRIPREP_VERSION=0.1.0
ARG TORCH_VERSION=2.13.0

# Threads are set per run by --omp-nthreads; these defaults keep a container from oversubscribing.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    OMP_WAIT_POLICY=PASSIVE \
    MPLCONFIGDIR=/tmp/matplotlib \
    QMRIPREP_DOCKER_TAG=${QMRIPREP_VERSION}

# CPU torch first, from the CPU index, so no CUDA build is pulled by the package's requirement.
RUN python -m pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu

WORKDIR /src/qmriprep
COPY pyproject.toml README.rst ./
COPY qmriprep ./qmriprep
RUN python -m pip install . \
    && python -c "import qmriprep, torch, nipype, bids, SimpleITK; print(qmriprep.__version__, torch.__version__)"

# Non-root user with a writable home (nipype and matplotlib write caches there).
RUN useradd --create-home --uid 1000 --shell /bin/bash qmriprep
USER qmriprep
ENV HOME=/home/qmriprep
WORKDIR /home/qmriprep

LABEL org.opencontainers.image.title="qmriprep" \
      org.opencontainers.image.version="${QMRIPREP_VERSION}" \
      org.opencontainers.image.description="BIDS-App for quantitative MRI parameter maps" \
      org.opencontainers.image.licenses="Apache-2.0"

ENTRYPOINT ["qmriprep"]
CMD ["--help"]
