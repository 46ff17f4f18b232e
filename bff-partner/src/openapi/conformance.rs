//! Test-only: the resources handlers serialize are checked against the schemas the document
//! publishes, with a validator for the small subset of JSON Schema the document uses.

use manifold::error::Problem;
use manifold::upstream::{UpstreamError, UpstreamErrorKind};
use serde_json::{Value, json};

use manifold::rest::Page;

use crate::model::{Degraded, Order, OrderSummary, Product, ProductBatch};

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Checks `value` against the subset of JSON Schema the document uses; an object field
/// the schema does not list is an error (every field served must be documented).
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let target = resolve(doc, r).ok_or(format!("{at}: {r} unresolved"))?;
        return conforms(doc, target, value, at);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let matching = options
            .iter()
            .filter(|s| conforms(doc, s, value, at).is_ok())
            .count();
        return match matching {
            1 => Ok(()),
            n => Err(format!("{at}: matches {n} oneOf branches")),
        };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let type_ok = |t: &str| match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_u64() || value.is_i64(),
        "null" => value.is_null(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|t| type_ok(t)) {
        return Err(format!("{at}: {value} is not {types:?}"));
    }
    match value {
        Value::Object(fields) => {
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap_or_default();
                if !fields.contains_key(name) {
                    return Err(format!("{at}: required {name} missing"));
                }
            }
            for (name, field) in fields {
                let field_schema = schema["properties"]
                    .get(name)
                    .ok_or(format!("{at}: {name} is not documented"))?;
                conforms(doc, field_schema, field, &format!("{at}.{name}"))?;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                conforms(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
            }
        }
        Value::String(s) => {
            // JSON Schema counts characters, not bytes.
            let length = s.chars().count() as u64;
            if let Some(max) = schema["maxLength"].as_u64()
                && length > max
            {
                return Err(format!("{at}: longer than {max}"));
            }
            if let Some(min) = schema["minLength"].as_u64()
                && length < min
            {
                return Err(format!("{at}: shorter than {min}"));
            }
        }
        _ => {}
    }
    Ok(())
}

fn check<T: serde::Serialize>(doc: &Value, schema: &str, resource: &T) {
    let value = serde_json::to_value(resource).expect("serialize");
    let reference = json!({ "$ref": format!("#/components/schemas/{schema}") });
    if let Err(e) = conforms(doc, &reference, &value, "$") {
        panic!("{e}\n{value:#}");
    }
}

/// `check`, and every documented field served: without a selection a resource is whole (the
/// schemas of resources `fields` selects from cannot say so with `required`).
fn check_whole<T: serde::Serialize>(doc: &Value, schema: &str, resource: &T) {
    check(doc, schema, resource);
    let value = serde_json::to_value(resource).expect("serialize");
    let documented = doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .expect("properties");
    let served = value.as_object().expect("an object");
    for name in documented.keys() {
        assert!(
            served.contains_key(name),
            "{schema}.{name} documented, not served"
        );
    }
}

fn image_set(id: &str) -> Value {
    let image = |size: &str, width: u32| json!({ "url": format!("https://cdn.example/{id}/{size}.webp"), "width": width, "height": width });
    json!({
        "thumb": image("thumb", 96), "small": image("small", 240), "medium": image("medium", 480),
        "large": image("large", 960), "xlarge": image("xlarge", 1600), "original": image("original", 3200)
    })
}

/// A product as the catalog sends it, wire-fat.
fn backend_product(id: &str) -> backends::Product {
    serde_json::from_value(json!({
        "id": id, "sku": "HOM-00001-7F", "title": "Oak Lamp 1", "brand": "Nordlicht",
        "category": "home", "description": "A lamp.", "price": { "amount": "19.99", "currency": "EUR" },
        "listPrice": { "amount": "24.99", "currency": "EUR" }, "images": image_set(id),
        "stock": { "available": 3, "warehouse": "BER-1" }, "audit": { "version": 1 }
    }))
    .expect("catalog product")
}

fn backend_order() -> backends::Order {
    let line = |product: &str| {
        json!({ "productId": product, "title": "Old title", "sku": "OLD-1", "quantity": 2,
                "unitPrice": { "amount": "5.00", "currency": "EUR" } })
    };
    serde_json::from_value(json!({
        "id": "o-1-1", "userId": "1", "status": "SHIPPED", "total": { "amount": "20.00", "currency": "EUR" },
        "items": [line("p1"), line("p2")], "placedAt": "2025-01-02T03:04:05Z", "notes": "…"
    }))
    .expect("order")
}

fn backend_shipment(order_id: &str) -> backends::Shipment {
    serde_json::from_value(json!({
        "orderId": order_id, "shipmentId": "s-1-1", "carrier": "DHL", "status": "IN_TRANSIT",
        "trackingNumber": "DH000000000001", "trackingUrl": "https://track.example/1",
        "eta": "2025-01-06", "events": []
    }))
    .expect("shipment")
}

#[test]
fn served_resources_conform_to_their_schemas() {
    let doc = super::shipped();
    check_whole(&doc, "Product", &Product::from(backend_product("p1")));
    check(
        &doc,
        "ProductBatch",
        &ProductBatch::new(&["p1", "p404"], vec![backend_product("p1")]),
    );

    let full = Order::merge(
        backend_order(),
        vec![backend_product("p1"), backend_product("p2")],
        vec![backend_shipment("o-1-1")],
        vec![],
    );
    assert_eq!(
        full.items[0].title, "Oak Lamp 1",
        "the catalog's title wins"
    );
    assert!(full.shipment.is_some());
    check_whole(&doc, "Order", &full);

    // The catalog lost a product and there is no shipment yet: nulls, not failures.
    let sparse = Order::merge(
        backend_order(),
        vec![backend_product("p1")],
        vec![backend_shipment("o-9-9")],
        vec![],
    );
    assert_eq!(sparse.items[1].title, "Old title");
    assert!(sparse.items[1].thumbnail_url.is_none() && sparse.shipment.is_none());
    check(&doc, "Order", &sparse);

    // Catalog and shipping failed: the order alone, saying what is missing.
    let degraded = Order::merge(
        backend_order(),
        vec![],
        vec![],
        vec![Degraded::Products, Degraded::Shipment],
    );
    check(&doc, "Order", &degraded);

    let page = Page {
        items: vec![Product::from(backend_product("p1"))],
        next: Some("/v1/search/products?q=lamp&cursor=MTpwOnAy".to_owned()),
    };
    check(&doc, "ProductPage", &page);
    let summary = OrderSummary::from(backend_order());
    assert_eq!(summary.item_count, 4, "two lines of two");
    check_whole(&doc, "OrderSummary", &summary);
    let last = Page {
        items: vec![summary],
        next: None,
    };
    check(&doc, "OrderSummaryPage", &last);

    check(
        &doc,
        "Problem",
        &Problem::not_found("no product with id \"p0\""),
    );
    let upstream = UpstreamError::new("shipping", UpstreamErrorKind::ServerError(503), "x");
    check(&doc, "Problem", &Problem::from(upstream));
}

#[test]
fn a_keys_usage_and_a_used_up_quota_conform_to_their_schemas() {
    use manifold::error::Code;
    use manifold::ratelimit::{QuotaUsage, RuleUsage, Usage};

    let doc = super::shipped();
    let usage = Usage {
        quotas: vec![QuotaUsage {
            name: "daily".into(),
            period: manifold::config::Period::Day,
            limit: 100_000,
            used: 12,
            remaining: 99_988,
            resets_at: "2026-11-30T00:00:00Z".into(),
        }],
        rules: vec![RuleUsage {
            name: "per-key".into(),
            limit: 6_000,
            window: 60,
            remaining: 5_999,
        }],
    };
    check(&doc, "Usage", &usage);
    check(&doc, "Usage", &Usage::default());
    let used_up = Problem::new(Code::QuotaExceeded, "the daily quota is used up")
        .with_extension("quota", "daily")
        .with_extension("resetsAt", "2026-11-30T00:00:00Z");
    check(&doc, "Problem", &used_up);
    // A member the document does not list would be caught.
    let undocumented = Problem::new(Code::QuotaExceeded, "x").with_extension("secret", 1);
    let value = serde_json::to_value(&undocumented).expect("serialize");
    let schema = json!({ "$ref": "#/components/schemas/Problem" });
    assert!(conforms(&doc, &schema, &value, "$").is_err());
}
