"""Dagster assets, one module per pipeline step; each is thin and calls manifpt_core."""
