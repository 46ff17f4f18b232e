//! Fault injection: the `/_chaos` endpoints and the middleware that applies the configured
//! faults to every other path (except `/_stats` and `/_chaos` themselves, so a test can always
//! inspect and heal a service). Randomness comes from `fastrand`; none of it touches the data.
//!
//! Per request, in this order: sleep `latency_ms` plus a uniform `0..=jitter_ms`; then roll
//! `hang` (never answer), `error_rate` (answer `status` with an error body), `reset` (break the
//! connection), and after the real handler ran, `malformed` (truncate its JSON). The first
//! fault that hits wins. `hang`, `reset` and `malformed` take `true` (every request), `false`
//! or a probability in `0..=1`.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::watch;

use crate::error::{ApiError, error_response};
use crate::shell::lock;

/// The fault config `POST /_chaos` installs. All fields optional; the default is no fault.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FaultConfig {
    latency_ms: u64,
    jitter_ms: u64,
    /// Probability of answering `status` with an error body.
    error_rate: f64,
    status: u16,
    #[serde(deserialize_with = "flag_or_rate")]
    hang: f64,
    #[serde(deserialize_with = "flag_or_rate")]
    malformed: f64,
    #[serde(deserialize_with = "flag_or_rate")]
    reset: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            latency_ms: 0,
            jitter_ms: 0,
            error_rate: 0.0,
            status: 503,
            hang: 0.0,
            malformed: 0.0,
            reset: 0.0,
        }
    }
}

/// `true`/`false` or a probability: `"reset": true` and `"reset": 0.3` both read naturally.
fn flag_or_rate<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum FlagOrRate {
        Flag(bool),
        Rate(f64),
    }
    Ok(match FlagOrRate::deserialize(deserializer)? {
        FlagOrRate::Flag(on) => f64::from(u8::from(on)),
        FlagOrRate::Rate(rate) => rate,
    })
}

impl FaultConfig {
    fn validate(&self) -> Result<StatusCode, ApiError> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("hang", self.hang),
            ("malformed", self.malformed),
            ("reset", self.reset),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ApiError::bad(format!("{name}: must be within 0..=1")));
            }
        }
        match StatusCode::from_u16(self.status) {
            Ok(status) if (200..=599).contains(&self.status) => Ok(status),
            _ => Err(ApiError::bad(
                "status: must be an HTTP status within 200..=599",
            )),
        }
    }

    fn is_calm(&self) -> bool {
        *self == FaultConfig::default()
    }
}

/// The fault state of one service.
#[derive(Debug)]
pub(crate) struct Chaos {
    config: Mutex<FaultConfig>,
    /// Flips to `true` when the service shuts down; held faults (hang, latency) give up then,
    /// so a graceful shutdown never waits on them.
    shutdown: watch::Sender<bool>,
}

impl Chaos {
    pub(crate) fn new(shutdown: watch::Sender<bool>) -> Self {
        Chaos {
            config: Mutex::new(FaultConfig::default()),
            shutdown,
        }
    }

    async fn shut_down(&self) {
        let mut down = self.shutdown.subscribe();
        // An error means every sender is gone: nobody is serving us any more either.
        let _ = down.wait_for(|down| *down).await;
    }
}

/// Whether the path is exempt from faults, so tests can always read stats and heal.
fn is_exempt(path: &str) -> bool {
    path == "/_stats" || path == "/_chaos"
}

fn hits(probability: f64) -> bool {
    probability >= 1.0 || (probability > 0.0 && fastrand::f64() < probability)
}

/// Middleware applying the current fault config.
pub(crate) async fn inject(
    State(chaos): State<Arc<Chaos>>,
    request: Request,
    next: Next,
) -> Response {
    if is_exempt(request.uri().path()) {
        return next.run(request).await;
    }
    // Copied out so the lock is never held across an await.
    let faults = *lock(&chaos.config);
    if faults.is_calm() {
        return next.run(request).await;
    }

    let jitter = match faults.jitter_ms {
        0 => 0,
        max => fastrand::u64(0..=max),
    };
    let delay = Duration::from_millis(faults.latency_ms.saturating_add(jitter));
    if !delay.is_zero() {
        tokio::select! {
            () = crate::timer::sleep(delay) => {}
            () = chaos.shut_down() => return broken_connection(),
        }
    }
    if hits(faults.hang) {
        chaos.shut_down().await;
        return broken_connection();
    }
    if hits(faults.error_rate) {
        let status = StatusCode::from_u16(faults.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let message = format!("injected fault: status {}", status.as_u16());
        return error_response(status, "injected_fault", &message);
    }
    if hits(faults.reset) {
        return broken_connection();
    }
    let response = next.run(request).await;
    if hits(faults.malformed) {
        return truncated(response).await;
    }
    response
}

/// A response whose body fails immediately: hyper aborts the connection, so the client sees
/// a broken connection (before the head or mid-body) rather than a complete answer.
fn broken_connection() -> Response {
    let failure = futures_util::stream::once(async {
        Err::<Bytes, io::Error>(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "injected fault: connection reset",
        ))
    });
    Body::from_stream(failure).into_response()
}

/// The real answer cut in half: a 200 with a JSON content type whose body does not parse.
async fn truncated(response: Response) -> Response {
    const FALLBACK: &[u8] = br#"{"items": [{"id": "trunc"#;
    let body = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let mut cut = body.slice(..body.len() / 2);
    // Half of a JSON object never parses, but half of a bare number can: make sure.
    if cut.is_empty() || serde_json::from_slice::<serde::de::IgnoredAny>(&cut).is_ok() {
        cut = Bytes::from_static(FALLBACK);
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        cut,
    )
        .into_response()
}

/// `GET`, `POST` and `DELETE /_chaos`.
pub(crate) fn routes(chaos: Arc<Chaos>) -> Router {
    Router::new()
        .route("/_chaos", post(install).get(show).delete(clear))
        .with_state(chaos)
}

async fn install(
    State(chaos): State<Arc<Chaos>>,
    config: Result<Json<FaultConfig>, JsonRejection>,
) -> Result<Json<FaultConfig>, ApiError> {
    let Json(config) = config?;
    config.validate()?;
    *lock(&chaos.config) = config;
    Ok(Json(config))
}

async fn show(State(chaos): State<Arc<Chaos>>) -> Json<FaultConfig> {
    Json(*lock(&chaos.config))
}

async fn clear(State(chaos): State<Arc<Chaos>>) -> StatusCode {
    *lock(&chaos.config) = FaultConfig::default();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_rates_both_parse() {
        let config: FaultConfig =
            serde_json::from_str(r#"{"hang": true, "reset": 0.25, "malformed": false}"#).unwrap();
        assert_eq!(config.hang, 1.0);
        assert_eq!(config.reset, 0.25);
        assert_eq!(config.malformed, 0.0);
        assert_eq!(config.status, 503);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn nonsense_is_rejected() {
        assert!(serde_json::from_str::<FaultConfig>(r#"{"latency": 5}"#).is_err());
        let config: FaultConfig = serde_json::from_str(r#"{"error_rate": 1.5}"#).unwrap();
        assert!(config.validate().is_err());
        let config: FaultConfig = serde_json::from_str(r#"{"status": 42}"#).unwrap();
        assert!(config.validate().is_err());
    }

    #[test]
    fn empty_config_is_calm() {
        let config: FaultConfig = serde_json::from_str("{}").unwrap();
        assert!(config.is_calm());
        assert!(!hits(0.0));
        assert!(hits(1.0));
    }
}
