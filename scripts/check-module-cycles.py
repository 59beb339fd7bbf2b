#!/usr/bin/env python3
"""Fails when the crate's modules import each other in a cycle.

Reads every `use crate::…`, `crate::…` path and `super::…` path in src/, and builds two graphs:
top-level modules (`chats` → `accounts`) and files (`chats/service.rs` → `store/chats.rs`).
A module may use its own submodules freely; an edge from a file to its parent module's
`mod.rs` (or `lib.rs`) re-exports does not count as a cycle by itself. Prints every cycle.

    scripts/check-module-cycles.py [SRC_DIR]
"""
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
src = os.path.normpath(src)

files = {}
for root, _, names in os.walk(src):
    for name in names:
        if name.endswith(".rs"):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)
            files[rel] = open(path, encoding="utf-8").read()


def module_of(rel):
    """`chats/service.rs` → ['chats', 'service']; `chats/mod.rs` → ['chats']."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def file_for(parts):
    """The file that defines module path `parts` (longest existing prefix)."""
    for n in range(len(parts), 0, -1):
        base = os.path.join(*parts[:n])
        for candidate in (base + ".rs", os.path.join(base, "mod.rs")):
            if candidate in files:
                return candidate
    return None


code_only = re.compile(r"//.*?$|/\*.*?\*/", re.S | re.M)
path_re = re.compile(r"\b(crate|super)((?:::\w+)+)")
file_edges = {rel: set() for rel in files}
for rel, text in files.items():
    here = module_of(rel)
    text = code_only.sub("", text)
    # The test modules of a file may reach anywhere.
    text = text.split("#[cfg(test)]")[0]
    for start, rest in path_re.findall(text):
        segments = rest.strip(":").split("::")
        if start == "crate":
            target = segments
        else:
            base = here[:-1]
            while segments and segments[0] == "super":
                segments = segments[1:]
                base = base[:-1]
            target = base + segments
        dest = file_for(target)
        if dest and dest != rel:
            file_edges[rel].add(dest)


def cycles(graph):
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def top(rel):
    parts = module_of(rel)
    return parts[0] if parts else "lib"


module_edges = {}
for a, targets in file_edges.items():
    for b in targets:
        ta, tb = top(a), top(b)
        if ta != tb and "lib" not in (ta, tb):
            module_edges.setdefault(ta, set()).add(tb)

# Within one module, a file using its parent's re-exports (`super::Chats`) is how Rust modules
# are read; only cycles between sibling files and across modules are reported.
def is_parent(a, b):
    return b.endswith("mod.rs") and os.path.dirname(a).startswith(os.path.dirname(b))

sibling_edges = {a: {b for b in bs if not is_parent(a, b) and not is_parent(b, a)} for a, bs in file_edges.items()}

problems = [("modules", c) for c in cycles(module_edges)] + [("files", c) for c in cycles(sibling_edges)]
for kind, cycle in problems:
    print(f"import cycle between {kind}: {' -> '.join(cycle)}")
if problems:
    sys.exit(1)
print(f"no import cycles: {len(files)} files, {len(module_edges)} modules with outgoing edges")
