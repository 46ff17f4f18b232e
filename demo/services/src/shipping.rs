//! shipping (9108): shipment tracking for any order id of the form `o-{userId}-{n}`. The
//! shipment follows the order's status for seeded orders; newer (created) orders are still
//! waiting for pickup.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::data::{self, Items, Seeded};
use crate::error::ApiError;
use crate::orders;
use crate::words;

const DAY: i64 = 86_400;

pub(crate) fn routes() -> Router {
    Router::new().route("/shipments", get(batch))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Shipment {
    order_id: String,
    shipment_id: String,
    carrier: &'static str,
    status: &'static str,
    tracking_number: String,
    tracking_url: String,
    /// RFC 3339 full date.
    eta: String,
    events: Vec<TrackingEvent>,
}

#[derive(Serialize)]
struct TrackingEvent {
    at: String,
    location: &'static str,
    description: &'static str,
}

/// Shipment status and how many tracking events it has produced so far.
fn progress(user: u32, n: u32) -> (&'static str, usize) {
    if n > orders::seeded_count(user) {
        return ("LABEL_CREATED", 1);
    }
    match orders::seeded_status(user, n) {
        "PLACED" | "PROCESSING" => ("LABEL_CREATED", 1),
        "SHIPPED" => ("IN_TRANSIT", 3),
        "CANCELLED" => ("CANCELLED", 2),
        _ => ("DELIVERED", 5),
    }
}

const EVENT_DESCRIPTIONS: [&str; 5] = [
    "Shipping label created",
    "Parcel picked up by carrier",
    "Arrived at sorting centre",
    "Out for delivery",
    "Delivered",
];

fn shipment(order_id: &str, user: u32, n: u32) -> Shipment {
    let mut seed = Seeded::pair("shipment", user, n);
    let (status, event_count) = progress(user, n);
    let carrier = seed.pick(words::CARRIERS);
    let prefix: String = carrier
        .chars()
        .take(2)
        .collect::<String>()
        .to_ascii_uppercase();
    let tracking_number = format!("{prefix}{:012}", seed.below(1_000_000_000_000));
    // Same clock as the order: n = 1 is the most recent.
    let shipped = data::DEMO_NOW - i64::from(n) * 14 * DAY + DAY;
    let events = (0..event_count)
        .map(|step| TrackingEvent {
            at: data::rfc3339(shipped + step as i64 * 20 * 3600 + seed.below(3600) as i64),
            location: seed.pick(words::HUBS),
            description: if status == "CANCELLED" && step == 1 {
                "Shipment cancelled, returning to sender"
            } else {
                EVENT_DESCRIPTIONS[step]
            },
        })
        .collect();
    Shipment {
        order_id: order_id.to_owned(),
        shipment_id: format!("s-{user}-{n}"),
        carrier,
        status,
        tracking_url: format!(
            "https://track.demo.manifold.dev/{}/{tracking_number}?lang=en&utm_source=orders",
            carrier.to_ascii_lowercase()
        ),
        tracking_number,
        eta: data::date(shipped + 4 * DAY),
        events,
    }
}

#[derive(Deserialize)]
struct BatchQuery {
    #[serde(rename = "orderIds")]
    order_ids: Option<String>,
}

async fn batch(
    query: Result<Query<BatchQuery>, QueryRejection>,
) -> Result<Json<Items<Shipment>>, ApiError> {
    let Query(query) = query?;
    let ids = data::required(&query.order_ids, "orderIds")?;
    let items = data::split_ids(ids)
        .filter_map(|id| {
            let (user, n) = orders::parse_order_id(id)?;
            Some(shipment(id, user, n))
        })
        .collect();
    Ok(Json(Items { items }))
}
