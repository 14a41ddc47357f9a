"""Command-line interface: parse arguments, configure, run."""
