//! Where each config problem is, for the operator to find it: the line and column in the
//! file (of the key itself for an unknown key, of the value otherwise, of the table for a key
//! it lacks), or the `MANIFOLD_*` variable that set the key. It also runs the steps whose
//! problems it places: environment overrides, reading every mistake, the validation pass.

use super::env::apply_override;
use super::keypath::{KeyPath, line_column, locate};
use super::load::{ENV_PREFIX, Origin};
use super::recover::{self, MistakeKind};
use super::{Config, ConfigError};
use toml::de::DeTable;

/// Keys that were removed, with what to write instead: an old config gets that, not "unknown
/// key".
const REMOVED_KEYS: [(&str, &str); 2] = [
    super::graphql::REMOVED_INTROSPECTION,
    super::observe::REMOVED_ALLOW_PUBLIC,
];

/// The config text as parsed, to tell where each problem is.
pub(super) struct Places<'t> {
    text: &'t str,
    source: &'t str,
    file: &'t DeTable<'t>,
    /// The keys the environment set, with the variable that set each.
    set_by_env: Vec<(KeyPath, String)>,
}

impl<'t> Places<'t> {
    pub(super) fn new(text: &'t str, source: &'t str, file: &'t DeTable<'t>) -> Self {
        Self {
            text,
            source,
            file,
            set_by_env: Vec::new(),
        }
    }

    /// Applies the overrides, reads the tree and validates what it read: the config, if it
    /// could be read, and every problem, in the order of the file.
    pub(super) fn check(
        mut self,
        overrides: &[(String, String)],
        required_upstreams: &[&str],
    ) -> (Option<Config>, Vec<ConfigError>) {
        let mut errors = Vec::new();
        let mut tree = self.file.clone();
        for (name, raw) in overrides {
            match apply_override(&mut tree, &name[ENV_PREFIX.len()..], raw) {
                Ok(path) => self.set_by_env.push((path, name.clone())),
                Err(message) => errors.push(ConfigError {
                    key: String::new(),
                    message,
                    origin: Some(Origin::Env(name.clone())),
                }),
            }
        }
        let read = recover::read_all::<Config>(tree);
        for mistake in &read.mistakes {
            let key = mistake.path.to_string();
            let message = match REMOVED_KEYS.iter().find(|(old, _)| *old == key) {
                Some((_, instead)) if mistake.kind == MistakeKind::Unknown => instead.to_string(),
                _ => mistake.message.clone(),
            };
            errors.push(self.error(&mistake.path, key, message, mistake.kind));
        }
        if let Some(config) = &read.value {
            for problem in config.validate(required_upstreams) {
                // Checks see the config as read, without what was taken out: keep quiet
                // about what those removals did, and name list entries by the file's index.
                let path = read.removed.original(&KeyPath::parse(&problem.key));
                if read.removed.touches(&path) {
                    continue;
                }
                let key = match path == KeyPath::parse(&problem.key) {
                    true => problem.key,
                    false => path.to_string(),
                };
                errors.push(self.error(&path, key, problem.message, MistakeKind::Invalid));
            }
        }
        errors.sort_by_key(ConfigError::order);
        (read.value, errors)
    }

    /// A problem about `path`.
    fn error(
        &self,
        path: &KeyPath,
        key: String,
        message: String,
        kind: MistakeKind,
    ) -> ConfigError {
        ConfigError {
            key,
            message,
            origin: Some(self.origin(path, kind)),
        }
    }

    /// Where `path` is: the variable that set it (or set something in it that the file does
    /// not have); else its place in the file, at the key itself for an unknown key, at its
    /// value otherwise (a table's header, the nearest one for a key the file lacks); else
    /// the file as a whole.
    fn origin(&self, path: &KeyPath, kind: MistakeKind) -> Origin {
        let set_by = |found: &dyn Fn(&KeyPath) -> bool| {
            self.set_by_env
                .iter()
                .find(|(set, _)| found(set))
                .map(|(_, var)| Origin::Env(var.clone()))
        };
        if let Some(env) = set_by(&|set| path.starts_with(set)) {
            return env;
        }
        let spans = locate(self.file, path);
        if spans.as_ref().is_none_or(|s| !s.exact)
            && let Some(env) = set_by(&|set| set.starts_with(path))
        {
            return env;
        }
        let at = spans.map(|s| {
            let offset = match kind {
                MistakeKind::Unknown => s.key.start,
                MistakeKind::Invalid | MistakeKind::Missing => s.value.start,
            };
            line_column(self.text, offset)
        });
        Origin::File {
            file: self.source.to_owned(),
            at,
        }
    }

    pub(super) fn in_file(
        &self,
        key: String,
        message: &str,
        at: Option<(usize, usize)>,
    ) -> ConfigError {
        ConfigError {
            key,
            message: message.to_owned(),
            origin: Some(Origin::File {
                file: self.source.to_owned(),
                at,
            }),
        }
    }
}
