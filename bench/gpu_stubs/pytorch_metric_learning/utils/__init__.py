"""Stand-in for PML's utils (bench/gpu_stubs/README.md)."""
