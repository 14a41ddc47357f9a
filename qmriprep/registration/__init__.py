"""Rigid registration and resampling of nibabel images (SimpleITK), see :mod:`.rigid`; RAS/LPS
conversions and ITK transform files in :mod:`.itk`; a standard space for group analyses in
:mod:`.template`."""

#: the standard space of group analyses: TemplateFlow's name of nilearn's bundled MNI template
TEMPLATE = "MNI152NLin2009aAsym"
