//! The `[auth]` section: which token issuers are trusted (`[[auth.jwt]]`, one entry per
//! issuer), the partner API keys, and which client headers are identity-bearing and so
//! always stripped at the edge.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::validate::{Problems, is_http_url, positive};
use super::{Secret, SecretUrl, ca_client_config, units};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuthConfig {
    /// Trusted token issuers. `[auth.jwt]` (one issuer) and `[[auth.jwt]]` (several) are
    /// both accepted.
    #[serde(default, deserialize_with = "one_or_many")]
    #[schemars(schema_with = "one_or_many_schema")]
    pub jwt: Vec<JwtConfig>,
    /// Partner API keys by key id. Only hashes are stored.
    #[serde(default)]
    pub api_keys: BTreeMap<String, ApiKeyConfig>,
    /// Partners identified by their client certificate (`[tls] client_ca`), by client id:
    /// the same kind of identity an API key gives, on the routes that take API keys.
    #[serde(default)]
    pub client_certs: BTreeMap<String, ClientCertConfig>,
    /// Client headers removed from every request before anything reads it, because backends
    /// trust them. `x-user-*` ends in `*`: every header with that prefix. The headers the
    /// gateway sets (`x-user-id`, `x-scopes`, `x-api-client`) are removed in any case.
    #[serde(default = "defaults::strip_headers")]
    pub strip_headers: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt: Vec::new(),
            api_keys: BTreeMap::new(),
            client_certs: BTreeMap::new(),
            strip_headers: defaults::strip_headers(),
        }
    }
}

/// One trusted issuer of bearer JWTs, checked against its JWKS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JwtConfig {
    /// Where the issuer's keys are fetched; a password in it is never shown.
    pub jwks_url: SecretUrl,
    /// The exact `iss` its tokens carry; it also picks this entry for a token.
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    #[serde(default = "defaults::leeway", with = "units::duration")]
    pub leeway: Duration,
    /// How long a fetched JWKS is fresh; it is refetched in the background when it expires
    /// (the keys stay in use if that fails).
    #[serde(
        default = "defaults::jwks_ttl",
        with = "units::duration",
        alias = "refresh_interval"
    )]
    pub cache_ttl: Duration,
    /// Least time between two fetches caused by tokens with an unknown `kid`.
    #[serde(default = "defaults::jwks_cooldown", with = "units::duration")]
    pub unknown_kid_cooldown: Duration,
    /// PEM bundle of the CAs trusted for an `https://` JWKS, instead of the public roots.
    #[serde(default)]
    pub jwks_ca_file: Option<PathBuf>,
}

/// One partner API key. `sha256` is the hex SHA-256 of the key's plain text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiKeyConfig {
    /// A hash of a partner key is still a credential to brute-force offline: a `Secret`.
    pub sha256: Secret,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Rate-limit tier of this client (e.g. `"gold"`); the limiter's default when absent.
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
}

/// One partner's client certificate, recognised by exactly one of its names (the
/// certificate has already been verified against `[tls] client_ca` at the handshake).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClientCertConfig {
    /// The subject's common name (CN).
    #[serde(default)]
    pub common_name: Option<String>,
    /// A DNS name among the subject alternative names.
    #[serde(default)]
    pub dns_name: Option<String>,
    /// A URI among the subject alternative names (e.g. a SPIFFE id).
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Rate-limit tier of this client; the limiter's default when absent.
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
}

impl ClientCertConfig {
    /// How many of the names are given (exactly one is valid).
    fn names_given(&self) -> usize {
        [&self.common_name, &self.dns_name, &self.uri]
            .iter()
            .filter(|n| n.is_some())
            .count()
    }
}

impl AuthConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        for (i, jwt) in self.jwt.iter().enumerate() {
            jwt.validate(i, &self.jwt[..i], p);
        }
        for (i, pattern) in self.strip_headers.iter().enumerate() {
            let name = pattern.strip_suffix('*').unwrap_or(pattern);
            p.check(
                !name.is_empty()
                    && !name.contains('*')
                    && http::HeaderName::from_bytes(name.as_bytes())
                        .is_ok_and(|h| h.as_str() == name),
                format!("auth.strip_headers[{i}]"),
                "must be a lowercase header name, optionally ending in '*' (a prefix)",
            );
        }
        for (id, cert) in &self.client_certs {
            p.check(
                cert.names_given() == 1,
                format!("auth.client_certs.{id}"),
                "give exactly one of common_name, dns_name, uri",
            );
            let clash = self.client_certs.range(..id.clone()).find(|(_, other)| {
                other.common_name.is_some() && other.common_name == cert.common_name
                    || other.dns_name.is_some() && other.dns_name == cert.dns_name
                    || other.uri.is_some() && other.uri == cert.uri
            });
            if let Some((other, _)) = clash {
                p.push(
                    format!("auth.client_certs.{id}"),
                    format!("names the same certificate as auth.client_certs.{other}"),
                );
            }
        }
        for (id, key) in &self.api_keys {
            let hash = key.sha256.expose();
            p.check(
                hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                format!("auth.api_keys.{id}.sha256"),
                "must be the 64 hex digits of the key's SHA-256",
            );
        }
    }
}

impl JwtConfig {
    /// Problems with `auth.jwt[i]`; `earlier` are the entries before it.
    fn validate(&self, i: usize, earlier: &[JwtConfig], p: &mut Problems) {
        let key = |field: &str| format!("auth.jwt[{i}].{field}");
        p.check(
            is_http_url(self.jwks_url.expose()),
            key("jwks_url"),
            "must be an http:// or https:// URL",
        );
        // Builds the client the JWKS is fetched with, as start-up does.
        if let Err(e) = ca_client_config(self.jwks_ca_file.as_deref(), "jwks_ca_file") {
            p.push(key(e.key()), e.to_string());
        }
        p.check(!self.issuer.is_empty(), key("issuer"), "must not be empty");
        p.check(
            earlier.iter().all(|o| o.issuer != self.issuer),
            key("issuer"),
            "is used by an earlier [[auth.jwt]] entry",
        );
        p.check(
            !self.audience.is_empty(),
            key("audience"),
            "must not be empty",
        );
        p.check(
            self.leeway <= Duration::from_secs(300),
            key("leeway"),
            "must be at most 5m",
        );
        p.check(
            positive(self.cache_ttl),
            key("cache_ttl"),
            "must be greater than 0",
        );
        p.check(
            positive(self.unknown_kid_cooldown),
            key("unknown_kid_cooldown"),
            "must be greater than 0",
        );
    }
}

/// `[auth.jwt]` as a list of one, `[[auth.jwt]]` as it is. Goes through the given map or
/// sequence access, so unknown keys and error paths are still reported.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<JwtConfig>, D::Error> {
    struct OneOrMany;
    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<JwtConfig>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an issuer table or a list of them")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            JwtConfig::deserialize(MapAccessDeserializer::new(map)).map(|one| vec![one])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::deserialize(SeqAccessDeserializer::new(seq))
        }
    }
    d.deserialize_any(OneOrMany)
}

/// `jwt` in the JSON Schema: what `one_or_many` reads.
fn one_or_many_schema(generator: &mut SchemaGenerator) -> Schema {
    let one = generator.subschema_for::<JwtConfig>();
    json_schema!({ "anyOf": [one.clone(), { "type": "array", "items": one }] })
}

mod defaults {
    use std::time::Duration;

    pub fn leeway() -> Duration {
        Duration::from_secs(30)
    }
    pub fn jwks_ttl() -> Duration {
        Duration::from_secs(300)
    }
    pub fn jwks_cooldown() -> Duration {
        Duration::from_secs(30)
    }
    pub fn enabled() -> bool {
        true
    }
    pub fn strip_headers() -> Vec<String> {
        ["x-user-*", "x-scopes", "x-api-client", "x-forwarded-user"]
            .map(String::from)
            .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const SERVER: &str = "[server]\nlisten = \"127.0.0.1:0\"\n";

    fn parse(text: &str) -> Result<Config, Vec<String>> {
        Config::parse(&format!("{SERVER}{text}"), "test", Vec::new(), &[])
            .map_err(|e| e.errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn one_issuer_table_or_a_list_of_them() {
        let one = parse(
            "[auth.jwt]\njwks_url = \"http://a/jwks\"\nissuer = \"a\"\naudience = \"web\"\nrefresh_interval = \"1m\"\n",
        )
        .expect("single table");
        assert_eq!(one.auth.jwt.len(), 1);
        assert_eq!(one.auth.jwt[0].cache_ttl.as_secs(), 60);
        let two = parse(
            "[[auth.jwt]]\njwks_url = \"http://a/jwks\"\nissuer = \"a\"\naudience = \"web\"\n\
             [[auth.jwt]]\njwks_url = \"https://b/jwks\"\nissuer = \"b\"\naudience = \"web\"\n",
        )
        .expect("list");
        assert_eq!(two.auth.jwt.len(), 2);
        assert_eq!(two.auth.jwt[1].leeway.as_secs(), 30);
        assert_eq!(two.auth.jwt[1].unknown_kid_cooldown.as_secs(), 30);
    }

    #[test]
    fn issuer_problems_name_their_entry() {
        let errors = parse(
            "[[auth.jwt]]\njwks_url = \"http://a/jwks\"\nissuer = \"a\"\naudience = \"web\"\n\
             [[auth.jwt]]\njwks_url = \"ftp://b\"\nissuer = \"a\"\naudience = \"\"\ncolour = 1\n\
             [auth]\nstrip_headers = [\"X-Bad Header\", \"x-user-*\"]\n",
        )
        .unwrap_err();
        let shown = errors.join("\n");
        for expected in [
            "auth.jwt[1].colour: unknown key",
            "auth.jwt[1].jwks_url",
            "auth.jwt[1].issuer: is used by an earlier",
            "auth.jwt[1].audience",
            "auth.strip_headers[0]",
        ] {
            assert!(shown.contains(expected), "{expected} missing in:\n{shown}");
        }
        assert!(!shown.contains("strip_headers[1]"), "{shown}");
    }

    #[test]
    fn debug_output_never_shows_a_key_hash() {
        let config = parse(
            "[auth.api_keys.acme]\nsha256 = \"5f7b2ed74a9736a538a6fb5a5a1a76afdcdd0d177d7fc6e79c6b6843527d848d\"\ntier = \"gold\"\n",
        )
        .expect("valid");
        let shown = format!("{config:?}");
        assert!(!shown.contains("5f7b2ed7"), "{shown}");
        assert!(shown.contains("gold"), "{shown}");
    }
}
