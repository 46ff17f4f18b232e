//! Records the commit the core was built from, for `--version`: `MANIFOLD_COMMIT` when the
//! build sets it (a container build without `.git`: `--build-arg`), else `git rev-parse` of
//! the checkout, else "unknown". Rebuilt when HEAD moves.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MANIFOLD_COMMIT");
    // HEAD, and the branch it points at (its ref file, or the packed refs of a fresh clone):
    // only files that exist, as a missing one would rerun this script on every build.
    let mut watched = vec![".git/HEAD".to_owned(), ".git/packed-refs".to_owned()];
    if let Ok(head) = std::fs::read_to_string(".git/HEAD")
        && let Some(reference) = head.trim().strip_prefix("ref: ")
    {
        watched.push(format!(".git/{reference}"));
    }
    for path in watched.iter().filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
    let commit = std::env::var("MANIFOLD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=MANIFOLD_COMMIT={commit}");
}
