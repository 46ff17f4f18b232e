//! Edge security end to end: forged tokens, key rotation and outages, scopes, identity
//! headers, request hygiene and CORS — all against real sockets.

mod connections;
pub(crate) mod forge;
mod forged;
mod framing;
mod headers;
mod hygiene;
mod keys;
