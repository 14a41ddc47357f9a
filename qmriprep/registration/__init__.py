"""Rigid registration and resampling of nibabel images (SimpleITK), see :mod:`.rigid`; RAS/LPS
conversions and ITK transform files in :mod:`.itk`."""
