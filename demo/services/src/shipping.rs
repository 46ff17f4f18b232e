//! shipping (9108): shipment tracking for any order id of the form `o-{userId}-{n}`. The
//! shipment follows the order's status for seeded orders; newer (created) orders are still
//! waiting for pickup. `?fields=` narrows each shipment (`orderId,eta` for a list that
//! shows only when each order arrives).

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::data::{self, Seeded};
use crate::error::ApiError;
use crate::fields::{FieldSet, Members};
use crate::memo::{self, JsonBytes, Memo};
use crate::orders;
use crate::words;

const DAY: i64 = 86_400;
/// Memory for shipments' JSON: ~7,000 of them (~0.5 KB each).
const MEMO_BUDGET: usize = 4 << 20;

pub(crate) fn routes() -> Router {
    Router::new()
        .route("/shipments", get(batch))
        .with_state(Arc::new(Shipments::default()))
}

/// A shipment's members, in the order it is written; `?fields=` names some of them.
const FIELDS: Members = Members {
    names: &[
        "orderId",
        "shipmentId",
        "carrier",
        "status",
        "trackingNumber",
        "trackingUrl",
        "eta",
        "events",
    ],
    narrowable: &[],
};

/// Serialised shipments by (user, order number) and the view asked for. A shipment depends
/// on nothing but those: created orders get the numbers after the seeded ones and are
/// always `LABEL_CREATED`.
struct Shipments(Memo<(u32, u32, FieldSet)>);

impl Default for Shipments {
    fn default() -> Self {
        Shipments(Memo::new(MEMO_BUDGET))
    }
}

impl Shipments {
    /// `{"items": [...]}` of the well-formed order ids among `ids`, in the order asked, each
    /// in the view `fields` asks for.
    fn batch(&self, ids: &str, fields: FieldSet) -> Bytes {
        let fragments: Vec<Bytes> = data::split_ids(ids)
            .filter_map(|id| {
                let (user, n) = orders::parse_order_id(id)?;
                // A parsed id is canonical, `o-{user}-{n}`: the key names its bytes.
                Some(self.0.bytes((user, n, fields), || {
                    fields.json(&FIELDS, &shipment(id, user, n))
                }))
            })
            .collect();
        memo::items(&fragments)
    }
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
    /// `orderId,eta`: only these members (and the order id).
    fields: Option<String>,
}

async fn batch(
    State(shipments): State<Arc<Shipments>>,
    query: Result<Query<BatchQuery>, QueryRejection>,
) -> Result<JsonBytes, ApiError> {
    let Query(query) = query?;
    let ids = data::required(&query.order_ids, "orderIds")?;
    let fields = FieldSet::parse(query.fields.as_deref(), &FIELDS)?;
    Ok(JsonBytes(shipments.batch(ids, fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches are the bytes serde writes for freshly generated shipments, cold and warm.
    #[test]
    fn memoised_batches_are_serdes_bytes() {
        let shipments = Shipments::default();
        let old = |ids: &str| {
            let items: Vec<Shipment> = data::split_ids(ids)
                .filter_map(|id| {
                    let (user, n) = orders::parse_order_id(id)?;
                    Some(shipment(id, user, n))
                })
                .collect();
            serde_json::to_vec(&data::Items { items }).unwrap()
        };
        for round in 0..2 {
            for user in (1..=10_000).step_by(173).chain([1, 10_000]) {
                let ids: Vec<String> = (1..=14).map(|n| format!("o-{user}-{n}")).collect();
                let ids = ids.join(",");
                assert_eq!(
                    shipments.batch(&ids, FieldSet::ALL),
                    old(&ids),
                    "user {user}, round {round}"
                );
            }
        }
        let odd = "o-1-1, bogus,o-01-1,o-1-01,o-1-4000000000,,o-1-1,o-0-1";
        assert_eq!(shipments.batch(odd, FieldSet::ALL), old(odd));
    }

    /// A narrowed batch holds the members asked for and the order id, as the whole one has
    /// them, and is remembered apart from it.
    #[test]
    fn a_narrowed_batch_keeps_the_members_asked_for() {
        let shipments = Shipments::default();
        let ids = "o-1-1,o-2-3";
        let etas = FieldSet::parse(Some("eta"), &FIELDS).unwrap();
        let whole: serde_json::Value =
            serde_json::from_slice(&shipments.batch(ids, FieldSet::ALL)).unwrap();
        let narrow: serde_json::Value =
            serde_json::from_slice(&shipments.batch(ids, etas)).unwrap();
        let whole = whole["items"].as_array().unwrap();
        let narrow = narrow["items"].as_array().unwrap();
        assert_eq!(narrow.len(), 2);
        for (whole, narrow) in whole.iter().zip(narrow) {
            let mut keys: Vec<&String> = narrow.as_object().unwrap().keys().collect();
            keys.sort();
            assert_eq!(keys, ["eta", "orderId"]);
            assert_eq!(narrow["orderId"], whole["orderId"]);
            assert_eq!(narrow["eta"], whole["eta"]);
        }
        assert!(
            whole[0]["events"].is_array(),
            "the whole batch after the narrow one"
        );
        assert!(FieldSet::parse(Some("eta,weight"), &FIELDS).is_err());
    }
}
