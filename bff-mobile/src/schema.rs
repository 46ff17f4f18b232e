//! The mobile schema: `home` and the small types the home screen draws.

use std::sync::Arc;

use async_graphql::{
    Context, EmptyMutation, EmptySubscription, Object, Result, Schema, SchemaBuilder, SimpleObject,
};
use backends::Scope;
use backends::{Money as BackendMoney, ProductSummary, UserCard};
use manifold::config::GraphqlConfig;
use manifold::error::Code;
use manifold::graphql::batch::ByKey;
use manifold::graphql::{self, Fallible, Plain, PlainList, UpstreamResultExt};
use manifold::plain_object;
use manifold::upstream::{Text, UpstreamError};
use tokio::sync::OnceCell;

pub type MobileSchema = Schema<Query, EmptyMutation, EmptySubscription>;

pub fn build(config: &GraphqlConfig) -> MobileSchema {
    graphql::harden(builder(), config).finish()
}

/// The schema before the config's limits.
pub fn builder() -> SchemaBuilder<Query, EmptyMutation, EmptySubscription> {
    Schema::build(Query, EmptyMutation, EmptySubscription)
}

pub struct Query;

#[Object]
impl Query {
    /// Everything the home screen shows, for the caller of the token. Nullable, so that a
    /// failed `me` (non-null) makes only `home` null: the errors still come with `data`.
    async fn home(&self, ctx: &Context<'_>) -> Result<Option<Home>> {
        let user_id = Scope::of(ctx)?
            .call
            .user_id()
            .ok_or_else(|| graphql::error(Code::Unauthenticated, "a user token is required"))?;
        Ok(Some(Home {
            user_id: user_id.to_owned(),
            user: OnceCell::new(),
        }))
    }
}

pub struct Home {
    user_id: String,
    /// `me` and `greeting` both need the profile: one call serves both.
    user: OnceCell<Result<Arc<UserCard>, UpstreamError>>,
}

impl Home {
    async fn user(&self, ctx: &Context<'_>) -> Result<Arc<UserCard>> {
        let scope = Scope::of(ctx)?;
        self.user
            .get_or_init(|| async {
                scope
                    .backends
                    .users
                    .card(&scope.call, &self.user_id)
                    .await
                    .map(Arc::new)
            })
            .await
            .clone()
            .gql()
    }
}

#[Object]
impl Home {
    /// A greeting by time of day (UTC) and first name, e.g. Good morning, Ada.
    async fn greeting(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let user = self.user(ctx).await?;
        let first_name = user.name.split_whitespace().next().unwrap_or(&user.name);
        Ok(Some(format!("{}, {first_name}", salutation(utc_hour()))))
    }

    /// The signed-in user. Critical: without it the screen cannot render, so it is non-null
    /// (when it fails, `home` is null). Every other field of the home is nullable: when it
    /// fails, it alone is null.
    async fn me(&self, ctx: &Context<'_>) -> Result<Plain<Me>> {
        let user = self.user(ctx).await?;
        Ok(Plain(Me {
            id: user.id.clone(),
            name: user.name.clone(),
            avatar_url: user.avatar.small.url.clone(),
        }))
    }

    async fn cart(&self, ctx: &Context<'_>) -> Result<Option<Plain<CartSummary>>> {
        let scope = Scope::of(ctx)?;
        let cart = scope
            .backends
            .cart
            .count(&scope.call, &self.user_id)
            .await
            .gql()?;
        Ok(Some(Plain(CartSummary {
            item_count: cart.item_count() as i32,
        })))
    }

    async fn notifications(&self, ctx: &Context<'_>) -> Result<Option<Plain<NotificationSummary>>> {
        let scope = Scope::of(ctx)?;
        let summary = scope
            .backends
            .notifications
            .summary(&scope.call, &self.user_id)
            .await
            .gql()?;
        Ok(Some(Plain(NotificationSummary {
            unread_count: summary.unread_count as i32,
        })))
    }

    async fn recent_orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 3, validator(minimum = 1, maximum = 20))] first: i32,
    ) -> Result<Option<PlainList<OrderSummary>>> {
        let scope = Scope::of(ctx)?;
        let mut heads = scope
            .backends
            .orders
            .heads(&scope.call, &self.user_id, first as u32)
            .await
            .gql()?;
        heads.truncate(first as usize);
        // Shipping is asked only when an `eta` is selected, once for all orders shown.
        let etas = if ctx.look_ahead().field("eta").exists() {
            let ids: Vec<Text> = heads.iter().map(|o| o.id.clone()).collect();
            Some(scope.loaders.shipment_etas(&ids).await.gql())
        } else {
            None
        };
        let eta = |id: &str| {
            Fallible(match &etas {
                Some(Ok(found)) => Ok(found.get(id).map(|s| s.eta.clone())),
                Some(Err(e)) => Err(e.clone()),
                None => Ok(None),
            })
        };
        Ok(Some(PlainList(
            heads
                .into_iter()
                .map(|o| OrderSummary {
                    item_count: o.item_count() as i32,
                    eta: eta(&o.id),
                    id: o.id,
                    status: o.status,
                    total: o.total.into(),
                })
                .collect(),
        )))
    }

    async fn recommendations(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10, validator(minimum = 1, maximum = 50))] first: i32,
    ) -> Result<Option<PlainList<ProductCard>>> {
        let scope = Scope::of(ctx)?;
        let picks = scope
            .backends
            .recommendations
            .for_user(&scope.call, &self.user_id, first as u32)
            .await
            .gql()?;
        let ids: Vec<Text> = picks
            .items
            .into_iter()
            .take(first as usize)
            .map(|r| r.product_id)
            .collect();
        let products = scope.loaders.product_summaries(&ids).await.gql()?;
        Ok(Some(PlainList(cards(&ids, products))))
    }

    async fn banners(&self, ctx: &Context<'_>) -> Result<Option<PlainList<Banner>>> {
        let scope = Scope::of(ctx)?;
        let promotions = scope
            .backends
            .promotions
            .for_user(&scope.call, &self.user_id, "home")
            .await
            .gql()?;
        Ok(Some(PlainList(
            promotions
                .into_iter()
                .map(|p| Banner {
                    id: p.id,
                    title: p.title,
                    image_url: p.images.medium.url,
                    link: p.link,
                })
                .collect(),
        )))
    }
}

// The small types below hold plain data: returned as `Plain`/`PlainList`, their selections
// are answered in one pass (`manifold::graphql::plain`), not as a future per field; the
// derive still registers them in the schema. An order's `eta` is loaded with the orders,
// for all of them at once, and a failed one is that field's error alone (`Fallible`).
#[derive(SimpleObject)]
pub struct Me {
    id: Text,
    name: Text,
    avatar_url: Text,
}

#[derive(SimpleObject)]
pub struct CartSummary {
    item_count: i32,
}

#[derive(SimpleObject)]
pub struct NotificationSummary {
    unread_count: i32,
}

#[derive(Clone, SimpleObject)]
pub struct Money {
    /// Decimal string, e.g. "19.99".
    amount: Text,
    currency: Text,
}

plain_object!(Me { "id" => id, "name" => name, "avatarUrl" => avatar_url });
plain_object!(CartSummary { "itemCount" => item_count });
plain_object!(NotificationSummary { "unreadCount" => unread_count });
plain_object!(Money { "amount" => amount, "currency" => currency });
plain_object!(OrderSummary {
    "id" => id,
    "status" => status,
    "total" => total,
    "itemCount" => item_count,
    "eta" => eta,
});
plain_object!(ProductCard {
    "id" => id,
    "title" => title,
    "price" => price,
    "thumbnailUrl" => thumbnail_url,
});
plain_object!(Banner { "id" => id, "title" => title, "imageUrl" => image_url, "link" => link });

impl From<BackendMoney> for Money {
    fn from(m: BackendMoney) -> Self {
        Money {
            amount: m.amount,
            currency: m.currency,
        }
    }
}

#[derive(SimpleObject)]
pub struct OrderSummary {
    id: Text,
    status: Text,
    total: Money,
    item_count: i32,
    /// Expected delivery date (RFC 3339), from shipping; batched over all orders shown.
    eta: Fallible<Option<Text>>,
}

#[derive(Clone, SimpleObject)]
pub struct ProductCard {
    id: Text,
    title: Text,
    price: Money,
    thumbnail_url: Text,
}

#[derive(SimpleObject)]
pub struct Banner {
    id: Text,
    title: Text,
    image_url: Text,
    link: Text,
}

/// The cards of the products recommended (`ids`, in recommendation order) that the catalog
/// knows. A summary is moved into its card (its texts not shared again); an id recommended
/// again (no longer in `products`) repeats its card.
fn cards(ids: &[Text], mut products: ByKey<Text, Arc<ProductSummary>>) -> Vec<ProductCard> {
    let mut cards: Vec<ProductCard> = Vec::with_capacity(ids.len());
    for id in ids {
        match products.remove(id) {
            Some(summary) => {
                let p = Arc::unwrap_or_clone(summary);
                cards.push(ProductCard {
                    id: p.id,
                    title: p.title,
                    price: p.price.into(),
                    thumbnail_url: p.images.thumb.url,
                });
            }
            None => {
                if let Some(again) = cards.iter().find(|c| c.id == *id) {
                    cards.push(again.clone());
                }
            }
        }
    }
    cards
}

fn utc_hour() -> u64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs / 3600) % 24
}

fn salutation(hour: u64) -> &'static str {
    match hour {
        5..=11 => "Good morning",
        12..=17 => "Good afternoon",
        _ => "Good evening",
    }
}

#[cfg(test)]
mod tests {
    use backends::{Image, Thumbnail};

    use super::*;

    fn summary(id: &str) -> Arc<ProductSummary> {
        Arc::new(ProductSummary {
            id: id.into(),
            title: format!("title of {id}").into(),
            price: BackendMoney {
                amount: "1.00".into(),
                currency: "EUR".into(),
            },
            images: Thumbnail {
                thumb: Image {
                    url: format!("https://cdn/{id}").into(),
                    width: 1,
                    height: 1,
                },
            },
        })
    }

    #[test]
    fn cards_keep_the_recommendation_order_repeat_an_id_recommended_again_and_skip_the_unknown() {
        let ids: Vec<Text> = ["p2", "p1", "gone", "p2", "p3"].map(Text::from).to_vec();
        let products: ByKey<Text, Arc<ProductSummary>> = ["p1", "p2", "p3"]
            .into_iter()
            .map(|id| (Text::from(id), summary(id)))
            .collect();
        let cards = cards(&ids, products);
        let shown: Vec<(&str, &str)> = cards
            .iter()
            .map(|c| (c.id.as_str(), c.thumbnail_url.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("p2", "https://cdn/p2"),
                ("p1", "https://cdn/p1"),
                ("p2", "https://cdn/p2"),
                ("p3", "https://cdn/p3"),
            ]
        );
        assert_eq!(cards[2].title, "title of p2");
    }
}
