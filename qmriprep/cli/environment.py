"""Library caches inside the work folder: a run writes nothing outside its output and work folders.

TemplateFlow (imported by niworkflows), Matplotlib, torch, numba and the XDG cache default to
folders under ``$HOME``, which in a container or on a cluster node is often missing or read-only.
Each variable the user has not set is pointed to ``<work-dir>/.cache/<name>``; a variable already
set (e.g. a shared, pre-filled ``TEMPLATEFLOW_HOME``) is respected. Nothing is downloaded at run
time, so these caches only hold what the libraries write for themselves. A TemplateFlow folder
made here holds only the templates' descriptions (qmriprep uses no template): niworkflows lists
the templates at import, and indexing the 2,600-file skeleton TemplateFlow would unpack took
most of a no-op rerun (benchmarks/RESULTS.md, "Containers and HPC").
"""

from __future__ import annotations

import os
from pathlib import Path

CACHES = {"TEMPLATEFLOW_HOME": "templateflow", "MPLCONFIGDIR": "matplotlib", "TORCH_HOME": "torch",
          "NUMBA_CACHE_DIR": "numba", "XDG_CACHE_HOME": "xdg"}


def private_caches(work_dir: str | Path, environ=os.environ) -> dict[str, str]:
    """Set the unset cache variables of :data:`CACHES` to folders under ``work_dir`` (created);
    returns the variables set. Call before importing niworkflows or matplotlib."""
    root = Path(work_dir) / ".cache"
    chosen = {}
    for var, name in CACHES.items():
        if not environ.get(var):
            path = root / name
            path.mkdir(parents=True, exist_ok=True)
            environ[var] = chosen[var] = str(path)
    if "TEMPLATEFLOW_HOME" in chosen:
        _template_descriptions(Path(chosen["TEMPLATEFLOW_HOME"]))
    return chosen


def _template_descriptions(home: Path) -> None:
    """Fill an empty TemplateFlow home with the ``tpl-*/template_description.json`` files of the
    skeleton shipped with templateflow (the same template names, 30 files instead of 2,600)."""
    import importlib.util
    import zipfile

    spec = importlib.util.find_spec("templateflow")
    if spec is None or any(home.iterdir()):
        return
    skeleton = Path(spec.submodule_search_locations[0]) / "conf" / "templateflow-skel.zip"
    with zipfile.ZipFile(skeleton) as archive:
        for name in archive.namelist():
            if name.endswith("/template_description.json"):
                archive.extract(name, home)


def login_name(environ=os.environ) -> str:
    """``LOGNAME`` (which Nipype's cluster plugins put in job names) if unset, as under
    ``apptainer --cleanenv``: from ``USER``, the password database, or ``uid<N>``."""
    if not environ.get("LOGNAME"):
        try:
            import pwd

            name = environ.get("USER") or pwd.getpwuid(os.getuid()).pw_name
        except KeyError:  # a container user without a passwd entry
            name = f"uid{os.getuid()}"
        environ["LOGNAME"] = name
    return environ["LOGNAME"]
