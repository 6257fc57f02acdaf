"""Blocks shared by several methods."""
