//! What one client request carries through the gateway, on the ground floor so that every
//! module above can use it without reaching up: the request id (`id`), the deadline all its
//! backend calls share (`deadline`), the verified caller (`identity`) and the client certificate it came with (`peer`), its place in a trace
//! (`trace`), the record the access log and spans are made from (`record`), the one extension
//! the gateway's layers keep them in (`stamp`), what the cache served it (`notes`), and the
//! `CallContext` a backend call takes (`context`). It holds
//! values only: who fills them in is `edge`, `auth`, `observe` and `cache`.

pub mod context;
pub mod deadline;
pub mod id;
pub mod identity;
pub mod notes;
pub mod peer;
pub mod record;
pub mod stamp;
pub mod trace;

pub use context::CallContext;
pub use deadline::Deadline;
pub use id::{REQUEST_ID_HEADER, RequestId};
pub use identity::{Identity, Principal, anonymous_digest};
pub use notes::{CacheNotes, DegradedServe};
pub use peer::{ClientIp, PeerCertificate};
pub use record::{Admitted, BackendCall, RequestRecord};
pub use stamp::Stamp;
pub use trace::TraceContext;
