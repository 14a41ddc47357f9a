"""Rigid registration and resampling of nibabel images (SimpleITK), see :mod:`.rigid`."""
