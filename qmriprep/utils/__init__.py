"""Small shared helpers of the Nipype shell (file IO only, no science)."""
