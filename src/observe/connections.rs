//! The public listener's connection counters (`server::ConnectionStats`) on `/metrics`:
//! what was admitted, what is open, what the caps refused at accept and what the watchdog
//! and the body timeout cut off. Labels come from fixed sets.

use crate::server::ConnectionStats;

use super::exposition::{Exposition, MetricFamilies};

impl MetricFamilies for ConnectionStats {
    fn write(&self, o: &mut Exposition) {
        let get = ConnectionStats::get;
        o.header(
            "manifold_connections_accepted_total",
            "counter",
            "Connections admitted by the public listener.",
        );
        o.line(
            "manifold_connections_accepted_total",
            &[],
            get(&self.accepted),
        );
        o.header(
            "manifold_connections_open",
            "gauge",
            "Connections the public listener holds open.",
        );
        o.line("manifold_connections_open", &[], get(&self.open));
        let name = "manifold_connections_refused_total";
        o.header(
            name,
            "counter",
            "Connections closed at accept, by the cap they were over (per_ip, global).",
        );
        o.line(name, &[("reason", "per_ip")], get(&self.refused_per_ip));
        o.line(name, &[("reason", "global")], get(&self.refused_global));
        let name = "manifold_connections_timed_out_total";
        o.header(
            name,
            "counter",
            "Connections closed for a timeout: no first byte, a head not sent in time, idle, a write the client did not take, a request body that did not arrive (408).",
        );
        for (reason, n) in [
            ("first_byte", get(&self.closed_first_byte)),
            ("header_read", get(&self.closed_header_read)),
            ("idle", get(&self.closed_idle)),
            ("write", get(&self.closed_write)),
            ("body_read", get(&self.body_timeouts)),
        ] {
            o.line(name, &[("reason", reason)], n);
        }
        let name = "manifold_connections_malformed_total";
        o.header(
            name,
            "counter",
            "Connections answered 400 and closed for framing only their bytes show (a head line ending in a bare LF).",
        );
        o.line(name, &[("reason", "bare_lf")], get(&self.flawed_heads));
    }
}
