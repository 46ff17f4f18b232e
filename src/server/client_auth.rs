//! Client certificates at the listener (`[tls] client_ca`): the verifier every handshake
//! asks, swapped when the CA bundle or the revocation list on disk changes (polled with the
//! server certificate), and the names read from a verified certificate once per connection
//! (`PeerCertificate`), which every request on the connection then carries for `auth`.
//!
//! The verifier rustls holds is `CurrentClientVerifier`, which delegates to the verifier
//! built from the files loaded last; connections already established keep what they were
//! verified with. Files that do not load keep the current verifier (logged once).

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::config::{ClientAuth, ClientCaFiles};
use crate::request::PeerCertificate;

/// The verifier of new handshakes, replaced on reload. The lock is only held to clone or
/// swap an `Arc`.
pub struct CurrentClientVerifier {
    mandatory: bool,
    inner: RwLock<Arc<dyn ClientCertVerifier>>,
}

impl CurrentClientVerifier {
    pub fn new(files: &ClientCaFiles, verifier: Arc<dyn ClientCertVerifier>) -> Self {
        Self {
            mandatory: files.auth() == ClientAuth::Required,
            inner: RwLock::new(verifier),
        }
    }

    fn get(&self) -> Arc<dyn ClientCertVerifier> {
        match self.inner.read() {
            Ok(v) => Arc::clone(&v),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn replace(&self, new: Arc<dyn ClientCertVerifier>) {
        match self.inner.write() {
            Ok(mut v) => *v = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

impl fmt::Debug for CurrentClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentClientVerifier")
            .field("mandatory", &self.mandatory)
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for CurrentClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    /// No CA names are hinted: they would have to outlive a reload. Clients present their
    /// certificate anyway (and partners have one).
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.get()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.get().supported_verify_schemes()
    }
}

/// The names in `der`, a certificate the handshake verified; `None` if it does not parse
/// (it did for the verifier, so only in theory).
pub fn peer_certificate(der: &CertificateDer<'_>) -> Option<PeerCertificate> {
    let cert = webpki::EndEntityCert::try_from(der).ok()?;
    Some(PeerCertificate {
        common_name: common_name(cert.subject()),
        dns_names: cert.valid_dns_names().map(str::to_owned).collect(),
        uris: cert.valid_uri_names().map(str::to_owned).collect(),
    })
}

/// OID 2.5.4.3 (commonName), DER-encoded.
const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];

/// The first common name in a DER `Name` (the contents of its SEQUENCE): a sequence of
/// SETs of SEQUENCE { type OID, value }.
fn common_name(subject: &[u8]) -> Option<String> {
    let mut rdns = subject;
    while let Some((0x31, set, rest)) = der_next(rdns) {
        rdns = rest;
        let mut attributes = set;
        while let Some((0x30, attribute, more)) = der_next(attributes) {
            attributes = more;
            let (0x06, oid, value) = der_next(attribute)? else {
                return None;
            };
            if oid != COMMON_NAME {
                continue;
            }
            // UTF8String, PrintableString, IA5String, TeletexString (ASCII in practice).
            let (tag, text, _) = der_next(value)?;
            return matches!(tag, 0x0c | 0x13 | 0x16 | 0x14)
                .then(|| std::str::from_utf8(text).ok().map(str::to_owned))
                .flatten();
        }
    }
    None
}

/// One DER element at the start of `input`: its tag, its contents, and what follows.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_from_a_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["partner.example".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "acme-partner");
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://acme/partner".try_into().unwrap(),
        ));
        let cert = params.self_signed(&key).unwrap();
        let names = peer_certificate(cert.der()).expect("parses");
        assert_eq!(names.common_name.as_deref(), Some("acme-partner"));
        assert_eq!(names.dns_names, ["partner.example"]);
        assert_eq!(names.uris, ["spiffe://acme/partner"]);
    }

    #[test]
    fn truncated_der_is_no_name() {
        assert_eq!(common_name(&[0x31, 0x05, 0x30]), None);
        assert_eq!(der_next(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
