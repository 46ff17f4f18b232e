//! The sample shop's typed service clients (one file per service) and their models, built on
//! the core's public API exactly as a team builds clients for its own services: each client
//! holds a `manifold::cache::CachedUpstream` and turns its methods into paths and typed
//! answers. Models hold only the fields some BFF uses: serde skips the rest of a wire-fat
//! payload without allocating it. Batch loaders for GraphQL (`loaders`) live here too, since
//! they are a property of the backend APIs (which ones take a batch of ids), not of any one
//! BFF; `Scope` is what a GraphQL resolver finds in its request data.

#![forbid(unsafe_code)]

mod cart;
mod catalog;
pub mod loaders;
mod notifications;
mod orders;
mod promotions;
mod recommendations;
mod reviews;
mod shipping;
mod users;

use std::collections::BTreeMap;

use manifold::cache::CachedUpstream;
use manifold::request::CallContext;
use manifold::upstream::Text;
use manifold::upstream::{path_query, path_segment};
use serde::{Deserialize, Serialize};

pub use cart::{Cart, CartCount, CartLine, Carts};
pub use catalog::{
    CATEGORIES, Catalog, Product, ProductFilter, ProductPage, ProductSummary, Thumbnail,
};
pub use loaders::Loaders;
pub use notifications::{NotificationSummary, Notifications};
pub use orders::{NewOrder, NewOrderLine, Order, OrderHead, OrderLine, OrderPage, Orders};
pub use promotions::{BannerImage, Promotion, Promotions};
pub use recommendations::{Recommendation, RecommendationList, Recommendations};
pub use reviews::{Review, ReviewList, ReviewSummary, Reviews};
pub use shipping::{Shipment, ShipmentEta, Shipping};
pub use users::{SmallAvatar, User, UserCard, Users};

/// The backend names the typed clients use, as they appear under `[upstreams]`.
pub const SERVICES: [&str; 9] = [
    "users",
    "orders",
    "catalog",
    "recommendations",
    "notifications",
    "cart",
    "reviews",
    "shipping",
    "promotions",
];

/// Every backend client. Cheap to clone. A service missing from the BFF's config fails each
/// call fast with `UPSTREAM_UNAVAILABLE` (the BFF declares what it needs, so that is a bug).
#[derive(Clone, Debug)]
pub struct Backends {
    pub users: Users,
    pub orders: Orders,
    pub catalog: Catalog,
    pub recommendations: Recommendations,
    pub notifications: Notifications,
    pub cart: Carts,
    pub reviews: Reviews,
    pub shipping: Shipping,
    pub promotions: Promotions,
}

impl Backends {
    /// The clients over a gateway's upstreams (`Gateway::upstreams`).
    pub fn new(upstreams: &BTreeMap<String, CachedUpstream>) -> Self {
        let get = |name: &str| {
            upstreams
                .get(name)
                .cloned()
                .unwrap_or_else(|| CachedUpstream::unconfigured(name))
        };
        Self {
            users: Users(get("users")),
            orders: Orders(get("orders")),
            catalog: Catalog(get("catalog")),
            recommendations: Recommendations(get("recommendations")),
            notifications: Notifications(get("notifications")),
            cart: Carts(get("cart")),
            reviews: Reviews(get("reviews")),
            shipping: Shipping(get("shipping")),
            promotions: Promotions(get("promotions")),
        }
    }
}

/// What a resolver needs to call backends for the current client request: the clients, the
/// request's context, and its batch loaders (one set per request, never shared).
pub struct Scope {
    pub backends: Backends,
    pub call: CallContext,
    pub loaders: Loaders,
}

impl Scope {
    /// The scope of the request being resolved; every request a GraphQL BFF executes with
    /// `Scope::attach` as its request data has one.
    pub fn of<'a>(ctx: &async_graphql::Context<'a>) -> async_graphql::Result<&'a Scope> {
        ctx.data::<Scope>()
    }

    /// `request` with a scope over `backends` for `call`: the request data a GraphQL BFF
    /// gives `manifold::graphql::routes`.
    pub fn attach(
        backends: &Backends,
        request: async_graphql::Request,
        call: &CallContext,
    ) -> async_graphql::Request {
        let scope = Scope {
            loaders: Loaders::new(backends.clone(), call.clone()),
            backends: backends.clone(),
            call: call.clone(),
        };
        request.data(scope)
    }
}

/// An amount of money as the backends send it: a decimal string and a currency code.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Money {
    pub amount: Text,
    pub currency: Text,
}

/// A line of an order or a cart narrowed to its quantity (`fields=items.quantity`): for
/// counting the items, not showing them.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct LineQuantity {
    pub quantity: u32,
}

impl LineQuantity {
    /// How many items `lines` hold in all.
    pub fn count(lines: &[LineQuantity]) -> u32 {
        lines.iter().map(|line| line.quantity).sum()
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Image {
    pub url: Text,
    pub width: u32,
    pub height: u32,
}

/// The six sizes every image comes in.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ImageSet {
    pub thumb: Image,
    pub small: Image,
    pub medium: Image,
    pub large: Image,
    pub xlarge: Image,
    pub original: Image,
}

/// The `{"items": [...]}` envelope of list and batch endpoints.
#[derive(Debug, Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

/// `/{collection}/{id}?fields={fields}`: one entity, only the members named (its id encoded
/// as a path segment).
fn entity_path(collection: &str, id: &str, fields: &str) -> String {
    let id = path_segment(id);
    path_query(&["/", collection, "/", &id], &[("fields", fields)])
}

/// `/{collection}?{key}={ids}`, with `&fields={fields}` when that is `Some`: a batch of
/// entities, only the members named when there are some.
fn batch_path(collection: &str, key: &str, ids: &str, fields: Option<&str>) -> String {
    let path = ["/", collection];
    match fields {
        Some(fields) => path_query(&path, &[(key, ids), ("fields", fields)]),
        None => path_query(&path, &[(key, ids)]),
    }
}

/// Comma-joins ids for a batch query parameter.
fn join_ids<S: AsRef<str>>(ids: &[S]) -> String {
    let mut out = String::new();
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(id.as_ref());
    }
    out
}
