"""Renderers. Each reads only the results model (harness.results.Report)."""
