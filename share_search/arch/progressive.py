"""Placeholder: the progressive family is written in its own change."""
