"""The subject report of a tiny run, opened in a real browser (headless Debian ``chromium``).

Checks what a user sees: the page renders, every image loads (``naturalWidth > 0``, also the
lazily loaded ones), the summary and every collection's section are present, figures have sane
sizes, and the page is not absurdly tall. The screenshot is kept as a test artefact
(``$QMRIPREP_TEST_ARTEFACTS`` or the test's temporary folder). Chromium is installed by
``scripts/install_system.sh`` (run by ``scripts/test.sh``); without it the test skips, saying so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from qmriprep.cli.run import main
from qmriprep.synth.dataset import DatasetSpec, write_dataset

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: appended to a copy of the page: loads every image eagerly, then writes what it found
PROBE = """<script>
window.addEventListener("load", async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = "eager"; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  const out = {
    height: document.documentElement.scrollHeight,
    images: imgs.map(i => [i.getAttribute("src"), i.naturalWidth, i.naturalHeight]),
    sections: Array.from(document.querySelectorAll("section.top")).map(s => [s.id, s.querySelector("h2").textContent, s.getBoundingClientRect().height]),
    summaryVisible: document.getElementById("summary").getBoundingClientRect().height > 200,
  };
  const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium(*args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--allow-file-access-from-files", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def _tiny_run(root: Path, *extra: str) -> tuple[int, Path, Path]:
    bids = root / "bids"
    if not bids.exists():
        write_dataset(bids, DatasetSpec(downsample=8, n_slices=6, modalities=("MESE", "VFA", "TB1TFL"),
                                        kspace={"contrasts": ("MESE",), "acceleration": 2}))
    out = root / "out"
    code = main([str(bids), str(out), "participant", "-w", str(root / "work"), "--nprocs", "2",
                 "--omp-nthreads", "1", "--estimators", "mese:varpro,loglinear", "vfa:nlls,linear",
                 "--recon", "cgsense", "--b1-registration", "rigid", *extra])
    return code, bids, out / "sub-01.html"


def test_tiny_run_report_in_chromium(tmp_path):
    """One tiny run (MESE, VFA with B1+ TFL, MESE k-space at R = 2 by CG-SENSE), then its report
    checked in the browser, screenshotted, and rewritten by ``--reports-only``."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/install_system.sh installs it as root)")
    code, _, page = _tiny_run(tmp_path)
    assert code == 0
    _check_rendered(_probe(page))
    _check_sections(page.read_text())
    _check_screenshot(page)
    _check_reports_only(tmp_path, page)


def _probe(page: Path) -> dict:
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    result = _chromium("--virtual-time-budget=20000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert found, f"the page did not finish loading in chromium: {result.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def _check_rendered(seen: dict) -> None:
    """Every image loaded with a sane size; the summary and each collection's section shown."""
    assert seen["summaryVisible"]
    assert len(seen["images"]) >= 10
    broken = [src for src, width, _ in seen["images"] if width == 0]
    assert not broken, f"images that did not load: {broken}"
    for src, width, height in seen["images"]:
        assert 60 <= width <= 2000 and 40 <= height <= 1200, (src, width, height)
    titles = [t for _, t, _ in seen["sections"]]
    for name in ("Summary", "sub-01_MESE", "sub-01_VFA", "sub-01_TB1TFL", "sub-01_MESE_kspace",
                 "Methods", "Errors"):
        assert name in titles, (name, titles)
    assert all(h > 30 for _, _, h in seen["sections"])
    assert seen["height"] < 40000, "the page is too tall to read"


def _check_sections(html: str) -> None:
    """The summary's blocks, the k-space and registration views, file names unbroken."""
    for anchor in ("summary-qc", "summary-collections", "summary-warnings"):
        assert f'id="{anchor}"' in html
    kspace = html.split('<h2>sub-01_MESE_kspace</h2>')[1].split('<section id="col-')[0]
    assert "_recon.png" in kspace and "Coil sensitivities" in kspace  # zero-filled vs CG-SENSE
    vfa = html.split("<h2>sub-01_VFA</h2>")[1].split('<section id="col-')[0]
    assert "_b1reg.png" in vfa and "Method against method" in vfa  # nlls vs linear
    names = re.findall(r'<code class="fname">(.*?)</code>', html)
    assert names and all("-<wbr>" not in n for n in names)  # file names wrap at "_" only


def _check_screenshot(page: Path) -> None:
    """A 1400 x 2400 screenshot, kept, that is not blank."""
    folder = Path(os.environ.get("QMRIPREP_TEST_ARTEFACTS", page.parent))
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "report_screenshot.png"
    _chromium("--window-size=1400,2400", f"--screenshot={shot}", page.as_uri())
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1400, 2400)
        pixels = image.convert("L").resize((70, 120))
        values = list(pixels.getdata())
    assert max(values) - min(values) > 100  # not a blank page: text, tables and figures


def _check_reports_only(root: Path, page: Path) -> None:
    """``--reports-only`` rewrites the report and its figures and touches no derivative."""
    anat = page.parent / "sub-01" / "anat"
    before = {p.name: p.stat().st_mtime_ns for p in anat.iterdir()}
    page.unlink()
    shutil.rmtree(page.parent / "sub-01" / "figures")
    code, _, again = _tiny_run(root, "--reports-only")
    assert code == 0 and again == page and page.exists()
    assert {p.name: p.stat().st_mtime_ns for p in anat.iterdir()} == before
    html = page.read_text()
    assert "<h2>sub-01_MESE_kspace</h2>" in html and "_recon.png" in html
    assert all((page.parent / src).is_file() for src in re.findall(r'src="([^"]+)"', html))
