#!/usr/bin/env python3
"""Checks README.md and docs/*.md: every backticked repository path exists, every relative
link's file exists, and every #anchor names a heading of its target (GitHub's slugs)."""
import glob, os, re, sys
os.chdir(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
files = ["README.md"] + sorted(glob.glob("docs/*.md"))
TOP = {p.split("/")[0] for p in os.popen("git ls-files").read().split()} | {".ci"}
# Folders the scripts create at run time (services' data, logs): named in the docs, absent
# from a fresh clone.
RUNTIME = (".local/", "data/")
def slug(h):
    h = re.sub(r"[`*_]", "", h.strip().lower())
    h = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h)
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")
def anchors(f):
    out, fence = set(), False
    for line in open(f):
        if line.startswith("```"): fence = not fence
        m = re.match(r"^(#{1,6})\s+(.*)", line)
        if m and not fence: out.add(slug(m.group(2)))
    return out
bad = 0
for f in files:
    text = open(f).read()
    base = os.path.dirname(f)
    # backticked paths: contain a '/' or end in a known extension, first segment is a top-level entry
    for m in re.finditer(r"`([^`\s]+)`", text):
        p = m.group(1).rstrip(".,;:")
        if "://" in p or p.startswith(("/api", "/admin", "/", "$", "-")) or "<" in p or "*" in p or "{" in p or "=" in p:
            continue
        if "/" not in p and not re.search(r"\.(rs|md|sh|py|yaml|yml|json|txt|toml|png|html)$", p):
            continue
        if p.startswith(RUNTIME):
            continue
        first = p.split("/")[0]
        if first not in TOP:
            if "/" in p:
                continue  # e.g. email/daily_report, a path relative to something else
        if first in TOP and not os.path.exists(p):
            print(f"{f}: missing path `{p}`"); bad += 1
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        t = m.group(1)
        if t.startswith(("http://", "https://", "mailto:")): continue
        path, _, anchor = t.partition("#")
        target = os.path.normpath(os.path.join(base, path)) if path else f
        if not os.path.exists(target):
            print(f"{f}: link to missing {t}"); bad += 1; continue
        if anchor and target.endswith(".md") and anchor not in anchors(target):
            print(f"{f}: link to missing anchor {t}"); bad += 1
print(f"{bad} problem(s) in {len(files)} files"); sys.exit(1 if bad else 0)
