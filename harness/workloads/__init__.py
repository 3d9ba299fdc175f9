"""Workloads: what a cell runs on a loaded model. Kinds are registered in harness.matrix."""
