#!/usr/bin/env python3
"""Replace one section of a markdown file, between `<!-- BEGIN name -->` and `<!-- END name -->`,
with stdin (appending the section if the file does not have it yet). Benchmark scripts use it so
that each rewrites only its own part of docs/PERFORMANCE.md."""
import pathlib
import sys

path, name = pathlib.Path(sys.argv[1]), sys.argv[2]
begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
body = f"{begin}\n{sys.stdin.read().rstrip()}\n{end}"
text = path.read_text() if path.exists() else ""
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    text = head + body + rest.split(end, 1)[1]
else:
    text = text.rstrip() + ("\n\n" if text else "") + body + "\n"
path.write_text(text)
