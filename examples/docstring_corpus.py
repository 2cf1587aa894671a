"""Real English text that ships with PyTorch's own dependencies: the docstrings of NetworkX and SymPy.

The fine-tuning examples build their data sets from it offline: docstrings are read from the installed packages'
source files with `ast` (nothing is imported or downloaded), prose paragraphs are kept (doctests, section
underlines, directives, field lists and indented blocks are not prose), and paragraphs are split into sentences.
Splits are made by hashing a key (a sentence, a source file), so they never depend on a seed or on the order of
files.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

# Docstring lines that are not prose: doctests, reST markup, section underlines, indented code or parameters.
NOT_PROSE = re.compile(r"^\s*(>>>|\.\.\.|[-=~^]{3,}|\.\. |:)|^\s{4,}")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def source_files(package: str) -> list[Path]:
    """The installed package's Python files, tests excluded, in a fixed order."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ValueError(f"The package {package!r} is not installed; it ships with PyTorch, reinstall torch.")
    return [path for path in sorted(Path(spec.origin).parent.rglob("*.py")) if "tests" not in path.parts]


def package_root(package: str) -> Path:
    """The folder that holds the package, so that `path.relative_to(package_root(...))` names a file stably."""
    return Path(importlib.util.find_spec(package).origin).parent.parent


def docstrings(path: Path) -> Iterator[str]:
    """The docstrings of a source file's module, classes and functions."""
    tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            docstring = ast.get_docstring(node)
            if docstring:
                yield docstring


def prose_paragraphs(docstring: str) -> list[str]:
    """Runs of prose lines, each joined into one line."""
    paragraphs, lines = [], []
    for line in docstring.splitlines() + [""]:
        if not line.strip() or NOT_PROSE.match(line):
            if lines:
                paragraphs.append(" ".join(lines))
                lines = []
        else:
            lines.append(line.strip())
    return paragraphs


def sentences(paragraph: str, boundary: re.Pattern = SENTENCE_END) -> list[str]:
    return boundary.split(paragraph)


def hash_fraction(key: str) -> float:
    """A number in [0, 1) that depends only on `key`: `hash_fraction(key) < 0.2` puts a fifth of the keys aside."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 16**8
