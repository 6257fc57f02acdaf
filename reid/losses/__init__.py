"""Losses, one file per family, and the Objective that owns their weights."""
