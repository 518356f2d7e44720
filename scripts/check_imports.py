#!/usr/bin/env python3
"""Print vqkit's cross-package imports and fail on one that points up a layer.

The layers (STYLE rule 12), top to bottom; a module may import its own package, any package of
a lower layer, and a package of its own layer only where :data:`SAME_LAYER` allows it (so that
a layer holds no cycle)::

    cli
    training  evaluation  reports  codes  probing
    models  quantizers  data  audio  figures
    config  errors  utils  paths  distributed  checkpoint  runlog  rates  rundir

Every import counts, at module level or inside a function. Usage::

    python scripts/check_imports.py            # the graph, then "ok" or the upward imports
    python scripts/check_imports.py --quiet    # only problems

Exit status 1 when an import points up (or sideways where not allowed), 0 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = "vqkit"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE

LAYERS: list[list[str]] = [
    ["cli", "__main__"],
    ["training", "evaluation", "reports", "codes", "probing"],
    ["models", "quantizers", "data", "audio", "figures"],
    ["config", "errors", "utils", "paths", "distributed", "checkpoint", "runlog", "rates",
     "rundir", "__init__"],
]
# Imports allowed between packages of one layer: (importer, imported).
SAME_LAYER = {
    ("__main__", "cli"),
    ("models", "quantizers"),
    ("figures", "audio"),
    ("data", "audio"),
    ("models", "audio"),  # code search scores speech on the mel (audio.intelligibility)
    ("evaluation", "codes"),
    ("reports", "evaluation"),
    ("training", "evaluation"),
    ("training", "codes"),  # a prior trains on the code cache
    ("probing", "codes"),
    ("probing", "training"),
    ("probing", "evaluation"),
    ("codes", "evaluation"),
    ("config", "errors"),
    ("utils", "errors"),
    ("paths", "errors"),
    ("checkpoint", "config"),
    ("checkpoint", "errors"),
    ("checkpoint", "utils"),
    ("checkpoint", "paths"),
    ("runlog", "utils"),
    ("rundir", "errors"),
    ("runlog", "errors"),
    ("rates", "config"),
    ("config", "utils"),
    ("distributed", "errors"),
    ("__init__", "config"),
    ("__init__", "errors"),
}


def unit_of(module: str) -> str:
    """``vqkit.training.loop`` -> ``training``; ``vqkit.config.presets`` -> ``config``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(unit: str) -> int:
    for i, names in enumerate(LAYERS):
        if unit in names:
            return i
    raise SystemExit(f"check_imports: {unit!r} is in no layer; add it to LAYERS")


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported vqkit module) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path)
    is_pkg = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith(PACKAGE)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith(PACKAGE):
                found.append((node.lineno, target))
    return found


def check(quiet: bool = False) -> int:
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        src_unit = unit_of(module_name(path)) if path.parent != SRC else path.stem
        if path.parent == SRC and path.stem == "__init__":
            src_unit = "__init__"
        for line, target in imports_of(path):
            dst_unit = unit_of(target)
            if dst_unit == src_unit:
                continue
            where = f"{path.relative_to(SRC.parent)}:{line}"
            edges[(src_unit, dst_unit)].append(where)
            a, b = layer_of(src_unit), layer_of(dst_unit)
            if b < a or (b == a and (src_unit, dst_unit) not in SAME_LAYER):
                problems.append(f"{where}: {src_unit} -> {dst_unit} ({target}) points "
                                f"{'up' if b < a else 'sideways'}")
    if not quiet:
        for (a, b), wheres in sorted(edges.items(), key=lambda kv: (layer_of(kv[0][0]), kv[0])):
            print(f"{a:>12} -> {b:<12} {len(wheres):3d} import(s)")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} import(s) against the layers", file=sys.stderr)
        return 1
    if not quiet:
        print("ok: no import points up a layer")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quiet", action="store_true", help="print only the problems")
    return check(ap.parse_args(argv).quiet)


if __name__ == "__main__":
    sys.exit(main())
