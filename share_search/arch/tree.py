"""Placeholder: the tree family is written in its own change."""
