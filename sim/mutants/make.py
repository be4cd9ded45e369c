#!/usr/bin/env python3
"""Regenerates the planted-bug patches from (file, old, new) triples: each is applied to the
work tree, captured with `git diff`, and reverted. Not needed to run them (run.sh applies the
.patch files); kept so a patch that stops applying can be re-cut against a moved tree."""
import pathlib, subprocess, sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
MUTANTS = [
    # (name, target, what, file, old, new)
]
exec(open(pathlib.Path(__file__).with_name("mutants.py")).read())

def main(only):
    for name, target, what, path, old, new in MUTANTS:
        if only and name not in only:
            continue
        f = ROOT / path
        text = f.read_text()
        olds, news = (old, new) if isinstance(old, tuple) else ((old,), (new,))
        for o, n in zip(olds, news):
            if text.count(o) != 1:
                sys.exit(f"{name}: the text to change occurs {text.count(o)} times in {path}")
            text = text.replace(o, n)
        f.write_text(text)
        try:
            diff = subprocess.run(["git", "diff", "-U5", "--", path], cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout
        finally:
            subprocess.run(["git", "checkout", "--", path], cwd=ROOT, check=True)
        header = f"Planted bug: {what}\nTarget: {target}\n\n"
        (ROOT / "sim/mutants" / f"{name}.patch").write_text(header + diff)
        print(f"{name}.patch")

main(sys.argv[1:])
