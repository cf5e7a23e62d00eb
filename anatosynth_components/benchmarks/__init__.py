"""Benchmarks run by ``anatosynth benchmark NAME``; one module per benchmark (see
:mod:`anatosynth_components.cli.benchmark`)."""
