//! Serving services on real sockets: [`start`] for one, [`Backends`] for all ten, and the
//! shutdown that goes with them. Owns listeners and serve tasks, not any service behaviour.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Service, assemble, idp};

/// One running service; dropping it (or calling [`RunningService::shutdown`]) stops it.
///
/// Shutdown is graceful and happens in the background: the listener closes, idle keep-alive
/// connections are closed, requests held by `hang` or latency faults are cut off, and requests
/// already being answered finish.
#[derive(Debug)]
pub struct RunningService {
    service: Service,
    addr: SocketAddr,
    url: String,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningService {
    /// Which service this is.
    pub fn service(&self) -> Service {
        self.service
    }

    /// The bound address (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:9101`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Stops the service (same as dropping it).
    pub fn shutdown(self) {
        drop(self);
    }

    /// Whether the serve task has ended (after shutdown, once every connection closed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        // `send_replace` stores the value even with no receiver left, so nothing is lost.
        self.shutdown.send_replace(true);
    }
}

/// Binds `addr` (port 0 = any free port) and serves `service` on the current tokio runtime.
///
/// Returns once the socket is bound and (for the IdP) the first signing key exists, so the
/// service can be called immediately.
pub async fn start(service: Service, addr: SocketAddr) -> io::Result<RunningService> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let url = base_url(addr);
    let (shutdown, _) = watch::channel(false);

    let idp = match service {
        Service::Auth => {
            let idp = Arc::new(idp::Idp::new(&url));
            // Key generation takes a noticeable fraction of a second: pay it here, not on the
            // first token request a test makes.
            idp.warm_up().await.map_err(io::Error::other)?;
            Some(idp)
        }
        _ => None,
    };
    let app = assemble(service, &url, idp, shutdown.clone());

    let mut signal = shutdown.subscribe();
    // Small JSON answers on keep-alive connections must not wait for Nagle.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
    });
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // An error means every sender is gone, which is a shutdown too.
                let _ = signal.wait_for(|down| *down).await;
            })
            .await;
        if let Err(err) = served {
            tracing::warn!(service = service.name(), %err, "demo service stopped with an error");
        }
    });

    Ok(RunningService {
        service,
        addr,
        url,
        shutdown,
        task,
    })
}

/// All ten services, each on its own port.
#[derive(Debug)]
pub struct Backends {
    /// Indexed by [`Service::index`]; always exactly one entry per service.
    running: Vec<RunningService>,
}

impl Backends {
    /// Starts all ten on `ip`. `base_port: None` picks free ports (tests run many sets in
    /// parallel); `Some(9100)` uses the fixed demo ports, `base_port + index`.
    pub async fn start(ip: IpAddr, base_port: Option<u16>) -> io::Result<Backends> {
        let mut addrs = Vec::with_capacity(Service::ALL.len());
        for service in Service::ALL {
            let port = match base_port {
                None => 0,
                Some(base) => base.checked_add(service.index() as u16).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "base port too high")
                })?,
            };
            addrs.push((service, SocketAddr::new(ip, port)));
        }
        // Concurrently, so the IdP's key generation overlaps the other binds. On an error the
        // services already started are dropped, which stops them.
        let running = futures_util::future::try_join_all(
            addrs
                .into_iter()
                .map(|(service, addr)| start(service, addr)),
        )
        .await?;
        Ok(Backends { running })
    }

    /// The running service `s`.
    pub fn service(&self, s: Service) -> &RunningService {
        &self.running[s.index()]
    }

    /// Bound address of `s`.
    pub fn addr(&self, s: Service) -> SocketAddr {
        self.service(s).addr()
    }

    /// Base URL of `s`, e.g. `http://127.0.0.1:9103`.
    pub fn url(&self, s: Service) -> String {
        self.service(s).url()
    }

    /// Stops all ten (same as dropping).
    pub fn shutdown(self) {
        drop(self);
    }
}

/// The URL clients use to reach `addr`: a wildcard bind is reached over loopback.
fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_reached_over_loopback() {
        let any: SocketAddr = "0.0.0.0:9100".parse().unwrap();
        assert_eq!(base_url(any), "http://127.0.0.1:9100");
        let v6: SocketAddr = "[::]:9101".parse().unwrap();
        assert_eq!(base_url(v6), "http://[::1]:9101");
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(base_url(lo), "http://127.0.0.1:0");
    }
}
