"""mkdocs hook: show the Sphinx roles of dnabird's docstrings as plain code.

The docstrings cross-reference with Sphinx roles (``:class:`~dnabird.outputs.OutputFolder```),
which ``help()`` and editors show as they are; mkdocstrings renders docstrings as Markdown, so
the role's name would stay in the text. This turns ``:role:`~a.b.C``` into ``C``,
``:role:`a.b.C``` into ``a.b.C`` and ``:role:`text <target>``` into ``text``, as Sphinx does.
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj|const):<code>(~?)([^<]*)</code>")


def _plain(match: re.Match) -> str:
    tilde, text = match.groups()
    if "&lt;" in text:  # `text <target>`
        text = text.split("&lt;", 1)[0].strip()
    elif tilde:
        text = text.rsplit(".", 1)[-1]
    return f"<code>{text}</code>"


def on_page_content(html: str, **kwargs) -> str:
    return _ROLE.sub(_plain, html)
