//! Loading: TOML text -> `MANIFOLD_*` environment overrides -> typed `Config` -> validation.
//! Every problem found is collected and reported at once, each with its key path, so an
//! operator fixes a config in one pass instead of one error per restart.

use std::fmt;
use std::path::{Path, PathBuf};

use super::Config;

/// Prefix of environment variables that override config keys. Path segments are separated
/// by a double underscore: `MANIFOLD_UPSTREAMS__ACCOUNTS__URL=http://10.0.0.5:9201`.
pub const ENV_PREFIX: &str = "MANIFOLD_";

/// Keys that were removed, with what to write instead: an old config gets that, not "unknown
/// key".
const REMOVED_KEYS: [(&str, &str); 2] = [
    super::graphql::REMOVED_INTROSPECTION,
    super::observe::REMOVED_ALLOW_PUBLIC,
];

/// One problem with a config: the key it is about and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in one config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    pub source: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Invalid configuration ({}):", self.source)?;
        for e in &self.errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Where a config came from, for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadSource {
    File(PathBuf),
    Embedded,
}

impl fmt::Display for LoadSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadSource::File(p) => write!(f, "{}", p.display()),
            LoadSource::Embedded => f.write_str("embedded default config"),
        }
    }
}

impl Config {
    /// Reads `path`, or `default_path` when it exists, or else `embedded` (the BFF's built-in
    /// default), applies the process environment's `MANIFOLD_*` overrides and validates.
    pub fn load(
        path: Option<&Path>,
        default_path: &Path,
        embedded: &str,
        required_upstreams: &[&str],
    ) -> Result<(Config, LoadSource), ConfigErrors> {
        let (text, source) = match path {
            Some(p) => (read(p)?, LoadSource::File(p.to_path_buf())),
            None if default_path.exists() => (
                read(default_path)?,
                LoadSource::File(default_path.to_path_buf()),
            ),
            None => (embedded.to_owned(), LoadSource::Embedded),
        };
        let config = Config::parse(
            &text,
            &source.to_string(),
            std::env::vars(),
            required_upstreams,
        )?;
        Ok((config, source))
    }

    /// Parses and validates config text with the given environment (tests pass their own).
    pub fn parse(
        text: &str,
        source: &str,
        env: impl IntoIterator<Item = (String, String)>,
        required_upstreams: &[&str],
    ) -> Result<Config, ConfigErrors> {
        let fail = |errors| ConfigErrors {
            source: source.to_owned(),
            errors,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| fail(vec![ConfigError::new("", e.to_string())]))?;
        let mut errors = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if let Err(e) = apply_override(&mut table, rest, &value) {
                errors.push(ConfigError::new(name.clone(), e));
            }
        }

        let mut unknown = Vec::new();
        let mut note_unknown =
            |path: serde_ignored::Path<'_>| unknown.push(normalise_path(&path.to_string()));
        let typed: Result<Config, _> = serde_path_to_error::deserialize(
            serde_ignored::Deserializer::new(toml::Value::Table(table), &mut note_unknown),
        );
        errors.extend(unknown.into_iter().map(|key| {
            let removed = REMOVED_KEYS.iter().find(|(old, _)| *old == key);
            let message = removed.map_or("unknown key", |(_, instead)| instead);
            ConfigError::new(key, message)
        }));
        match typed {
            Ok(config) => {
                errors.extend(config.validate(required_upstreams));
                if errors.is_empty() {
                    Ok(config)
                } else {
                    Err(fail(errors))
                }
            }
            Err(e) => {
                let key = normalise_path(&e.path().to_string());
                errors.push(ConfigError::new(key, e.into_inner().to_string()));
                Err(fail(errors))
            }
        }
    }
}

fn read(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        source: path.display().to_string(),
        errors: vec![ConfigError::new("", format!("cannot read the file: {e}"))],
    })
}

/// `upstreams.accounts.?.timeout` / `routes.0.prefix` -> `upstreams.accounts.timeout` / `routes[0].prefix`.
fn normalise_path(raw: &str) -> String {
    let mut out = String::new();
    for segment in raw.split('.').filter(|s| !s.is_empty() && *s != "?") {
        if segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(segment);
            out.push(']');
        } else {
            if !out.is_empty() && !segment.starts_with('[') {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// Sets `SERVER__LISTEN` (already without the prefix) in the table. The value is read as a
/// TOML value when it is one (`10`, `true`, `["a"]`), else as a string.
fn apply_override(table: &mut toml::Table, key: &str, raw: &str) -> Result<(), String> {
    let segments: Vec<String> = key.split("__").map(|s| s.to_ascii_lowercase()).collect();
    if segments.iter().any(String::is_empty) {
        return Err("empty path segment (use `__` between keys)".into());
    }
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));

    let (last, parents) = segments.split_last().ok_or("empty key")?;
    let mut node = table;
    for segment in parents {
        let entry = node
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            toml::Value::Array(items) => {
                // `ROUTES__0__PREFIX`: an index into an array of tables.
                return set_in_array(items, &segments, segment, last, value);
            }
            _ => return Err(format!("`{segment}` is not a table")),
        };
    }
    node.insert(last.clone(), value);
    Ok(())
}

fn set_in_array(
    items: &mut [toml::Value],
    segments: &[String],
    array_key: &str,
    last: &str,
    value: toml::Value,
) -> Result<(), String> {
    let pos = segments.iter().position(|s| s == array_key).unwrap_or(0);
    let rest = &segments[pos + 1..];
    let [index, field] = rest else {
        return Err(format!(
            "arrays can be overridden one field deep: {array_key}__<index>__<field>"
        ));
    };
    debug_assert_eq!(field, last);
    let index: usize = index
        .parse()
        .map_err(|_| format!("`{index}` is not an index into `{array_key}`"))?;
    match items.get_mut(index) {
        Some(toml::Value::Table(t)) => {
            t.insert(field.clone(), value);
            Ok(())
        }
        _ => Err(format!("`{array_key}` has no table at index {index}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [server]
        listen = "127.0.0.1:0"

        [upstreams.accounts]
        url = "http://127.0.0.1:9201"
        timeout = "250ms"

        [[routes]]
        prefix = "/api/accounts/"
        upstream = "accounts"
        rewrite = "/accounts/"
        auth = "none"
    "#;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_drain_delay_must_end_before_the_hard_deadline() {
        let config = Config::parse(MINIMAL, "test", env(&[]), &["accounts"]).expect("valid");
        assert_eq!(config.server.drain_delay, std::time::Duration::ZERO);
        let delayed = env(&[("MANIFOLD_SERVER__DRAIN_DELAY", "2s")]);
        let config = Config::parse(MINIMAL, "test", delayed, &["accounts"]).expect("valid");
        assert_eq!(config.server.drain_delay, std::time::Duration::from_secs(2));
        let too_long = env(&[
            ("MANIFOLD_SERVER__DRAIN_DELAY", "10s"),
            ("MANIFOLD_SERVER__SHUTDOWN_TIMEOUT", "10s"),
        ]);
        let errors = Config::parse(MINIMAL, "test", too_long, &["accounts"]).expect_err("invalid");
        assert_eq!(errors.errors[0].key, "server.drain_delay");
    }

    #[test]
    fn a_minimal_config_loads_with_defaults() {
        let config = Config::parse(MINIMAL, "test", env(&[]), &["accounts"]).expect("valid");
        assert_eq!(
            config.upstreams["accounts"].timeout,
            std::time::Duration::from_millis(250)
        );
        assert_eq!(
            config.server.request_timeout,
            std::time::Duration::from_secs(3)
        );
    }

    #[test]
    fn env_overrides_reach_nested_keys_and_array_entries() {
        let config = Config::parse(
            MINIMAL,
            "test",
            env(&[
                ("MANIFOLD_UPSTREAMS__ACCOUNTS__URL", "http://10.1.2.3:80"),
                ("MANIFOLD_UPSTREAMS__ACCOUNTS__POOL_MAX_IDLE", "7"),
                ("MANIFOLD_ROUTES__0__PREFIX", "/u/"),
                ("OTHER_VAR", "ignored"),
            ]),
            &[],
        )
        .expect("valid");
        assert_eq!(
            config.upstreams["accounts"].url.as_deref(),
            Some("http://10.1.2.3:80")
        );
        assert_eq!(config.upstreams["accounts"].pool_max_idle, 7);
        assert_eq!(config.routes[0].prefix, "/u/");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let text = MINIMAL.replace("timeout = \"250ms\"", "timeout = \"0s\"\ncolour = \"red\"");
        let err = Config::parse(&text, "test", env(&[]), &["accounts", "invoices"]).unwrap_err();
        let keys: Vec<&str> = err.errors.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"upstreams.accounts.colour"), "{err}");
        assert!(keys.contains(&"upstreams.accounts.timeout"), "{err}");
        assert!(keys.contains(&"upstreams.invoices"), "{err}");
    }

    #[test]
    fn a_type_error_names_its_key() {
        let text = MINIMAL.replace("timeout = \"250ms\"", "timeout = \"soon\"");
        let err = Config::parse(&text, "test", env(&[]), &[]).unwrap_err();
        assert_eq!(err.errors[0].key, "upstreams.accounts.timeout", "{err}");
        assert!(err.errors[0].message.contains("soon"), "{err}");
    }

    #[test]
    fn a_serialised_config_reads_back_as_the_same_values() {
        let text = format!(
            "{MINIMAL}\n[graphql]\noperation_timeouts = {{ Home = \"1m 30s\" }}\n\
             [client_ip]\ntrusted_proxies = [\"10.0.0.0/8\"]\n\
             [[auth.jwt]]\njwks_url = \"http://idp/jwks\"\nissuer = \"a\"\naudience = \"web\"\n"
        );
        let config = Config::parse(&text, "test", env(&[]), &[]).expect("valid");
        let shown = serde_json::to_value(&config).expect("serialisable");
        assert_eq!(shown["upstreams"]["accounts"]["timeout"], "250ms");
        assert_eq!(shown["server"]["max_request_body"], 1 << 20);
        let read: Config = serde_json::from_value(shown).expect("reads back");
        assert_eq!(read, config);
    }

    #[test]
    fn every_upstream_policy_reports_its_own_key() {
        let text = MINIMAL.replace(
            "timeout = \"250ms\"",
            "retry = { attempts = 0 }\nbreaker = { min_calls = 0 }\n\
             health = { path = \"x\" }\noutlier = { ejection = \"0s\" }\n\
             bulkhead = { max_concurrent = 0 }",
        );
        let err = Config::parse(&text, "test", env(&[]), &[]).unwrap_err();
        let shown: Vec<String> = err.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "upstreams.accounts.retry.attempts: must be 1 to 10",
                "upstreams.accounts.breaker.min_calls: must be greater than 0",
                "upstreams.accounts.bulkhead.max_concurrent: must be greater than 0",
                "upstreams.accounts.health.path: must start with '/'",
                "upstreams.accounts.outlier.ejection: must be greater than 0",
            ]
        );
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalise_path("auth.jwt.?.foo"), "auth.jwt.foo");
        assert_eq!(normalise_path("routes.0.prefix"), "routes[0].prefix");
    }
}
