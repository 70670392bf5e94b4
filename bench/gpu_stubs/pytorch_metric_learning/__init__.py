"""Stand-in for pytorch-metric-learning 2.9.0: only what bench/gpu_check.py's imports use
(bench/gpu_stubs/README.md)."""

__version__ = "stub"
