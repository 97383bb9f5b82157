"""Field docstrings of dataclasses, made visible to ``help()`` and ``pydoc``.

Config dataclasses document each field with a string literal right below it (an "attribute
docstring")::

    @document_fields
    @dataclass
    class OptimConfig:
        \"\"\"How the optimiser runs.\"\"\"

        lr: float = 1e-4
        \"\"\"Peak learning rate.\"\"\"

Documentation generators (mkdocstrings/griffe, Sphinx autodoc) read those from the source,
but Python drops them, so ``help(OptimConfig)`` showed none. :func:`document_fields` reads
them from the class's source once (with :mod:`ast`) and appends a ``Fields`` section to the
class docstring at run time, so each text is written once, beside its field, and shown
everywhere. Where the source cannot be read (a frozen application) the docstring is left as
it is.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import textwrap
from typing import TypeVar

T = TypeVar("T", bound=type)


def field_docs(cls: type) -> dict[str, str]:
    """``{name: docstring}`` of the annotated attributes of ``cls`` and its bases that are
    followed by a string literal (cleaned with :func:`inspect.cleandoc`); a subclass's text
    wins over its base's. Empty where the source cannot be read."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(klass: type) -> dict[str, str]:
    """Attribute docstrings written in the body of ``klass`` itself."""
    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):
        return {}
    tree = ast.parse(source)
    body = next(node for node in tree.body if isinstance(node, ast.ClassDef)).body
    docs = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs


def fields_section(cls: type) -> str:
    """The ``Fields`` section for the dataclass ``cls``: every field as ``name (type, default
    value)`` followed by its docstring, indented."""
    docs = field_docs(cls)
    lines = ["Fields:"]
    for field in dataclasses.fields(cls):
        type_name = field.type if isinstance(field.type, str) else field.type.__name__
        if field.default is not dataclasses.MISSING:
            default = f", default {field.default!r}"
        elif field.default_factory is not dataclasses.MISSING:
            default = f", default {getattr(field.default_factory, '__name__', 'factory')}()"
        else:
            default = ", required"
        lines.append(f"    {field.name} ({type_name}{default})")
        text = docs.get(field.name, "(undocumented)")
        lines.extend(f"        {line}" if line else "" for line in text.splitlines())
    return "\n".join(lines)


def document_fields(cls: T) -> T:
    """Class decorator (above ``@dataclass``): append :func:`fields_section` to the class
    docstring, so ``help(cls)`` and ``pydoc`` show every field with its docstring."""
    if not field_docs(cls):
        return cls
    summary = inspect.cleandoc(cls.__doc__ or cls.__name__)
    cls.__doc__ = f"{summary}\n\n{fields_section(cls)}\n"
    return cls
