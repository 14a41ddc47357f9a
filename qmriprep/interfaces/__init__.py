"""Nipype interfaces: thin wrappers that load files, call one core function and save the results."""
