"""Griffe extension: render glrjax's Sphinx-flavoured docstrings as Markdown for mkdocstrings.

The docstrings are written for ``help()`` and doctests (they run in CI), so they are left
as they are in the source; only the copy that mkdocstrings renders is rewritten:

- ``:func:`name``` (and ``:class:``, ``:meth:``, ``:mod:``, ``:attr:``) becomes a
  cross-reference to the rendered object, resolved from the docstring's scope outwards;
  a name that is not rendered on any API page stays plain code.
- a doctest at the left margin (``>>> ...`` and its output) becomes a ``pycon`` code block
  instead of a nested Markdown blockquote.
- a single ``*`` in prose (x*, ∂x*/∂θ) is escaped so that two of them do not turn the
  text between into italics.

Indented code blocks (display formulas), fenced blocks and Google ``Example(s):`` sections
are not touched.
"""

from __future__ import annotations

import os
import re
import sys

import griffe

RENDERED = {  # modules with an API page (docs/api/*.md)
    "compare",
    "curse",
    "glr",
    "gradients",
    "graph",
    "images",
    "implicit",
    "iterate",
    "l2g",
    "linear",
    "primal_dual",
    "prox",
    "proximal",
    "reconstruction",
    "sharding",
}
ROLE = re.compile(r":(?:py:)?(func|class|meth|mod|attr|data|obj|exc):`(~?)([\w.]+)(\(\))?`")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LONE_STAR = re.compile(r"(?<![*\\])\*(?!\*)")
SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns|Return|Yields|Raises|Attributes|Example|"
    r"Examples|Note|Notes|Warning|Warnings|Other Parameters|Receives|Warns|References)\s*:\s*$"
)
VERBATIM_SECTIONS = ("Example", "Examples")
BROKEN_ROLE = re.compile(r"(:(?:py:)?\w+:`~?[\w.]*)\n[ \t]*([\w.]*`)")  # a role cut by a line break
PARAM_SECTIONS = ("Args", "Arguments", "Parameters", "Params", "Attributes")
SHARED_PARAMS = re.compile(r"^(\s+)(\w+(?:,\s*\w+)+):(.*)$")  # "tau, sigma: one description"
DEBUG = os.environ.get("GLRJAX_DOCS_DEBUG", "") not in ("", "0")


class GlrjaxDocstrings(griffe.Extension):
    def on_package(self, *, pkg, loader, **kwargs):
        if pkg.name != "glrjax":
            return
        self.root = pkg
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = self.rewrite(obj.docstring.value, obj)

    on_package_loaded = on_package  # the hook's name before griffe 2 (rewriting is idempotent)

    # ------------------------------------------------------------------ cross-references
    def lookup(self, path: str, depth: int = 0):
        """The object at ``path`` (following aliases), or None."""
        parts = path.split(".")
        if parts[0] != self.root.name or depth > 10:
            return None
        obj = self.root
        for i, name in enumerate(parts[1:], start=1):
            member = obj.members.get(name)
            if member is None:
                return None
            if member.is_alias:
                rest = ".".join(parts[i + 1 :])
                target = member.target_path + ("." + rest if rest else "")
                return self.lookup(target, depth + 1)
            obj = member
        return obj

    def resolve(self, target: str, scope) -> str | None:
        """Canonical path of ``target`` seen from ``scope``, if it is rendered on a page."""
        candidates = []
        node = scope
        while node is not None:
            candidates.append(f"{node.path}.{target}")
            node = node.parent
        candidates.append(target)
        for path in candidates:
            obj = self.lookup(path)
            if obj is None:
                continue
            parts = obj.path.split(".")
            if any(p.startswith("_") for p in parts):
                return None
            if len(parts) >= 2 and parts[1] in RENDERED:
                return obj.path
            return None
        return None

    def role(self, match, scope) -> str:
        _, tilde, target, parens = match.groups()
        title = (target.rsplit(".", 1)[-1] if tilde else target) + (parens or "")
        path = self.resolve(target, scope)
        if path is None:
            if DEBUG:
                print(f"[docs] unresolved {match.group(0)} in {scope.path}", file=sys.stderr)
            return f"`{title}`"
        return f"[`{title}`][{path}]"

    # ------------------------------------------------------------------ text
    def prose(self, line: str, scope) -> str:
        line = ROLE.sub(lambda m: self.role(m, scope), line)
        pieces, last = [], 0
        for m in CODE_SPAN.finditer(line):
            pieces.append(LONE_STAR.sub(r"\\*", line[last : m.start()]))
            pieces.append(m.group(0))
            last = m.end()
        pieces.append(LONE_STAR.sub(r"\\*", line[last:]))
        return "".join(pieces)

    def rewrite(self, text: str, scope) -> str:
        lines = BROKEN_ROLE.sub(r"\1\2", text).split("\n")
        out: list[str] = []
        section = None  # the Google section we are in (None: free text)
        fence = False
        code = False  # inside an indented Markdown code block
        i = 0
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            indent = len(line) - len(line.lstrip())
            if stripped.startswith("```"):
                fence = not fence
                out.append(line)
                i += 1
                continue
            if fence:
                out.append(line)
                i += 1
                continue
            if not stripped:
                out.append(line)
                i += 1
                continue
            if indent == 0:
                code = False
                header = SECTION.match(stripped)
                if header:
                    section = header.group(1)
                    out.append(line)
                    i += 1
                    continue
                section = None
                if stripped.startswith(">>>"):  # a doctest at the margin: a pycon block
                    block = []
                    while i < len(lines) and lines[i].strip():
                        block.append(lines[i])
                        i += 1
                    if out and out[-1].strip():
                        out.append("")
                    out += ["```pycon", *block, "```"]
                    if i < len(lines):
                        out.append("")
                    continue
            elif section in PARAM_SECTIONS and SHARED_PARAMS.match(line):
                # "a, b: text" documents two parameters at once: give each its own entry.
                pad, names, first = SHARED_PARAMS.match(line).groups()
                rest = []
                i += 1
                while i < len(lines) and lines[i].strip() and _indent(lines[i]) > len(pad):
                    rest.append(lines[i])
                    i += 1
                for name in re.split(r",\s*", names):
                    out.append(self.prose(f"{pad}{name}:{first}", scope))
                    out += [self.prose(r, scope) for r in rest]
                continue
            elif section == "Example" and stripped.startswith(">>>"):
                # Griffe renders an "Example:" section as Markdown: fence its doctest.
                block = []
                while i < len(lines) and lines[i].strip():
                    block.append(lines[i])
                    i += 1
                pad = " " * indent
                out += [pad + "```pycon", *block, pad + "```"]
                continue
            elif section is None:
                previous_blank = i > 0 and not lines[i - 1].strip()
                if indent >= 4 and (code or previous_blank):
                    code = True
            if code or section in VERBATIM_SECTIONS:
                out.append(line)
            else:
                out.append(self.prose(line, scope))
            i += 1
        return "\n".join(out)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _walk(obj):
    yield obj
    for member in obj.members.values():
        if member.is_alias:
            continue
        yield from _walk(member)
