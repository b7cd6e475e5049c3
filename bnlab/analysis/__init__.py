"""Aggregation of run folders into study tables (pure pandas, no Snakemake)."""
