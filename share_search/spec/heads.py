"""Which head a task gets: by its type, or as the spec's ``tasks.<t>.head`` says (torch-free).

A per-sample task (one label per input) gets a linear head on the last stage; a dense one
(one label per pixel) a decoder that upsamples to the input's resolution. The heads
themselves are ``nn.Module`` builders in ``arch.heads``, found by name in ``registry.HEADS``.
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from ..errors import shown

DENSE_TASK_TYPES: tuple[str, ...] = ("segmentation", "depth", "normals", "binary_dense")
PER_SAMPLE_HEAD = "linear"
DENSE_HEAD = "deeplab"  # DeepLabv3's ASPP decoder (Chen et al. 2017)


def default_head(task_type: str) -> str:
    """The head a task of ``task_type`` gets when the spec names none."""
    return DENSE_HEAD if task_type in DENSE_TASK_TYPES else PER_SAMPLE_HEAD


class HeadChoice(BaseModel):
    """``tasks.<t>.head``: a head's name, or ``{name: ..., <option>: ...}`` with its options.

    Written back (``spec.resolved.yaml``) the way a user writes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any) -> "HeadChoice":
        if isinstance(value, HeadChoice):
            return value
        if isinstance(value, str):
            return cls(name=value)
        if isinstance(value, Mapping) and isinstance(value.get("name"), str):
            if set(value) == {"name", "options"} and isinstance(value["options"], Mapping):  # the model's own dump
                return cls(name=value["name"], options=dict(value["options"]))
            return cls(name=value["name"], options={k: v for k, v in value.items() if k != "name"})
        raise ValueError(f"expected a head's name or {{name: NAME, <option>: VALUE, ...}}, got {shown(value)}")

    @model_serializer
    def _as_written(self):
        return {"name": self.name, **self.options} if self.options else self.name
