#!/usr/bin/env python3
"""Fails when files of one crate import each other in a circle.

Each `.rs` file under a crate's `src/` is a node; `use crate::a::b::...` (and
`crate::a::b::` paths in code) make an edge to the file that defines module `a::b`
(the deepest module path that is a file). `super::x` resolves likewise. A `mod.rs` or
`lib.rs` declaring its children is not an edge (declaring is not importing). Prints
each cycle and exits 1; exits 0 when there is none. Usage: check-cycles.py [CRATE_DIR...]
"""
import os
import re
import sys

PATH = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")
USE = re.compile(r"\buse\s+([^;]+);")
CHILD = re.compile(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)


def expand(tree):
    """`a::{b, c::{d}}` -> ["a::b", "a::c::d"] (aliases and globs dropped)."""
    tree = re.sub(r"\s+", "", tree)
    depth, i = 0, tree.find("{")
    if i < 0:
        return [tree.split("as")[0] if "::" in tree else tree]
    head, body = tree[:i], tree[i + 1 : tree.rfind("}")]
    parts, cur = [], ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p in ("", "*"):
            continue
        for e in expand(p):
            out.append(head + e if e != "self" else head.rstrip(":"))
    return out


def modules(src):
    """Map module path tuple -> file."""
    out = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, src)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            if "bin" in rel[:1]:
                continue
            out[tuple(rel)] = full
    return out


def module_of(path, mods):
    for k, v in mods.items():
        if v == path:
            return k
    return None


def edges(mods):
    graph = {f: set() for f in mods.values()}
    for mod, f in mods.items():
        text = open(f, encoding="utf-8").read()
        # Drop comments so doc links do not count.
        text = re.sub(r"//[^\n]*", "", text)
        # A file's own unit tests (`mod tests` at its end) import the file itself
        # (`super::*`); `$crate` paths in macros are the caller's, not this file's.
        text = re.split(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)[0]
        text = text.replace("$crate", "")
        children = set(CHILD.findall(text))
        found = list(PATH.findall(text))
        for tree in USE.findall(text):
            for path in expand(tree):
                segs = path.split("::")
                if segs[0] in ("crate", "super"):
                    found.append((segs[0], "::" + "::".join(segs[1:])))
                elif segs[0] in children:
                    # `use child::x` in a module file: an edge to its own child.
                    found.append(("crate", "::" + "::".join(list(mod) + segs)))
        for root, rest in found:
            parts = rest.split("::")[1:]
            base = list(mod) if root == "super" else []
            if root == "super":
                is_dir_mod = os.path.basename(f) in ("mod.rs",)
                base = base if is_dir_mod else base[:-1]
                base = base[:-1] if is_dir_mod else base
            target = None
            full = base + parts
            for n in range(len(full), -1, -1):
                if tuple(full[:n]) in mods:
                    target = mods[tuple(full[:n])]
                    break
            if target and target != f:
                graph[f].add(target)
    return graph


def cycles(graph):
    found, index, low, stack, on, n = [], {}, {}, [], set(), [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def main():
    crates = sys.argv[1:] or ["formats", "reader", "engine", "statetool", "control"]
    bad = 0
    for c in crates:
        mods = modules(os.path.join(c, "src"))
        for comp in cycles(edges(mods)):
            bad += 1
            print(f"{c}: import cycle between " + ", ".join(comp))
            g = edges(mods)
            for a in comp:
                for b in sorted(g[a] & set(comp)):
                    print(f"    {a} -> {b}")
    if bad:
        sys.exit(1)
    print(f"no import cycles in {', '.join(crates)}")


if __name__ == "__main__":
    main()
