#!/usr/bin/env python3
"""Checks what the Dockerfile's cached dependency layer relies on, without a container
engine: deploy/docker/stub-workspace.sh must give

1. the same skeleton twice (same files, bytes and modes), and the same skeleton after every
   .rs file of a copy of the workspace changed its content and time stamp: so a change of
   source leaves Docker's dependency layer cached;
2. a skeleton that resolves, with --locked and offline, to exactly the dependencies (versions
   and features) the real workspace builds the image's binaries with: so the layer holds
   what the real build needs and nothing is compiled twice;
3. a skeleton that cargo accepts and compiles (`cargo check` of every target);

and the Dockerfile must build the same packages, with the same flags, in both stages.

Usage: python3 deploy/docker/check_stub_workspace.py   (from anywhere; exit 0 or 1)
Step 3 builds in `skeleton/` under the target dir (CARGO_TARGET_DIR or target/), apart from
the real build: the stubs' artifacts would otherwise replace the real crates'.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "docker" / "stub-workspace.sh"


def skeleton(src: Path, out: Path) -> None:
    subprocess.run(["sh", str(SCRIPT), str(src), str(out)], check=True)


def tree(root: Path) -> dict:
    """Every file under root: relative path -> (mode, bytes)."""
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            files[str(path.relative_to(root))] = (path.stat().st_mode, path.read_bytes())
    return files


def differences(a: dict, b: dict) -> list:
    names = sorted(set(a) | set(b))
    return [n for n in names if a.get(n) != b.get(n)]


def workspace_copy_with_edited_sources(dest: Path) -> int:
    """Copies the files git knows (tracked and untracked, not ignored) and changes every .rs
    file: one more line, a time stamp in the past. Returns how many were changed."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    edited = 0
    for name in filter(None, listed):
        source = ROOT / name
        if not source.is_file():
            continue  # deleted in the work tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        if name.endswith(".rs"):
            with open(target, "a") as f:
                f.write("// edited by check_stub_workspace.py\n")
            os.utime(target, (1_000_000_000, 1_000_000_000))
            edited += 1
    return edited


def dockerfile_builds() -> list:
    """The `cargo build` commands of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [re.sub(r"\s+", " ", m).strip() for m in re.findall(r"cargo build[^&\n]*", text)]


def packages(command: str) -> list:
    return re.findall(r"-p (\S+)", command)


def dependency_tree(workspace: Path, pkgs: list) -> list:
    """Each package of the build with its enabled features, the workspace path removed."""
    args = ["cargo", "tree", "--locked", "--offline", "-e", "normal,build", "--prefix", "none",
            "-f", "{p} [{f}]"]
    for p in pkgs:
        args += ["-p", p]
    out = subprocess.run(args, cwd=workspace, check=True, capture_output=True, text=True).stdout
    resolved = str(workspace.resolve())
    return sorted(set(line.replace(resolved, "<workspace>") for line in out.splitlines()))


def main() -> int:
    failures = []
    builds = dockerfile_builds()
    if "deploy/docker/stub-workspace.sh" not in (ROOT / "Dockerfile").read_text():
        failures.append("the Dockerfile does not build from deploy/docker/stub-workspace.sh")
    if len(builds) != 2 or builds[0] != builds[1]:
        failures.append(f"the Dockerfile's two cargo builds differ: {builds}")
    pkgs = packages(builds[0]) if builds else []
    if not pkgs:
        failures.append("no `cargo build -p ...` in the Dockerfile")

    with tempfile.TemporaryDirectory(prefix="manifold-skeleton-") as tmp:
        tmp = Path(tmp)
        skeleton(ROOT, tmp / "a")
        skeleton(ROOT, tmp / "b")
        first = tree(tmp / "a")
        if differences(first, tree(tmp / "b")):
            failures.append("two runs gave different skeletons")
        edited = workspace_copy_with_edited_sources(tmp / "copy")
        skeleton(tmp / "copy", tmp / "c")
        changed = differences(first, tree(tmp / "c"))
        if changed:
            failures.append(f"editing {edited} .rs files changed the skeleton: {changed}")
        if any(not name.endswith((".rs", "Cargo.toml", "Cargo.lock")) for name in first):
            failures.append(f"unexpected files in the skeleton: {sorted(first)}")

        if pkgs:
            real = dependency_tree(ROOT, pkgs)
            stub = dependency_tree(tmp / "a", pkgs)
            if real != stub:
                only_real = sorted(set(real) - set(stub))
                only_stub = sorted(set(stub) - set(real))
                failures.append(f"the skeleton resolves other dependencies: "
                                f"real only {only_real}, skeleton only {only_stub}")
            # Every target, as `cargo clippy --workspace --all-targets` checks the real
            # workspace. In a target dir of its own: cargo names a workspace member's
            # artifacts by its path relative to the workspace root, so the stubs would take
            # the real crates' places (a stub build script's output replaced the core's, and
            # the next real build lacked what its build script sets).
            check = ["cargo", "check", "--locked", "--offline", "--quiet", "--workspace",
                     "--all-targets"]
            env = dict(os.environ)
            base = Path(env.get("CARGO_TARGET_DIR", str(ROOT / "target")))
            env["CARGO_TARGET_DIR"] = str(base / "skeleton")
            if subprocess.run(check, cwd=tmp / "a", env=env).returncode != 0:
                failures.append("cargo check of the skeleton failed")
        print(f"skeleton: {len(first)} files; {edited} .rs files edited in a copy; "
              f"{len(pkgs)} packages built by the Dockerfile")

    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    print("stub workspace: " + ("ok" if not failures else f"{len(failures)} problems"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
