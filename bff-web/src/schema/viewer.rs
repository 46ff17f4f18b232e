//! The signed-in user's corner of the graph: profile (users), cart (cart) and orders (orders,
//! as a cursor connection). Each part calls only its own service, and only when asked for.

use async_graphql::{Context, ID, Object, Result};
use backends::Scope;
use manifold::graphql::{Plain, UpstreamResultExt};

use super::input;
use super::order::Order;
use super::page::{self, Page, PageStart};
use super::product::Product;
use super::{Images, Money};

pub struct Viewer {
    /// From the verified token, never from an argument.
    user_id: String,
}

impl Viewer {
    pub fn new(user_id: String) -> Self {
        Viewer { user_id }
    }
}

#[Object]
impl Viewer {
    async fn id(&self) -> ID {
        ID(self.user_id.clone())
    }

    async fn profile(&self, ctx: &Context<'_>) -> Result<Option<Profile>> {
        let scope = Scope::of(ctx)?;
        let user = scope
            .backends
            .users
            .get(&scope.call, &self.user_id)
            .await
            .gql()?;
        Ok(Some(Profile(user)))
    }

    async fn cart(&self, ctx: &Context<'_>) -> Result<Option<Cart>> {
        let scope = Scope::of(ctx)?;
        let cart = scope
            .backends
            .cart
            .get(&scope.call, &self.user_id)
            .await
            .gql()?;
        Ok(Some(Cart::from(cart)))
    }

    /// The viewer's orders, newest first.
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10, desc = "1 to 50.")] first: i32,
        #[graphql(desc = "An edge's cursor (e.g. `pageInfo.endCursor`): the page after it.")]
        after: Option<String>,
    ) -> Result<Option<Page<Order>>> {
        let first = input::page_size(first)?;
        let start = PageStart::decode(after.as_deref())?;
        let scope = Scope::of(ctx)?;
        if start == PageStart::PastEnd {
            return Ok(Some(page::past_end()));
        }
        let found = scope
            .backends
            .orders
            .list(&scope.call, &self.user_id, first, start.cursor())
            .await
            .gql()?;
        let nodes = found
            .items
            .into_iter()
            .map(|o| (o.id.to_string(), Order::from(o)));
        Ok(Some(page::connection(
            nodes,
            found.next_cursor.map(String::from),
            first as usize,
            &start,
        )))
    }
}

pub struct Profile(backends::User);

#[Object(serial)]
impl Profile {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn email(&self) -> &str {
        &self.0.email
    }

    async fn avatar(&self) -> Images<'_> {
        Images::Set(&self.0.avatar)
    }

    /// BCP 47, e.g. "de-DE".
    async fn locale(&self) -> &str {
        &self.0.locale
    }
}

pub struct Cart(backends::Cart);

impl From<backends::Cart> for Cart {
    fn from(cart: backends::Cart) -> Self {
        Cart(cart)
    }
}

#[Object]
impl Cart {
    async fn items(&self) -> Vec<CartItem<'_>> {
        self.0.items.iter().map(CartItem).collect()
    }

    /// Units over all lines.
    async fn item_count(&self) -> i32 {
        self.0.item_count() as i32
    }

    async fn subtotal(&self) -> Plain<Money> {
        Money::of(&self.0.subtotal)
    }
}

pub struct CartItem<'a>(&'a backends::CartLine);

#[Object]
impl CartItem<'_> {
    async fn product_id(&self) -> ID {
        ID(self.0.product_id.to_string())
    }

    async fn quantity(&self) -> i32 {
        self.0.quantity as i32
    }

    async fn unit_price(&self) -> Plain<Money> {
        Money::of(&self.0.unit_price)
    }

    /// From the catalog, batched over the cart; null when it no longer lists the product.
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        Product::load_in_list(ctx, &self.0.product_id).await
    }
}
