//! The ten sample backends alone, on their demo ports (9100-9109), in a process of their own:
//! the benchmark (`bench/run.py`) runs them next to the gateway and its peers so that each is
//! measured as a separate process. Prints `ready` once all ten listen; SIGTERM or Ctrl-C
//! stops them.
//!
//! `cargo run --release -p demo-services --example backends [-- --port-base 9100]`

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;

use demo_services::Backends;

/// The same allocator as the gateway binaries: the benchmark shares the machine between them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let mut base = 9100;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<u16>())) {
            ("--port-base", Some(Ok(port))) => base = port,
            _ => {
                eprintln!("usage: backends [--port-base PORT]  (default 9100: ports 9100-9109)");
                return ExitCode::from(64);
            }
        }
    }
    let backends = match Backends::start(IpAddr::V4(Ipv4Addr::LOCALHOST), Some(base)).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "cannot start the sample backends on ports {base}-{}: {e}",
                base + 9
            );
            return ExitCode::FAILURE;
        }
    };
    println!("ready");
    stopped().await;
    backends.shutdown();
    ExitCode::SUCCESS
}

async fn stopped() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
