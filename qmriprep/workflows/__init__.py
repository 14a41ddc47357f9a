"""Nipype workflow graphs: they only wire interfaces (``init_*_wf`` factories, keyword-only)."""
