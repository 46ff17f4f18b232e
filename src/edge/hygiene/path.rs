//! The one path normalisation: repeated slashes collapsed, `.` and `..` segments resolved
//! (also written `%2e`), and the paths no normalisation makes safe refused — encoded slashes
//! and backslashes, control characters raw or encoded, broken percent-escapes, a `..` that
//! climbs out of the root or out of a proxy route's prefix — and `;`, which backends read as
//! a path parameter (`..;/` is `..` to Tomcat, Jetty and Spring): refused, or encoded.

use std::borrow::Cow;

use crate::config::PathSemicolons;

/// The path with repeated slashes collapsed and dot segments resolved; borrowed when it
/// already was. Errors say why the path is refused.
pub fn normalise_path<'a>(
    path: &'a str,
    route_prefixes: &[String],
) -> Result<Cow<'a, str>, &'static str> {
    if !path.starts_with('/') {
        // `*` (OPTIONS) and the like: nothing to route by path.
        return if path == "*" {
            Ok(Cow::Borrowed(path))
        } else {
            Err("must start with '/'")
        };
    }
    check_bytes(path)?;
    if !needs_normalising(path) {
        return Ok(Cow::Borrowed(path));
    }
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        trailing_slash = false;
        match dot_segment(segment) {
            _ if segment.is_empty() => trailing_slash = true,
            Some(1) => trailing_slash = true,
            Some(_) => {
                let before = joined(&stack, true);
                if stack.pop().is_none() {
                    return Err("'..' climbs above the root");
                }
                let after = joined(&stack, true);
                if route_prefixes
                    .iter()
                    .any(|p| before.starts_with(p.as_str()) && !after.starts_with(p.as_str()))
                {
                    return Err("'..' climbs out of the route");
                }
                trailing_slash = true;
            }
            None => stack.push(segment),
        }
    }
    Ok(Cow::Owned(joined(&stack, trailing_slash)))
}

/// `path` with each `;` refused or percent-encoded, as `policy` says.
pub fn semicolons(path: &str, policy: PathSemicolons) -> Result<Cow<'_, str>, &'static str> {
    if !path.contains(';') {
        return Ok(Cow::Borrowed(path));
    }
    match policy {
        PathSemicolons::Reject => Err("';' in the path"),
        PathSemicolons::Encode => Ok(Cow::Owned(path.replace(';', "%3B"))),
    }
}

/// Refuses control characters (raw or encoded), encoded slashes and backslashes, raw
/// backslashes and broken percent-escapes.
fn check_bytes(path: &str) -> Result<(), &'static str> {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_control() {
            return Err("control character");
        }
        if b == b'\\' {
            return Err("backslash");
        }
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or("broken percent-escape")?;
            let text = std::str::from_utf8(hex).map_err(|_| "broken percent-escape")?;
            let decoded = u8::from_str_radix(text, 16).map_err(|_| "broken percent-escape")?;
            if decoded.is_ascii_control() {
                return Err("encoded control character");
            }
            if decoded == b'/' || decoded == b'\\' {
                return Err("encoded slash");
            }
            i += 3;
            continue;
        }
        i += 1;
    }
    Ok(())
}

/// Whether the path holds repeated slashes or (possibly encoded) dot segments.
fn needs_normalising(path: &str) -> bool {
    // One pass over the bytes: two slashes in a row, or a dot or an escape (a dot segment
    // holds one); most paths have neither, and the segments are not looked at.
    let mut after_slash = false;
    let mut maybe_dots = false;
    for &b in path.as_bytes() {
        if b == b'/' {
            if after_slash {
                return true;
            }
            after_slash = true;
        } else {
            after_slash = false;
            maybe_dots |= b == b'.' || b == b'%';
        }
    }
    maybe_dots
        && path
            .split('/')
            .skip(1)
            .any(|segment| dot_segment(segment).is_some())
}

/// `Some(1)` for `.`, `Some(2)` for `..`, also written with `%2e`.
fn dot_segment(segment: &str) -> Option<u8> {
    match segment.len() {
        1 | 3 | 2 | 4 | 6 => {}
        _ => return None,
    }
    let mut dots = 0u8;
    let mut rest = segment;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case("%2e") {
            rest = &rest[3..];
        } else {
            return None;
        }
        dots += 1;
    }
    (1..=2).contains(&dots).then_some(dots)
}

fn joined(stack: &[&str], trailing_slash: bool) -> String {
    let mut out = String::with_capacity(stack.iter().map(|s| s.len() + 1).sum::<usize>() + 1);
    for segment in stack {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || stack.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(path: &str) -> Result<String, &'static str> {
        normalise_path(path, &["/api/accounts/".to_owned()]).map(Cow::into_owned)
    }

    #[test]
    fn clean_paths_are_borrowed() {
        assert!(matches!(
            normalise_path("/api/accounts/42", &[]),
            Ok(Cow::Borrowed(_))
        ));
        assert!(matches!(
            normalise_path("/a/..b/c.", &[]),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn slashes_and_dot_segments_are_normalised() {
        assert_eq!(
            norm("//api///accounts//42").as_deref(),
            Ok("/api/accounts/42")
        );
        assert_eq!(norm("/./graphql").as_deref(), Ok("/graphql"));
        assert_eq!(norm("/x/../graphql").as_deref(), Ok("/graphql"));
        assert_eq!(
            norm("/api/accounts/41/../42").as_deref(),
            Ok("/api/accounts/42")
        );
        assert_eq!(
            norm("/api/accounts/41/%2E%2e/42").as_deref(),
            Ok("/api/accounts/42")
        );
        assert_eq!(norm("/a/b/.").as_deref(), Ok("/a/b/"));
        assert_eq!(norm("/a/b/").as_deref(), Ok("/a/b/"));
        assert_eq!(norm("/").as_deref(), Ok("/"));
    }

    #[test]
    fn escaping_dots_and_dangerous_bytes_are_refused() {
        assert!(norm("/..").is_err());
        assert!(norm("/a/../../etc/passwd").is_err());
        assert!(norm("/api/accounts/../invoices/1").is_err());
        assert!(norm("/api/accounts/%2e%2e/invoices").is_err());
        assert!(norm("/api/accounts/..%2F..%2Fadmin").is_err());
        assert!(norm("/api/accounts/a%2fb").is_err());
        assert!(norm("/api/accounts/a%5Cb").is_err());
        assert!(norm("/api/accounts/a%00").is_err());
        assert!(norm("/api/accounts/a%0d%0aSet-Cookie:x").is_err());
        assert!(norm("/api/accounts/%zz").is_err());
        assert!(norm("/api/accounts/%2").is_err());
    }

    #[test]
    fn semicolons_are_refused_or_encoded() {
        assert_eq!(
            semicolons("/a/b", PathSemicolons::Reject),
            Ok(Cow::Borrowed("/a/b"))
        );
        assert!(semicolons("/a/..;/b", PathSemicolons::Reject).is_err());
        assert!(semicolons("/a;x=1", PathSemicolons::Reject).is_err());
        let encoded = semicolons("/api/accounts/..;/admin", PathSemicolons::Encode).unwrap();
        assert_eq!(encoded, "/api/accounts/..%3B/admin");
        // Encoded, `..;` is a plain segment: nothing climbs.
        assert_eq!(norm(&encoded).as_deref(), Ok("/api/accounts/..%3B/admin"));
    }
}
