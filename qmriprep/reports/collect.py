"""Which derivative belongs to which collection of the plan, and what it is in the report.

A map belongs to the collection whose raw files its sidecar's ``Sources`` names first (the
series it was estimated from; a B1+ map used by an estimator comes later in the list). A B1+ map
resampled onto a series' grid (``desc-<kind>_TB1map``, ``Sources``: the B1+ files) goes to the
series it corrects. Within a collection, images are sorted into parameter maps, fit-quality
maps, uncertainty (``desc-*SD``) maps, out-of-range masks, masks and reconstructed or derived
series images (suffix = the series' kind).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .analysis import Image
from .figures import is_fit_quality

#: prefix of BIDS URIs of raw files in ``Sources``
RAW = "bids:raw:"


@dataclass
class Group:
    """One collection of the plan and its derivatives, by role."""

    anchor: str
    decision: dict
    item: object = None  #: the plan's CollectionPlan (None when only decisions were given)
    maps: list = field(default_factory=list)
    quality: list = field(default_factory=list)
    sd: list = field(default_factory=list)
    out_of_range: list = field(default_factory=list)
    masks: list = field(default_factory=list)
    series: list = field(default_factory=list)  #: reconstructed/derived images of the series
    b1: list = field(default_factory=list)  #: B1+ maps resampled onto this series' grid

    @property
    def name(self) -> str:
        return str(self.decision.get("name") or self.decision.get("kind") or self.anchor)

    @property
    def kind(self) -> str:
        return str(self.decision.get("kind", ""))

    @property
    def series_kind(self) -> str:
        """The image suffix the collection's series carry (k-space: from its name)."""
        if self.item is not None:
            return self.item.collection.series_kind
        if self.kind == "kspace":
            return self.name.removesuffix("_kspace").rsplit("_", 1)[-1]
        return self.kind

    def images(self) -> list:
        return self.maps + self.quality + self.sd + self.b1


def sources(image: Image) -> list[str]:
    """``Sources`` of a sidecar as raw paths relative to the dataset (``bids:raw:`` removed)."""
    src = image.sidecar.get("Sources") or []
    return [s.removeprefix(RAW) for s in ([src] if isinstance(src, str) else src)]


def is_sd(image: Image) -> bool:
    """An uncertainty map: ``desc-<estimator>SD_<suffix>``."""
    return str(image.entities.get("desc", "")).endswith("SD")


def is_out_of_range(image: Image) -> bool:
    return image.suffix == "mask" and "outofrange" in str(image.entities.get("desc", "")).lower()


def group_images(images: list[Image], entries) -> tuple[list[Group], list[Image]]:
    """Groups in the plan's order with their images, and the images of no collection;
    ``entries``: ``(decision dict, CollectionPlan or None)`` per collection."""
    groups = [Group(f"col-{i}", dict(d), item) for i, (d, item) in enumerate(entries)]
    owner = {}
    for g in groups:
        for f in g.decision.get("files") or []:
            owner.setdefault(str(f), g)
    rest = []
    for image in images:
        group = _b1_target(image, groups) or next(
            (owner[s] for s in sources(image) if s in owner), None)
        if group is None:
            rest.append(image)
            continue
        _file(group, image)
    return groups, rest


def _b1_target(image: Image, groups: list[Group]) -> Group | None:
    """The series a ``desc-<kind>_TB1map`` was resampled for (same ``rec``: k-space or not)."""
    desc = str(image.entities.get("desc", "")).lower()
    if image.suffix != "TB1map" or not desc:
        return None
    kspace = "rec" in image.entities
    for g in groups:
        if g.series_kind.lower() == desc and (g.kind == "kspace") == kspace and g.kind not in (
                "TB1map", "TB1TFL", "TB1AFI", "TB1DAM"):
            return g
    return None


def _file(group: Group, image: Image) -> None:
    desc = image.entities.get("desc")
    if image.suffix == "TB1map" and str(desc or "").lower() == group.series_kind.lower():
        group.b1.append(image)
    elif is_out_of_range(image):
        group.out_of_range.append(image)
    elif image.suffix in ("mask", "dseg", "probseg"):
        group.masks.append(image)
    elif image.suffix == group.series_kind:
        group.series.append(image)
    elif is_sd(image):
        group.sd.append(image)
    elif is_fit_quality(image.suffix, desc):
        group.quality.append(image)
    else:
        group.maps.append(image)


def estimator_of(image: Image) -> str:
    """The estimator part of ``desc`` (``varpro`` of ``varproT2``, ``varproRMSE``, ``varproSD``)."""
    desc = str(image.entities.get("desc", ""))
    return re.sub(r"(SD|RMSE|rmse|Match|OutOfRange|T1|T2star|T2)$", "", desc) or desc


def counterpart(image: Image, candidates: list[Image]) -> Image | None:
    """The image among ``candidates`` with the same suffix, estimator and ``rec``/``acq``."""
    key = (image.suffix, estimator_of(image), image.entities.get("rec"), image.entities.get("acq"))
    return next((c for c in candidates if (c.suffix, estimator_of(c), c.entities.get("rec"),
                                           c.entities.get("acq")) == key), None)


@dataclass
class Page:
    """What every reportlet may read: where things go, the run's context, the maps analysed
    (``reports``: path -> :class:`~.analysis.MapReport`), the groups and the unassigned images."""

    output_dir: object
    fig_dir: object
    context: object
    reports: dict
    groups: list
    rest: list
    sessions: list = field(default_factory=list)
    date: str = ""
    cache: object = None  #: the build's :class:`~.cache.FigureCache` (None: draw everything)

    def report(self, image: Image):
        return self.reports.get(image.path)
