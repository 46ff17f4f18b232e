//! Credentials in the config as values of their own type: read from the file like any string,
//! compared by value (a reload notices a changed password), but never printed — `Debug`,
//! `Display` and `Serialize` all show a redaction. Code that needs the real value asks for it
//! by name with `expose()`, so every place a credential leaves the config is easy to find.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What is shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// A credential (token, key hash, password) that is never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value, for the code that uses the credential (never for logs or responses).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// A URL that may carry credentials in its user info (`redis://:password@host:6379/0`).
/// Shown with only the credential blanked, so operators still see where it points:
/// `redis://:<redacted>@host:6379/0`, `https://user:<redacted>@idp/jwks`; a user info without
/// a colon is taken for a token and blanked whole. A URL without user info shows in full.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real URL, credentials included, for the code that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the credential in its user info replaced by `<redacted>`. Text that is
    /// not recognisably a URL is blanked whole, since its credential cannot be located.
    pub fn redacted(&self) -> String {
        let url = self.0.as_str();
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return REDACTED.to_owned();
        };
        let (scheme, rest) = url.split_at(scheme_end);
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let Some(at) = authority.rfind('@') else {
            return url.to_owned();
        };
        let (user_info, host) = authority.split_at(at);
        let user = match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:{REDACTED}"),
            None => REDACTED.to_owned(),
        };
        format!("{scheme}{user}{host}{path}")
    }
}

impl From<String> for SecretUrl {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretUrl {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretUrl)
    }
}

/// In the JSON Schema a credential is the string it is written as.
impl JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A credential: read as written, never shown (logs and the admin API print <redacted>).",
        })
    }
}

impl JsonSchema for SecretUrl {
    fn schema_name() -> Cow<'static, str> {
        "SecretUrl".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A URL that may carry a credential in its user info; shown with the credential replaced by <redacted>.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_compared_but_never_shown() {
        let token = Secret::new("hunter2-hunter2-hunter2");
        assert_eq!(token, Secret::from("hunter2-hunter2-hunter2"));
        assert_ne!(token, Secret::from("something-else"));
        assert_eq!(token.expose(), "hunter2-hunter2-hunter2");
        for shown in [
            format!("{token:?}"),
            format!("{token}"),
            format!("{:#?}", Some(&token)),
            serde_json::to_string(&token).unwrap(),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
        let read: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(read.expose(), "abc");
    }

    #[test]
    fn a_url_shows_everything_but_its_credential() {
        let cases = [
            (
                "redis://:hunter2@127.0.0.1:6379/0",
                "redis://:<redacted>@127.0.0.1:6379/0",
            ),
            (
                "redis://admin:hunter2@cache:6390",
                "redis://admin:<redacted>@cache:6390",
            ),
            (
                "https://hunter2@idp.example/jwks.json",
                "https://<redacted>@idp.example/jwks.json",
            ),
            (
                "https://u:p@ss:hunter2@idp/a@b",
                "https://u:<redacted>@idp/a@b",
            ),
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("not a url hunter2", REDACTED),
        ];
        for (url, shown) in cases {
            let secret = SecretUrl::from(url);
            assert_eq!(secret.to_string(), shown);
            assert_eq!(format!("{secret:?}"), format!("{shown:?}"));
            assert_eq!(serde_json::to_value(&secret).unwrap(), shown);
            assert_eq!(secret.expose(), url);
        }
        assert_ne!(
            SecretUrl::from("redis://:a@h:1/0"),
            SecretUrl::from("redis://:b@h:1/0"),
            "equal when printed, but different URLs"
        );
    }
}
