"""An import-linter contract for what its own contracts cannot name: a submodule of an external package.

import-linter's graph knows external packages only by their top-level name (``PySide6``), so "the
view-models import no ``PySide6.QtWidgets``" cannot be a ``forbidden`` contract. This one reads the
import lines grimp recorded for each source module's imports of the package and refuses the ones that
name a forbidden submodule (``from PySide6.QtWidgets import ...``, ``import PySide6.QtWidgets``,
``from PySide6 import QtWidgets``).
"""

from __future__ import annotations

import re

from grimp import ImportGraph
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck

__all__ = ["ForbiddenSubmodulesContract"]


class ForbiddenSubmodulesContract(Contract):
    """Options: ``source_modules`` (packages, with their submodules) and ``forbidden_submodules``
    (dotted names inside an external package, e.g. ``PySide6.QtWidgets``)."""

    source_modules = fields.ListField(subfield=fields.StringField())
    forbidden_submodules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        broken: list[str] = []
        sources = set()
        for name in self.source_modules:  # type: ignore[attr-defined]
            sources.add(name)
            sources |= graph.find_descendants(name)
        for forbidden in self.forbidden_submodules:  # type: ignore[attr-defined]
            package, _, child = forbidden.partition(".")
            pattern = re.compile(
                rf"(from\s+{re.escape(forbidden)}\b|import\s+{re.escape(forbidden)}\b"
                rf"|from\s+{re.escape(package)}\s+import\s+.*\b{re.escape(child)}\b)"
            )
            for module in sorted(sources):
                for detail in graph.get_import_details(importer=module, imported=package):
                    if pattern.search(detail["line_contents"]):
                        broken.append(f"{module}:{detail['line_number']}: {detail['line_contents']}")
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        from importlinter.application import output

        for line in check.metadata["broken"]:
            output.print_error(line)
