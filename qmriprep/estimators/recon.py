"""Reconstructions of undersampled multi-coil k-space (``--recon``), written as ``rec-<name>``."""

from __future__ import annotations

from .names import CGSENSE, ZEROFILLED, ZSSSL
from .spec import Reconstruction, register

register(Reconstruction(
    name=ZSSSL, default=True, learned=True, settings="recon.zsssl",
    citations=("yaman2022", "ssdu", "fujita2025"),
    label="zero-shot self-supervised learning (ZS-SSL) [@yaman2022; @ssdu] of an unrolled network (a "
          "residual CNN shared by the unrolls alternating with conjugate-gradient data consistency, "
          "contrasts as channels), trained on the scan itself with memory-efficient learning [@fujita2025]",
    algorithm="ZS-SSL: scan-specific zero-shot self-supervised unrolled network (residual CNN + CG data "
              "consistency), k-space split into data-consistency / loss / self-validation sets, "
              "memory-efficient learning (coil sensitivities: see CoilSensitivities)"))
register(Reconstruction(
    name=CGSENSE, default=True, citations=("pruessmann2001",),
    label="CG-SENSE [@pruessmann2001] with Tikhonov regularisation",
    algorithm="CG-SENSE: conjugate gradient on (E^H E + lambda I) x = E^H y (coil sensitivities: see CoilSensitivities)"))
register(Reconstruction(
    name=ZEROFILLED, citations=(), label="zero-filling (coil-combined inverse FFT)",
    algorithm="zero-filled: coil-combined inverse FFT E^H y (coil sensitivities: see CoilSensitivities)"))
