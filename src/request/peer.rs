//! `PeerCertificate`: the names in the client certificate a TLS connection was made with,
//! read once per connection by `server` (after the handshake verified the certificate) and
//! carried to every request on that connection as an extension, for `auth` to map to a
//! partner.

/// The names of a verified client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The subject's common name (CN), if it has one.
    pub common_name: Option<String>,
    /// DNS names among the subject alternative names.
    pub dns_names: Vec<String>,
    /// URIs among the subject alternative names.
    pub uris: Vec<String>,
}
