"""Placeholder: the cross_stitch family is written in its own change."""
