//! Loading: TOML text -> `MANIFOLD_*` environment overrides -> typed `Config` -> validation.
//! Every problem found is collected and reported at once, each with where it is (the file's
//! line and column, or the environment variable that set the key) and its key path, like a
//! compiler's errors: an operator fixes a config in one pass, not one error per run.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::Config;
use super::keypath::line_column;
use super::places::Places;

/// Prefix of environment variables that override config keys. Path segments are separated
/// by a double underscore: `MANIFOLD_UPSTREAMS__ACCOUNTS__URL=http://10.0.0.5:9201`.
pub const ENV_PREFIX: &str = "MANIFOLD_";

/// One problem with a config: where it is, the key it is about and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
    /// Where: `None` for a config built in code.
    pub origin: Option<Origin>,
}

/// Where a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// In the config file, at a 1-based line and column (in characters); `at` is `None`
    /// where no place in the file fits (a key it does not have, in no table it has).
    File {
        file: String,
        at: Option<(usize, usize)>,
    },
    /// In the value of this environment variable (a `MANIFOLD_*` override).
    Env(String),
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            origin: None,
        }
    }

    /// The problem with where it is in front.
    pub fn located(&self) -> Located<'_> {
        Located(self)
    }

    /// The order problems are listed in: through the file, then the environment's.
    pub(super) fn order(&self) -> (u8, usize, usize) {
        match &self.origin {
            Some(Origin::File {
                at: Some((l, c)), ..
            }) => (0, *l, *c),
            Some(Origin::File { at: None, .. }) => (1, 0, 0),
            Some(Origin::Env(_)) => (2, 0, 0),
            None => (3, 0, 0),
        }
    }
}

/// `upstreams.cart.timeout: must be greater than 0`: what is wrong; `located` adds where.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// A problem shown with where it is, as compilers write errors (editors and terminals jump to
/// `file:line:column`): `config/mobile.toml:12:11: upstreams.cart.timeout: ...`, or
/// `$MANIFOLD_SERVER__LISTEN: server.listen: ...` for a value from the environment.
pub struct Located<'e>(&'e ConfigError);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.origin {
            Some(Origin::File {
                file,
                at: Some((line, column)),
            }) => write!(f, "{file}:{line}:{column}: ")?,
            Some(Origin::File { file, at: None }) => write!(f, "{file}: ")?,
            Some(Origin::Env(var)) => write!(f, "${var}: ")?,
            None => {}
        }
        write!(f, "{}", self.0)
    }
}

/// Every problem found in one config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    pub source: String,
    pub errors: Vec<ConfigError>,
}

/// One line per problem, then one that sums them up.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.errors {
            writeln!(f, "{}", e.located())?;
        }
        let n = self.errors.len();
        let s = if n == 1 { "" } else { "s" };
        write!(f, "{}: invalid configuration, {n} problem{s}", self.source)
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
    /// Syntax errors stop there; otherwise unknown keys, values serde cannot read and the
    /// sections' own checks are all reported together.
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
        let (file, syntax) = DeTable::parse_recoverable(text);
        let places = Places::new(text, source, file.get_ref());
        if !syntax.is_empty() {
            let at = |e: &toml::de::Error| e.span().map(|s| line_column(text, s.start));
            return Err(fail(
                syntax
                    .iter()
                    .map(|e| places.in_file(String::new(), e.message(), at(e)))
                    .collect(),
            ));
        }
        let overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        let (config, errors) = places.check(&overrides, required_upstreams);
        match config {
            Some(config) if errors.is_empty() => Ok(config),
            _ => Err(fail(errors)),
        }
    }
}

fn read(path: &Path) -> Result<String, ConfigErrors> {
    let file = path.display().to_string();
    std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        errors: vec![ConfigError {
            key: String::new(),
            message: format!("cannot read the file: {e}"),
            origin: Some(Origin::File {
                file: file.clone(),
                at: None,
            }),
        }],
        source: file,
    })
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
        let shown: Vec<String> = err.errors.iter().map(|e| e.located().to_string()).collect();
        assert_eq!(
            shown,
            [
                "test:7:30: upstreams.accounts.retry.attempts: must be 1 to 10",
                "test:8:25: upstreams.accounts.breaker.min_calls: must be greater than 0",
                "test:9:19: upstreams.accounts.health.path: must start with '/'",
                "test:10:24: upstreams.accounts.outlier.ejection: must be greater than 0",
                "test:11:31: upstreams.accounts.bulkhead.max_concurrent: must be greater than 0",
            ]
        );
    }

    /// Seven mistakes of both kinds, in three sections: all of them in one run, in the order
    /// of the file, each at its line and column (the key's for an unknown key, else the
    /// value's), each line once, with no trailing `in ...` line of serde's.
    #[test]
    fn every_mistake_of_a_file_in_one_run_with_line_and_column() {
        let text = "[server]\nlisten = \"127.0.0.1:0\"\ncolour = \"red\"\nrequest_timeout = 5\n\
                    max_request_body = \"64 parsecs\"\n\n[limits]\nmax_headers = \"many\"\n\n\
                    [upstreams.bogus]\nurl = \"ftp://bogus.internal\"\npool_max_idle = true\n\
                    retry = { attempts = 0 }\n";
        let err = Config::parse(text, "bad.toml", env(&[]), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad.toml:3:1: server.colour: unknown key\n\
             bad.toml:4:19: server.request_timeout: expected a duration like \"800ms\", \"5s\" or \"1m 30s\", got integer `5`\n\
             bad.toml:5:20: server.max_request_body: unknown size unit \"parsecs\" in \"64 parsecs\"\n\
             bad.toml:8:15: limits.max_headers: expected usize, got string \"many\"\n\
             bad.toml:11:7: upstreams.bogus.url: \"ftp://bogus.internal\" must be an http:// or https:// URL\n\
             bad.toml:12:17: upstreams.bogus.pool_max_idle: expected usize, got boolean `true`\n\
             bad.toml:13:22: upstreams.bogus.retry.attempts: must be 1 to 10\n\
             bad.toml: invalid configuration, 7 problems"
        );
    }

    /// A required key that is absent is shown at its table; one taken out because its value
    /// was wrong is not "missing" too; and the entries after a broken one keep their index.
    #[test]
    fn list_entries_keep_their_index_past_a_broken_one() {
        let text = "[server]\nlisten = \"127.0.0.1:0\"\n[upstreams.a]\nurl = \"http://a\"\n\
                    [[routes]]\nprefix = 5\nupstream = \"a\"\n\
                    [[routes]]\nupstream = \"a\"\n\
                    [[routes]]\nprefix = \"nope\"\nupstream = \"a\"\nauth = \"none\"\ncolour = 1\n";
        let err = Config::parse(text, "t", env(&[]), &[]).unwrap_err();
        let shown: Vec<String> = err.errors.iter().map(|e| e.located().to_string()).collect();
        assert_eq!(
            shown,
            [
                "t:6:10: routes[0].prefix: expected a string, got integer `5`",
                "t:8:1: routes[1].prefix: is required",
                "t:11:10: routes[2].prefix: must start and end with '/', e.g. \"/api/accounts/\"",
                "t:14:1: routes[2].colour: unknown key",
            ]
        );
    }

    /// A problem with a value from the environment names the variable, not a place in the
    /// file; one the environment cannot express is named by its variable too.
    #[test]
    fn a_problem_from_the_environment_names_the_variable() {
        let err = Config::parse(
            MINIMAL,
            "test",
            env(&[
                ("MANIFOLD_UPSTREAMS__ACCOUNTS__TIMEOUT", "soon"),
                ("MANIFOLD_SERVER__DRAIN_DELAY", "1h"),
                ("MANIFOLD_SERVER____LISTEN", "x"),
                ("MANIFOLD_UPSTREAMS__NEW__TIMEOUT", "1s"),
            ]),
            &[],
        )
        .unwrap_err();
        let shown: Vec<String> = err.errors.iter().map(|e| e.located().to_string()).collect();
        assert_eq!(shown.len(), 4, "{err}");
        // A table the file does not have, made by a variable: named by that variable.
        assert!(
            shown.contains(
                &"$MANIFOLD_UPSTREAMS__NEW__TIMEOUT: upstreams.new: needs `url` or `instances`"
                    .to_owned()
            ),
            "{err}"
        );
        assert!(
            shown.contains(
                &"$MANIFOLD_SERVER____LISTEN: empty path segment (use `__` between keys)"
                    .to_owned()
            ),
            "{err}"
        );
        assert!(shown.iter().any(|s| s.starts_with("$MANIFOLD_UPSTREAMS__ACCOUNTS__TIMEOUT: upstreams.accounts.timeout: invalid duration \"soon\"")), "{err}");
        assert!(shown.contains(&"$MANIFOLD_SERVER__DRAIN_DELAY: server.drain_delay: must be shorter than server.shutdown_timeout (the hard deadline counts from the signal)".to_owned()), "{err}");
    }

    /// A wrong type for the one required key of the root leaves nothing to validate, but the
    /// other sections' mistakes are still all listed.
    #[test]
    fn a_broken_listen_address_still_lets_the_rest_be_read() {
        let text =
            "[server]\nlisten = 8080\n[limits]\nmax_headers = -1\n[graphql]\nmode = \"staging\"\n";
        let err = Config::parse(text, "t", env(&[]), &[]).unwrap_err();
        let shown: Vec<String> = err.errors.iter().map(|e| e.located().to_string()).collect();
        assert_eq!(
            shown,
            [
                "t:2:10: server.listen: expected socket address, got integer `8080`",
                "t:4:15: limits.max_headers: expected usize, got integer `-1`",
                "t:6:8: graphql.mode: unknown variant `staging`, expected `production` or `development`",
            ]
        );
    }

    /// Syntax errors are all listed at their place; nothing is read past them.
    #[test]
    fn syntax_errors_are_placed_too() {
        let err = Config::parse("[server\nlisten = 1\n", "t", env(&[]), &[]).unwrap_err();
        assert!(
            err.errors[0].located().to_string().starts_with("t:1:8: "),
            "{err}"
        );
        assert!(err.errors.iter().all(|e| e.key.is_empty()), "{err}");
    }
}
