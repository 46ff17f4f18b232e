//! Who is at the other end. `PeerCertificate`: the names in the client certificate a TLS
//! connection was made with, read once per connection by `server` (after the handshake
//! verified the certificate) and carried to every request on that connection as an
//! extension, for `auth` to map to a partner. `ClientIp`: the client's address as
//! `edge::client_ip` resolved it, for the limits and the access log.

use std::net::{IpAddr, Ipv6Addr};

/// The resolved client address (in the request's `Stamp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The address limits are keyed by: an IPv6 client by its /64 (one subscriber usually
    /// holds a whole /64, so counting single addresses would be no limit at all).
    pub fn limit_key(&self) -> IpAddr {
        match self.0.to_canonical() {
            IpAddr::V6(v6) => {
                let masked = u128::from(v6) & (u128::MAX << 64);
                IpAddr::V6(Ipv6Addr::from(masked))
            }
            v4 => v4,
        }
    }
}

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
