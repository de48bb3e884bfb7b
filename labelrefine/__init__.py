"""labelrefine: camera-aware pseudo-label refinement for unsupervised re-identification."""

__version__ = "0.1.0"
