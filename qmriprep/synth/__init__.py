"""Synthetic qMRI BIDS datasets with known truth, for the demo and the tests.

- :func:`qmriprep.synth.phantom.make_phantom`: a brain phantom (MNI152 tissue maps, 3 T tissue
  values, smooth B1+ and off-resonance fields);
- :func:`qmriprep.synth.dataset.write_dataset`: a BIDS dataset simulated from it with the project's
  signal models (:mod:`qmriprep.synth.contrasts`) as a :class:`~qmriprep.synth.dataset.DatasetSpec`
  says, plus ``derivatives/truth``; phase-cycled bSSFP (``modalities=(..., "bSSFP")``) from
  :mod:`qmriprep.synth.bssfp`;
- :func:`demo_dataset`: the built-in demo; ``python -m qmriprep.synth OUT`` on the command line.
"""

from __future__ import annotations

from .contrasts import PROTOCOL
from .dataset import ALL_MODALITIES, DEFAULT_MOTION, MODALITIES, DatasetSpec, write_dataset
from .phantom import TISSUES, Phantom, make_phantom

#: settings of the built-in demo: 4 mm voxels, 16 central axial slices (39 x 48 x 16 voxels,
#: about 12 000 in the brain; B1 maps 20 x 24 x 8 at 8 mm), one subject, all modalities
#: (16 MESE echoes, 8 MEGRE echoes, 4 VFA flips, DAM, AFI, TFL, 12-cycle pc-bSSFP, DESS), SNR 100,
#: VFA flip 2 moved, and 8-coil k-space (ISMRMRD) of the 16 MESE echoes (2-D), the 4 VFA flips and DESS
#: (3-D) undersampled 4x: a small matrix (48 phase encodes) that shows the pipeline, not the
#: reconstruction quality (that is in benchmarks/RESULTS.md)
DEMO = DatasetSpec(subjects=("01",), snr=100.0, downsample=4, n_slices=16, seed=0,
                   modalities=tuple(m for m in ALL_MODALITIES if m != "MRF"), b1_downsample=2, motion=True, bssfp_cycles=(12,),
                   kspace={"contrasts": ("MESE", "VFA", "DESS"), "acceleration": 4,
                           "mese_echoes": 16})


def demo_dataset(out_dir, *, overwrite=False):
    """Write the built-in demo dataset (see :data:`DEMO`) to ``out_dir``; return its path."""
    return write_dataset(out_dir, DEMO, overwrite=overwrite)


__all__ = ["ALL_MODALITIES", "DEFAULT_MOTION", "DEMO", "MODALITIES", "PROTOCOL", "TISSUES",
           "DatasetSpec", "Phantom", "demo_dataset", "make_phantom", "write_dataset"]
