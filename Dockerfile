# qmriprep container: CPU build, dependencies at the exact versions of requirements.lock.
#   docker build -t qmriprep/qmriprep:0.1.0 \
#     --build-arg VCS_REF="$(git rev-parse HEAD)" --build-arg BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#   docker run --rm -u "$(id -u):$(id -g)" -v /data/bids:/data:ro -v /data/out:/out -v /scratch/work:/work \
#     qmriprep/qmriprep:0.1.0 /data /out participant -w /work
# Layers: torch, then the other dependencies (both change only with requirements.lock or the
# dependency list), then the package code, so a code change reinstalls nothing but qmriprep.
FROM python:3.11.7-slim-bookworm

ARG TORCH_VERSION=2.13.0

# Threads are set per run by --omp-nthreads; these defaults keep a container from oversubscribing.
# Caches the libraries write go to <work-dir>/.cache (qmriprep/cli/environment.py), so the image and
# HOME may be read-only; nothing is downloaded at run time.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    OMP_WAIT_POLICY=PASSIVE

WORKDIR /src/qmriprep
COPY requirements.lock ./
# CPU torch first, from the CPU index, so no CUDA build is pulled by the package's requirement.
RUN python -m pip install -c requirements.lock "torch==${TORCH_VERSION}" \
        --index-url https://download.pytorch.org/whl/cpu

# The dependencies listed in pyproject.toml, at the locked versions, without the code.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > dependencies.txt \
    && python -m pip install -c requirements.lock -r dependencies.txt

COPY README.rst ./
COPY qmriprep ./qmriprep
RUN python -m pip install --no-deps -c requirements.lock . \
    && python -m pip check \
    && python -c "import qmriprep, torch, nipype, bids, SimpleITK; print(qmriprep.__version__, torch.__version__)"

# Any user id may run the image (docker run -u, Apptainer): no home folder is needed.
RUN useradd --no-create-home --uid 1000 --shell /usr/sbin/nologin qmriprep
USER 1000:1000
WORKDIR /tmp

ARG QMRIPREP_VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
ARG SOURCE_URL=https://github.com/qmriprep/qmriprep
ENV QMRIPREP_DOCKER_TAG=${QMRIPREP_VERSION}
LABEL org.opencontainers.image.title="qmriprep" \
      org.opencontainers.image.version="${QMRIPREP_VERSION}" \
      org.opencontainers.image.description="BIDS-App for quantitative MRI parameter maps" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}"

ENTRYPOINT ["qmriprep"]
CMD ["--help"]
