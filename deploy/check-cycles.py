#!/usr/bin/env python3
"""Lists import cycles between the files (modules) of each crate of the workspace and fails
on any. An edge a -> b means a file names the module b through `crate::…`, `super::…` or
`self::…` (in `use` lines and in paths in code); a module is one `.rs` file. A child naming
its parent's items (`super::Item`) counts, so a parent may not name its child back through
`crate::`. Run by CI; `python3 deploy/check-cycles.py`."""

import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]*;)", re.M | re.S)
GROUP = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*?)\};", re.S)


def crates():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in ("target", ".git", "node_modules", ".local")]
        if "Cargo.toml" in filenames and os.path.isdir(os.path.join(dirpath, "src")):
            yield os.path.join(dirpath, "src")


def modules(src):
    """Maps module path (tuple) -> file, for every .rs file under src."""
    found = {}
    for dirpath, _, filenames in os.walk(src):
        for name in filenames:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            found[tuple(rel)] = os.path.join(dirpath, name)
    return found


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)


def resolve(module, head, rest, mods):
    if head == "crate":
        base = ()
    elif head == "self":
        base = module
    else:
        base = module[:-1]
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    path = base + tuple(rest)
    # The longest prefix that is a file of its own.
    for n in range(len(path), -1, -1):
        if path[:n] in mods:
            return path[:n]
    return None


def edges(mods):
    graph = {m: set() for m in mods}
    for module, file in mods.items():
        text = strip_comments(open(file, encoding="utf-8").read())
        refs = []
        uses = " ".join(USE.findall(text))
        for m in GROUP.finditer(uses):
            prefix = [p for p in m.group(2).split("::") if p]
            for item in re.split(r"[,{}\s]+", m.group(3)):
                item = item.split("::")[0]
                if item and item not in ("self", "*"):
                    refs.append((m.group(1), prefix + [item]))
                elif item == "self":
                    refs.append((m.group(1), prefix))
        for m in PATH.finditer(GROUP.sub("", uses) + " " + USE.sub("", text)):
            refs.append((m.group(1), [p for p in m.group(2).split("::") if p]))
        for head, rest in refs:
            target = resolve(module, head, rest, mods)
            if target is not None and target != module and not module[: len(target)] == target[: len(module)] == module:
                # a module naming its own descendants through `self::` is not an edge back
                graph[module].add(target)
    return graph


def cycles(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def name(module):
    return "::".join(module) or "crate root"


def main():
    failed = 0
    for src in sorted(crates()):
        mods = modules(src)
        graph = edges(mods)
        for comp in cycles(graph):
            failed += 1
            crate = os.path.relpath(os.path.dirname(src), ROOT)
            members = sorted(comp)
            print(f"{crate}: import cycle between " + ", ".join(name(m) for m in members))
            for m in members:
                for t in sorted(graph[m] & set(comp)):
                    print(f"    {name(m)} -> {name(t)}")
    if failed:
        print(f"{failed} import cycle(s) inside crates; break each by moving the item to where its users are")
        return 1
    print("no import cycles inside crates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
