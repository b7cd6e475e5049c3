"""Figures from aggregated tables (matplotlib, print-size, PNG)."""
