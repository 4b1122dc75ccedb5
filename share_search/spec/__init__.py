"""The spec: YAML to validated, frozen models (``spec.model``), the registries, the families' options; no torch."""
