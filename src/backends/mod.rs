//! Typed clients of the backend APIs (one file per service) and their models. Models hold
//! only the fields some BFF uses: serde skips the rest of a wire-fat payload without
//! allocating it. Batch loaders for GraphQL (`loaders`) live here too, since they are a
//! property of the backend APIs (which ones take a batch of ids), not of any one BFF.

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

use serde::{Deserialize, Serialize};

pub use cart::{Cart, CartLine, Carts};
pub use catalog::{Catalog, Product, ProductPage, ProductSummary, Thumbnail};
pub use loaders::Loaders;
pub use notifications::{NotificationSummary, Notifications};
pub use orders::{NewOrder, NewOrderLine, Order, OrderLine, OrderPage, Orders};
pub use promotions::{Promotion, Promotions};
pub use recommendations::{Recommendation, RecommendationList, Recommendations};
pub use reviews::{Review, ReviewList, ReviewSummary, Reviews};
pub use shipping::{Shipment, Shipping};
pub use users::{User, Users};

use crate::upstream::Upstream;

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
    pub fn new(upstreams: &BTreeMap<String, Upstream>) -> Self {
        let get = |name: &str| {
            upstreams
                .get(name)
                .cloned()
                .unwrap_or_else(|| Upstream::unconfigured(name))
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

/// An amount of money as the backends send it: a decimal string and a currency code.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Money {
    pub amount: String,
    pub currency: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Image {
    pub url: String,
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
