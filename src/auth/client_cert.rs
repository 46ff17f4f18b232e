//! Partners identified by their client certificate: `[auth.client_certs.<id>]` maps one
//! name of a certificate (subject CN, a DNS or a URI subject alternative name) to a client
//! id, scopes and tier, giving the same `Identity` an API key does, so rate limits and
//! quotas key on the client id alike. The certificate itself was verified at the handshake
//! (`server::client_auth`); this only says which partner it names.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Identity, Principal};
use crate::config::ClientCertConfig;
use crate::request::PeerCertificate;

/// Which name of the certificate an entry matches.
enum CertName {
    CommonName(String),
    Dns(String),
    Uri(String),
}

impl CertName {
    fn matches(&self, cert: &PeerCertificate) -> bool {
        match self {
            CertName::CommonName(cn) => cert.common_name.as_deref() == Some(cn.as_str()),
            CertName::Dns(dns) => cert.dns_names.iter().any(|d| d.eq_ignore_ascii_case(dns)),
            CertName::Uri(uri) => cert.uris.iter().any(|u| u == uri),
        }
    }
}

/// The configured certificate-to-client mapping, identities built once.
#[derive(Default)]
pub struct ClientCertificates {
    entries: Vec<(CertName, Arc<Identity>)>,
}

impl ClientCertificates {
    /// Disabled entries and those config validation refused are left out.
    pub fn from_config(config: &BTreeMap<String, ClientCertConfig>) -> Self {
        let entries = config
            .iter()
            .filter(|(_, c)| c.enabled)
            .filter_map(|(id, c)| {
                let name = match (&c.common_name, &c.dns_name, &c.uri) {
                    (Some(cn), None, None) => CertName::CommonName(cn.clone()),
                    (None, Some(dns), None) => CertName::Dns(dns.clone()),
                    (None, None, Some(uri)) => CertName::Uri(uri.clone()),
                    _ => return None,
                };
                let identity = Identity::new(
                    Principal::ApiClient(id.clone()),
                    c.scopes.clone(),
                    c.tier.clone(),
                )
                .ok()?;
                Some((name, Arc::new(identity)))
            })
            .collect();
        Self { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The partner `cert` names, if any entry matches it.
    pub fn identify(&self, cert: &PeerCertificate) -> Option<Arc<Identity>> {
        self.entries
            .iter()
            .find(|(name, _)| name.matches(cert))
            .map(|(_, identity)| identity.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_maps_by_one_of_its_names() {
        let entry =
            |cn: Option<&str>, dns: Option<&str>, uri: Option<&str>, enabled| ClientCertConfig {
                common_name: cn.map(str::to_owned),
                dns_name: dns.map(str::to_owned),
                uri: uri.map(str::to_owned),
                scopes: vec!["products:read".into()],
                tier: Some("gold".into()),
                enabled,
            };
        let mut config = BTreeMap::new();
        config.insert(
            "acme".to_owned(),
            entry(Some("acme-partner"), None, None, true),
        );
        config.insert(
            "globex".to_owned(),
            entry(None, Some("api.globex.test"), None, true),
        );
        config.insert(
            "spiffe".to_owned(),
            entry(None, None, Some("spiffe://x/y"), true),
        );
        config.insert(
            "old".to_owned(),
            entry(Some("old-partner"), None, None, false),
        );
        let certs = ClientCertificates::from_config(&config);
        let named = |cn: &str, dns: &[&str], uris: &[&str]| PeerCertificate {
            common_name: Some(cn.to_owned()),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            uris: uris.iter().map(|s| s.to_string()).collect(),
        };
        let acme = certs.identify(&named("acme-partner", &[], &[])).unwrap();
        assert_eq!(acme.principal(), &Principal::ApiClient("acme".into()));
        assert_eq!(acme.tier(), Some("gold"));
        let globex = certs
            .identify(&named("x", &["API.globex.test"], &[]))
            .unwrap();
        assert_eq!(globex.principal(), &Principal::ApiClient("globex".into()));
        let spiffe = certs.identify(&named("x", &[], &["spiffe://x/y"])).unwrap();
        assert_eq!(spiffe.principal(), &Principal::ApiClient("spiffe".into()));
        assert!(certs.identify(&named("old-partner", &[], &[])).is_none());
        assert!(
            certs
                .identify(&named("stranger", &["x.test"], &[]))
                .is_none()
        );
    }
}
