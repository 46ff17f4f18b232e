//! The resources the partner API answers with, and the JSON Schema of each (for the OpenAPI
//! document). These shapes are a contract with partners: fields are added, never renamed or
//! removed, within `/v1`. They are built from the backend models and trimmed to what a
//! partner needs (two image URLs instead of six sizes, no audit fields).

use std::collections::HashMap;

use manifold::error::{Code, Problem};
use manifold::rest::Page;
use manifold::upstream::Text;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::MAX_PAGE;
use crate::ids::{self, MAX_BATCH};

pub use backends::Money;

/// A type with a schema under `#/components/schemas/{NAME}`.
pub trait Schema {
    const NAME: &'static str;
    fn schema() -> Value;
}

/// Every component schema of the document, by name.
pub fn schemas() -> Vec<(&'static str, Value)> {
    fn entry<T: Schema>() -> (&'static str, Value) {
        (T::NAME, T::schema())
    }
    vec![
        entry::<Money>(),
        entry::<Product>(),
        entry::<ProductBatch>(),
        entry::<Page<Product>>(),
        entry::<Order>(),
        entry::<OrderSummary>(),
        entry::<Page<OrderSummary>>(),
        entry::<OrderItem>(),
        entry::<Shipment>(),
        entry::<Problem>(),
        entry::<OpenApiDocument>(),
        entry::<crate::usage::Usage>(),
        entry::<crate::usage::QuotaUsage>(),
        entry::<crate::usage::RuleUsage>(),
    ]
}

/// Why a resource `?fields=` selects from lists no `required` fields: a selection leaves the
/// others out.
pub(crate) const SELECTED: &str =
    "Every field is present unless the request's `fields` selected some.";

/// `{"$ref": "#/components/schemas/<T>"}`.
pub fn schema_ref<T: Schema>() -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", T::NAME) })
}

fn id_schema() -> Value {
    ids::schema()
}

/// The schema of a page of `T`s (`manifold::rest::Page`).
fn page_schema<T: Schema>(what: &str) -> Value {
    json!({
        "type": "object",
        "description": format!("One page of {what}. Follow `next` (also sent as `Link: <next>; \
                                rel=\"next\"`) until it is null; a page may hold fewer items \
                                than `limit` before the last."),
        "required": ["items", "next"],
        "properties": {
            "items": { "type": "array", "items": schema_ref::<T>(), "maxItems": MAX_PAGE },
            "next": {
                "type": ["string", "null"],
                "format": "uri-reference",
                "description": "The next page: this request's path and parameters with the \
                                next page's `cursor`. Null on the last page."
            }
        }
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub id: Text,
    pub sku: Text,
    pub title: Text,
    pub brand: Text,
    pub category: Text,
    pub description: Text,
    pub price: Money,
    /// 960 px wide: a product page.
    pub image_url: Text,
    /// 240 px wide: lists and search results.
    pub thumbnail_url: Text,
}

impl Product {
    /// Its top-level fields, as `?fields=` names them.
    pub const FIELDS: &'static [&'static str] = &[
        "id",
        "sku",
        "title",
        "brand",
        "category",
        "description",
        "price",
        "imageUrl",
        "thumbnailUrl",
    ];
}

impl From<backends::Product> for Product {
    fn from(p: backends::Product) -> Self {
        Product {
            id: p.id,
            sku: p.sku,
            title: p.title,
            brand: p.brand,
            category: p.category,
            description: p.description,
            price: p.price,
            image_url: p.images.large.url,
            thumbnail_url: p.images.small.url,
        }
    }
}

impl Schema for Product {
    const NAME: &'static str = "Product";

    fn schema() -> Value {
        json!({
            "type": "object",
            "description": format!("A product of the catalog. {SELECTED}"),
            "properties": {
                "id": id_schema(),
                "sku": { "type": "string", "examples": ["HOM-00042-7F"] },
                "title": { "type": "string" },
                "brand": { "type": "string" },
                "category": { "type": "string" },
                "description": { "type": "string" },
                "price": schema_ref::<Money>(),
                "imageUrl": {
                    "type": "string", "format": "uri",
                    "description": "Product image, 960 px wide."
                },
                "thumbnailUrl": {
                    "type": "string", "format": "uri",
                    "description": "Product image, 240 px wide."
                }
            }
        })
    }
}

/// The answer to a batch lookup.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductBatch {
    pub items: Vec<Product>,
    pub missing: Vec<String>,
}

impl ProductBatch {
    /// Arranges what the catalog found in the order of `asked`; the rest is `missing`.
    pub fn new(asked: &[&str], found: Vec<backends::Product>) -> Self {
        let mut found: HashMap<Text, backends::Product> =
            found.into_iter().map(|p| (p.id.clone(), p)).collect();
        let mut batch = ProductBatch {
            items: Vec::with_capacity(found.len()),
            missing: Vec::new(),
        };
        for id in asked {
            match found.remove(*id) {
                Some(product) => batch.items.push(product.into()),
                None => batch.missing.push((*id).to_owned()),
            }
        }
        batch
    }
}

impl Schema for ProductBatch {
    const NAME: &'static str = "ProductBatch";

    fn schema() -> Value {
        json!({
            "type": "object",
            "description": "Products found, in the order asked, and the ids not found.",
            "required": ["items", "missing"],
            "properties": {
                "items": { "type": "array", "items": schema_ref::<Product>(), "maxItems": MAX_BATCH },
                "missing": { "type": "array", "items": id_schema(), "maxItems": MAX_BATCH }
            }
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: Text,
    pub status: Text,
    pub placed_at: Text,
    pub total: Money,
    pub items: Vec<OrderItem>,
    pub shipment: Option<Shipment>,
    /// Parts left out because the service behind them failed; empty when complete.
    pub degraded: Vec<Degraded>,
}

/// A part of a merged resource that could not be filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Degraded {
    /// Items carry the order's own title and SKU and no image.
    Products,
    /// `shipment` is null because shipping failed, not because there is none.
    Shipment,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    pub product_id: Text,
    pub sku: Text,
    pub title: Text,
    /// `None` only when the catalog no longer knows the product.
    pub thumbnail_url: Option<Text>,
    pub quantity: u32,
    pub unit_price: Money,
}

impl Order {
    /// Its top-level fields, as `?fields=` names them.
    pub const FIELDS: &'static [&'static str] = &[
        "id", "status", "placedAt", "total", "items", "shipment", "degraded",
    ];

    /// The order with its items' product details (`products`, from one catalog batch) and its
    /// shipment (the first of `shipments` that is for this order).
    pub fn merge(
        order: backends::Order,
        products: Vec<backends::Product>,
        shipments: Vec<backends::Shipment>,
        degraded: Vec<Degraded>,
    ) -> Self {
        let products: HashMap<&str, &backends::Product> =
            products.iter().map(|p| (p.id.as_str(), p)).collect();
        let items = order
            .items
            .into_iter()
            .map(|line| {
                // The catalog's current facts where it has them, the order's record otherwise.
                let product = products.get(line.product_id.as_str());
                OrderItem {
                    sku: product.map_or(line.sku, |p| p.sku.clone()),
                    title: product.map_or(line.title, |p| p.title.clone()),
                    thumbnail_url: product.map(|p| p.images.small.url.clone()),
                    product_id: line.product_id,
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                }
            })
            .collect();
        let shipment = shipments
            .into_iter()
            .find(|s| s.order_id == order.id)
            .map(Shipment::from);
        Order {
            id: order.id,
            status: order.status,
            placed_at: order.placed_at,
            total: order.total,
            items,
            shipment,
            degraded,
        }
    }
}

impl Schema for Page<Product> {
    const NAME: &'static str = "ProductPage";

    fn schema() -> Value {
        page_schema::<Product>("products")
    }
}

impl Schema for Page<OrderSummary> {
    const NAME: &'static str = "OrderSummaryPage";

    fn schema() -> Value {
        page_schema::<OrderSummary>("orders, newest first")
    }
}

/// An order in a list: what tells orders apart, without their items and shipment.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummary {
    pub id: Text,
    pub status: Text,
    pub placed_at: Text,
    pub total: Money,
    /// Units ordered, all lines together.
    pub item_count: u32,
}

impl OrderSummary {
    /// Its top-level fields, as `?fields=` names them.
    pub const FIELDS: &'static [&'static str] = &["id", "status", "placedAt", "total", "itemCount"];
}

impl From<backends::Order> for OrderSummary {
    fn from(order: backends::Order) -> Self {
        OrderSummary {
            item_count: order.items.iter().map(|line| line.quantity).sum(),
            id: order.id,
            status: order.status,
            placed_at: order.placed_at,
            total: order.total,
        }
    }
}

impl Schema for OrderSummary {
    const NAME: &'static str = "OrderSummary";

    fn schema() -> Value {
        json!({
            "type": "object",
            "description": format!("An order in a customer's list; `GET /v1/orders/{{id}}` has \
                                    the rest. {SELECTED}"),
            "properties": {
                "id": id_schema(),
                "status": {
                    "type": "string",
                    "examples": ["PLACED", "PROCESSING", "SHIPPED", "DELIVERED", "CANCELLED"]
                },
                "placedAt": { "type": "string", "format": "date-time" },
                "total": schema_ref::<Money>(),
                "itemCount": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Units ordered, all lines together."
                }
            }
        })
    }
}

impl Schema for Order {
    const NAME: &'static str = "Order";

    fn schema() -> Value {
        json!({
            "type": "object",
            "description": format!("An order, its items with product details, and its \
                                    shipment. {SELECTED}"),
            "required": ["degraded"],
            "properties": {
                "id": id_schema(),
                "status": {
                    "type": "string",
                    "examples": ["PLACED", "PROCESSING", "SHIPPED", "DELIVERED", "CANCELLED"]
                },
                "placedAt": { "type": "string", "format": "date-time" },
                "total": schema_ref::<Money>(),
                "items": { "type": "array", "items": schema_ref::<OrderItem>() },
                "shipment": {
                    "description": "Null until the order has a shipment (or when `degraded` \
                                    lists `shipment`).",
                    "oneOf": [schema_ref::<Shipment>(), { "type": "null" }]
                },
                "degraded": {
                    "type": "array",
                    "description": "Parts left out because the service behind them failed: \
                                    `products` (items carry the order's own title and SKU and \
                                    no image) or `shipment`. Empty when the order is complete.",
                    "items": { "type": "string", "enum": ["products", "shipment"] }
                }
            }
        })
    }
}

impl Schema for OrderItem {
    const NAME: &'static str = "OrderItem";

    fn schema() -> Value {
        json!({
            "type": "object",
            "description": "One line of an order. Title and SKU are the catalog's current ones.",
            "required": ["productId", "sku", "title", "thumbnailUrl", "quantity", "unitPrice"],
            "properties": {
                "productId": id_schema(),
                "sku": { "type": "string" },
                "title": { "type": "string" },
                "thumbnailUrl": {
                    "type": ["string", "null"], "format": "uri",
                    "description": "Product image, 240 px wide; null if the product is no longer \
                                    in the catalog."
                },
                "quantity": { "type": "integer", "minimum": 1 },
                "unitPrice": schema_ref::<Money>()
            }
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    pub carrier: Text,
    pub status: Text,
    pub tracking_number: Text,
    pub tracking_url: Text,
    pub eta: Text,
}

impl From<backends::Shipment> for Shipment {
    fn from(s: backends::Shipment) -> Self {
        Shipment {
            carrier: s.carrier,
            status: s.status,
            tracking_number: s.tracking_number,
            tracking_url: s.tracking_url,
            eta: s.eta,
        }
    }
}

impl Schema for Shipment {
    const NAME: &'static str = "Shipment";

    fn schema() -> Value {
        json!({
            "type": "object",
            "description": "Where an order's parcel is.",
            "required": ["carrier", "status", "trackingNumber", "trackingUrl", "eta"],
            "properties": {
                "carrier": { "type": "string" },
                "status": {
                    "type": "string",
                    "examples": ["LABEL_CREATED", "IN_TRANSIT", "DELIVERED", "CANCELLED"]
                },
                "trackingNumber": { "type": "string" },
                "trackingUrl": { "type": "string", "format": "uri" },
                "eta": { "type": "string", "format": "date" }
            }
        })
    }
}

impl Schema for Money {
    const NAME: &'static str = "Money";

    fn schema() -> Value {
        json!({
            "type": "object",
            "description": "An amount as a decimal string (no floating point) and its currency.",
            "required": ["amount", "currency"],
            "properties": {
                "amount": { "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$", "examples": ["19.99"] },
                "currency": { "type": "string", "pattern": "^[A-Z]{3}$", "examples": ["EUR"] }
            }
        })
    }
}

impl Schema for Problem {
    const NAME: &'static str = "Problem";

    fn schema() -> Value {
        json!({
            "type": "object",
            "description": "An error, as RFC 9457 problem details with a stable `code`.",
            "required": ["type", "title", "status", "code", "detail"],
            "properties": {
                "type": { "type": "string", "format": "uri-reference", "examples": ["about:blank"] },
                "title": { "type": "string" },
                "status": { "type": "integer", "minimum": 400, "maximum": 599 },
                "code": {
                    "type": "string",
                    "description": "Stable, machine-readable error code.",
                    "examples": EXAMPLE_CODES.map(Code::as_str)
                },
                "detail": { "type": "string" },
                "service": {
                    "type": "string",
                    "description": "The backend service that failed, for upstream errors."
                },
                "quota": {
                    "type": "string",
                    "description": "The quota that is used up, for `QUOTA_EXCEEDED`."
                },
                "resetsAt": {
                    "type": "string", "format": "date-time",
                    "description": "When that quota is whole again, for `QUOTA_EXCEEDED`."
                }
            }
        })
    }
}

/// The codes a partner meets most, the `code` schema's examples: taken from the core's `Code`,
/// so the document cannot name a code the API does not send.
const EXAMPLE_CODES: [Code; 6] = [
    Code::BadRequest,
    Code::Unauthenticated,
    Code::Forbidden,
    Code::NotFound,
    Code::UpstreamUnavailable,
    Code::UpstreamTimeout,
];

/// The body of `/openapi.json` (a schema of its own would be the OpenAPI meta-schema).
pub struct OpenApiDocument;

impl Schema for OpenApiDocument {
    const NAME: &'static str = "OpenApiDocument";

    fn schema() -> Value {
        json!({
            "type": "object",
            "description": "An OpenAPI 3.1 document.",
            "required": ["openapi", "info"],
            "properties": { "openapi": { "type": "string", "const": "3.1.0" } }
        })
    }
}
