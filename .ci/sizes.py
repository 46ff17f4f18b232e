#!/usr/bin/env python3
"""Checks the core's size limits: no file in src/ over 500 lines, no non-test function over
120 lines. Usage: python3 .ci/sizes.py [SRC_DIR]. Exit 0 when both hold, 1 otherwise."""
import os
import re
import sys

MAX_FILE, MAX_FN = 500, 120
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def without_tests(lines):
    for i, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]":
            return lines[:i]
    return lines


def functions(lines):
    """(name, first line, length) of each function with a body, by brace depth."""
    i = 0
    while i < len(lines):
        m = FN.match(lines[i])
        if not m:
            i += 1
            continue
        depth, opened, j = 0, False, i
        while j < len(lines):
            code = re.sub(r'"(\\.|[^"\\])*"|//.*', "", lines[j])
            if not opened and ";" in code and "{" not in code:
                break  # a declaration without a body
            depth += code.count("{") - code.count("}")
            opened = opened or "{" in code
            if opened and depth <= 0:
                yield m.group(6), i + 1, j - i + 1
                break
            j += 1
        i += 1


def main(src):
    problems = []
    for root, _, files in os.walk(src):
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
            if len(lines) - 1 > MAX_FILE:
                problems.append(f"{path}: {len(lines) - 1} lines (at most {MAX_FILE})")
            for fn, line, length in functions(without_tests(lines)):
                if length > MAX_FN:
                    problems.append(f"{path}:{line}: fn {fn} is {length} lines (at most {MAX_FN})")
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"every file in {src} is at most {MAX_FILE} lines, every function at most {MAX_FN}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "src"))
