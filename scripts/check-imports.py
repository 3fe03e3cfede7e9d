#!/usr/bin/env python3
"""Reports import cycles between the files of src/, and imports that point up a layer
(ARCHITECTURE.md, "Bird's-eye view" and "Invariants").

An edge runs from a file to the file that defines what one of its `use crate::…` or
`use super::…` lines names (the longest module path that exists). `pub use` re-exports
are not edges: they are how a folder's mod.rs shows its children. A parent that declares
`mod child;` is not an edge either, so `child -> super` alone is never a cycle.
Exits 1 and prints each cycle and each upward import when there is one.
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

# The layers of ARCHITECTURE.md, outermost first: a module imports only from its own
# layer or the layers after it.
LAYERS = [
    ["main", "cli"],
    ["app"],
    ["server"],
    ["gateway"],
    ["config"],
    ["adapters", "auth", "data", "limits", "outbox", "session"],
    ["menu", "hours"],
    ["message", "text", "diagnostic", "template", "secret", "logs", "metrics"],
]
LAYER = {m: i for i, names in enumerate(LAYERS) for m in names}


def top_module(path):
    parts = module_path(path)
    return parts[0] if parts else "lib"


def module_file(parts):
    """The file of the longest existing module prefix of `parts` (under src/)."""
    for n in range(len(parts), 0, -1):
        base = SRC.joinpath(*parts[:n])
        for candidate in (base.with_suffix(".rs"), base / "mod.rs"):
            if candidate.is_file():
                return candidate
    return SRC / "lib.rs"


def module_path(path):
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def use_targets(path, text):
    here = module_path(path)
    for m in re.finditer(r"^use (crate|super)::([^;]+);", text, re.M):
        root, rest = m.group(1), m.group(2)
        base = [] if root == "crate" else here[:-1]
        # `use super::{a, b::C}` or `use crate::x::{y, z}`: split the braces one level.
        head, _, tail = rest.partition("{")
        head_parts = [p for p in head.strip().rstrip(":").split("::") if p]
        names = [t.strip() for t in tail.rstrip("}").split(",")] if tail else [""]
        for name in names:
            extra = [p for p in name.split("::") if p and p != "self"] if name else []
            parts = base + head_parts + extra
            # `use super::X` where X is an item: the longest existing module wins.
            yield module_file(parts) if parts else SRC / "lib.rs"


def main():
    graph = {}
    for path in sorted(SRC.rglob("*.rs")):
        text = path.read_text()
        text = text.split("#[cfg(test)]")[0]
        graph[path] = {t for t in use_targets(path, text) if t != path}
    cycles, state, stack = [], {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    for c in cycles:
        print("import cycle: " + " -> ".join(str(p.relative_to(SRC.parent)) for p in c))
    upward = []
    for node, targets in sorted(graph.items()):
        here = top_module(node)
        for t in sorted(targets):
            there = top_module(t)
            if here == "lib" or there == "lib" or here == there:
                continue
            if here not in LAYER or there not in LAYER:
                upward.append(f"module not in a layer: {here if here not in LAYER else there}")
            elif LAYER[there] < LAYER[here]:
                upward.append(
                    f"upward import: {node.relative_to(SRC.parent)} ({here}) uses "
                    f"{t.relative_to(SRC.parent)} ({there})"
                )
    for u in sorted(set(upward)):
        print(u)
    if cycles or upward:
        return 1
    print(f"no import cycle and no upward import among {len(graph)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
