"""dnabird.docstrings: attribute docstrings of dataclass fields shown by help() and pydoc."""

from __future__ import annotations

import pydoc
from dataclasses import dataclass, field, make_dataclass

from dnabird.docstrings import document_fields, field_docs


@dataclass
class Base:
    """A base section."""

    lr: float = 1e-4
    """Peak learning rate.

    Warmed up linearly."""
    steps: int = 10
    """Optimiser steps."""


@document_fields
@dataclass
class Child(Base):
    """A derived section."""

    steps: int = 20
    """Optimiser steps of the child."""
    name: str = "run"
    tags: list[str] = field(default_factory=list)
    """Free-form labels."""
    not_a_field = 3
    """A class attribute without annotation is not a field."""


def test_field_docs_come_from_the_source_and_subclasses_win():
    assert field_docs(Child) == {
        "lr": "Peak learning rate.\n\nWarmed up linearly.",
        "steps": "Optimiser steps of the child.",
        "tags": "Free-form labels.",
    }


def test_help_shows_every_field_in_order_with_type_default_and_text():
    text = pydoc.render_doc(Child, renderer=pydoc.plaintext)
    lines = [line.lstrip(" |").rstrip() for line in text.splitlines()]
    start = lines.index("Fields:")
    assert lines[start - 2 : start] == ["A derived section.", ""]
    assert lines[start + 1 : start + 11] == [
        "lr (float, default 0.0001)",
        "Peak learning rate.",
        "",
        "Warmed up linearly.",
        "steps (int, default 20)",
        "Optimiser steps of the child.",
        "name (str, default 'run')",
        "(undocumented)",
        "tags (list[str], default list())",
        "Free-form labels.",
    ]
    assert Base.__doc__ == "A base section."  # only decorated classes change


def test_a_class_without_readable_source_keeps_its_docstring():
    made = make_dataclass("Made", [("x", int, 1)], namespace={"__doc__": "Made at run time."})
    assert field_docs(made) == {}
    assert document_fields(made).__doc__ == "Made at run time."
