"""Figures from tables only (no torch)."""
