//! The web schema. Queries: `viewer` (profile, cart, orders), `product`, `search`; mutations:
//! `addToCart`, `placeOrder`. One file per corner of the graph; the small value types every
//! corner shares (money, images) are here.
//!
//! Data from each backend hangs off a nullable field, so a failing service costs the fields it
//! serves (null, plus an error with `extensions.code` and `service`), never the response.

mod input;
mod mutation;
mod order;
mod page;
mod product;
mod viewer;

use async_graphql::{
    Context, EmptySubscription, ID, Object, Result, Schema, SchemaBuilder, SimpleObject,
};
use backends::Scope;
use manifold::config::GraphqlConfig;
use manifold::error::Code;
use manifold::graphql::{self, Plain, UpstreamResultExt};
use manifold::plain_object;
use manifold::upstream::Text;

use mutation::Mutation;
use page::{Page, PageStart};
use product::Product;
use viewer::Viewer;

pub type WebSchema = Schema<Query, Mutation, EmptySubscription>;

pub fn build(config: &GraphqlConfig) -> WebSchema {
    graphql::harden(builder(), config).finish()
}

/// The schema before the config's limits.
pub fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query, Mutation, EmptySubscription)
}

pub struct Query;

#[Object]
impl Query {
    /// The signed-in user: profile, cart and orders.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        Ok(Viewer::new(user_id(ctx)?.to_owned()))
    }

    /// A product with its full details; null when the catalog does not know the id.
    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Product>> {
        Product::load(ctx, &id).await
    }

    /// Catalog products whose title contains every word of `query`, in catalog order.
    async fn search(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Words, at most 100 characters.")] query: String,
        #[graphql(default = 20, desc = "1 to 50.")] first: i32,
        #[graphql(desc = "An edge's cursor (e.g. `pageInfo.endCursor`): the page after it.")]
        after: Option<String>,
    ) -> Result<Option<Page<Product>>> {
        let words = input::search_text(&query)?;
        let first = input::page_size(first)?;
        let start = PageStart::decode(after.as_deref())?;
        let scope = Scope::of(ctx)?;
        if start == PageStart::PastEnd {
            return Ok(Some(page::past_end()));
        }
        let found = scope
            .backends
            .catalog
            .search(&scope.call, words, first, start.cursor())
            .await
            .gql()?;
        let nodes = found
            .items
            .into_iter()
            .map(|p| (p.id.to_string(), Product::from(p)));
        Ok(Some(page::connection(
            nodes,
            found.next_cursor.map(String::from),
            first as usize,
            &start,
        )))
    }
}

/// The verified user of the token (the JWT's `sub`).
fn user_id<'a>(ctx: &Context<'a>) -> Result<&'a str> {
    Scope::of(ctx)?
        .call
        .user_id()
        .ok_or_else(|| graphql::error(Code::Unauthenticated, "a user token is required"))
}

// The plain-data objects here and beside (image sets, a profile, a review) resolve their fields
// in turn (`serial`): nothing in them waits, and async-graphql would otherwise make each
// field a future of a concurrent set (5% of the mobile home query). Money, a shipment, a
// rating summary and an image are answered as plain objects (`Plain`): one pass for their
// selection.

// An amount of money. Returned as `Plain`: its selection is answered in one pass
// (`manifold::graphql::plain`), not as a resolved field each; an orders page shows dozens.
// (A doc comment here would become the schema's description of the type.)
#[derive(SimpleObject)]
pub struct Money {
    /// Decimal string, e.g. "19.99": exact, unlike a float.
    amount: Text,
    /// ISO 4217 code, e.g. "EUR".
    currency: Text,
}

plain_object!(Money { "amount" => amount, "currency" => currency });

impl Money {
    /// `money` to answer (its texts shared, not copied).
    pub fn of(money: &backends::Money) -> Plain<Money> {
        Plain(Money {
            amount: money.amount.clone(),
            currency: money.currency.clone(),
        })
    }
}

// An image in one size. Returned as `Plain`, like `Money`: a page shows a few dozen.
#[derive(SimpleObject)]
pub struct Image {
    url: Text,
    /// Pixels.
    width: i32,
    /// Pixels.
    height: i32,
}

plain_object!(Image { "url" => url, "width" => width, "height" => height });

impl Image {
    /// `image` to answer (its URL shared, not copied).
    fn of(image: &backends::Image) -> Plain<Image> {
        Plain(Image {
            url: image.url.clone(),
            width: image.width as i32,
            height: image.height as i32,
        })
    }
}

/// One picture in the sizes a web page draws, for `srcset`. The backends' original (full
/// resolution) is left out: no page should load it.
pub enum Images<'a> {
    /// Every size.
    Set(&'a backends::ImageSet),
    /// The thumbnail alone: a product loaded as a summary, for a selection that asks no
    /// other size (`product::summary_suffices`).
    Thumb(&'a backends::Image),
}

impl<'a> Images<'a> {
    fn set(&self) -> async_graphql::Result<&'a backends::ImageSet> {
        match self {
            Images::Set(set) => Ok(set),
            Images::Thumb(_) => Err("only the thumbnail was loaded".into()),
        }
    }
}

#[Object(serial)]
impl Images<'_> {
    async fn thumb(&self) -> Plain<Image> {
        match self {
            Images::Set(set) => Image::of(&set.thumb),
            Images::Thumb(thumb) => Image::of(thumb),
        }
    }

    async fn small(&self) -> async_graphql::Result<Plain<Image>> {
        Ok(Image::of(&self.set()?.small))
    }

    async fn medium(&self) -> async_graphql::Result<Plain<Image>> {
        Ok(Image::of(&self.set()?.medium))
    }

    async fn large(&self) -> async_graphql::Result<Plain<Image>> {
        Ok(Image::of(&self.set()?.large))
    }

    async fn xlarge(&self) -> async_graphql::Result<Plain<Image>> {
        Ok(Image::of(&self.set()?.xlarge))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `query` as a caller holding every write scope but without a request scope, so no
    /// resolver gets as far as a backend: a field whose arguments pass the checks fails for
    /// want of the scope instead.
    async fn error(query: &str) -> String {
        let identity = manifold::auth::Identity::new(
            manifold::auth::Principal::User("42".into()),
            vec!["cart:write".into(), "orders:write".into()],
            None,
        )
        .expect("identity");
        let request = async_graphql::Request::new(query).data(manifold::graphql::Caller(Some(
            std::sync::Arc::new(identity),
        )));
        let response = build(&GraphqlConfig::default()).execute(request).await;
        let errors = response.errors;
        assert_eq!(errors.len(), 1, "{query}: {errors:?}");
        let error = &errors[0];
        if error.message.contains("Scope") {
            return "ok".into();
        }
        let code = error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .map(|c| c.to_string());
        assert_eq!(code.as_deref(), Some("\"BAD_USER_INPUT\""), "{errors:?}");
        error.message.clone()
    }

    fn search(first: i32) -> String {
        format!("{{ search(query: \"lamp\", first: {first}) {{ pageInfo {{ hasNextPage }} }} }}")
    }

    fn add_to_cart(product_id: &str, quantity: i32) -> String {
        format!(
            "mutation {{ addToCart(productId: {product_id:?}, quantity: {quantity}) {{ itemCount }} }}"
        )
    }

    fn place_order(lines: &[(&str, i32)], key: &str) -> String {
        let lines: Vec<String> = lines
            .iter()
            .map(|(id, q)| format!("{{ productId: {id:?}, quantity: {q} }}"))
            .collect();
        format!(
            "mutation {{ placeOrder(input: {{ items: [{}] }}, idempotencyKey: {key:?}) {{ id }} }}",
            lines.join(", ")
        )
    }

    #[tokio::test]
    async fn page_sizes_are_1_to_50() {
        assert_eq!(error(&search(0)).await, "first: must be 1 to 50, got 0");
        assert_eq!(error(&search(51)).await, "first: must be 1 to 50, got 51");
        assert_eq!(error(&search(-1)).await, "first: must be 1 to 50, got -1");
        assert_eq!(error(&search(1)).await, "ok");
        assert_eq!(error(&search(50)).await, "ok");
    }

    #[tokio::test]
    async fn search_needs_words_and_a_cursor_of_ours() {
        let blank = "{ search(query: \"  \") { pageInfo { hasNextPage } } }";
        assert_eq!(error(blank).await, "query: must not be blank");
        let long = format!(
            "{{ search(query: {:?}) {{ pageInfo {{ hasNextPage }} }} }}",
            "x".repeat(101)
        );
        assert_eq!(error(&long).await, "query: must be at most 100 characters");
        let forged = "{ search(query: \"lamp\", after: \"p10\") { pageInfo { hasNextPage } } }";
        assert_eq!(error(forged).await, "after: not a cursor this API issued");
    }

    #[tokio::test]
    async fn cart_additions_are_1_to_99_of_a_product() {
        assert_eq!(
            error(&add_to_cart("p1", 0)).await,
            "quantity: must be 1 to 99, got 0"
        );
        assert_eq!(
            error(&add_to_cart("p1", 100)).await,
            "quantity: must be 1 to 99, got 100"
        );
        assert_eq!(
            error(&add_to_cart("", 1)).await,
            "productId: must be 1 to 64 characters"
        );
        assert_eq!(error(&add_to_cart("p1", 99)).await, "ok");
    }

    #[tokio::test]
    async fn orders_have_1_to_50_lines_of_1_to_99() {
        let line = ("p1", 1);
        assert_eq!(
            error(&place_order(&[], "k")).await,
            "input.items: must hold 1 to 50 lines, got 0"
        );
        assert_eq!(
            error(&place_order(&[line; 51], "k")).await,
            "input.items: must hold 1 to 50 lines, got 51"
        );
        assert_eq!(
            error(&place_order(&[line, ("p2", 100)], "k")).await,
            "input.items[1].quantity: must be 1 to 99, got 100"
        );
        assert_eq!(
            error(&place_order(&[("", 1)], "k")).await,
            "input.items[0].productId: must be 1 to 64 characters"
        );
        assert_eq!(error(&place_order(&[line; 50], "k")).await, "ok");
    }

    #[tokio::test]
    async fn idempotency_keys_are_1_to_128_visible_characters() {
        let line = [("p1", 1)];
        let too_long = "k".repeat(129);
        for key in ["", too_long.as_str()] {
            assert_eq!(
                error(&place_order(&line, key)).await,
                "idempotencyKey: must be 1 to 128 characters"
            );
        }
        for key in ["two words", "tab\t", "caf\u{e9}"] {
            let message = error(&place_order(&line, key)).await;
            assert!(
                message.starts_with("idempotencyKey: must be visible ASCII"),
                "{key:?}: {message}"
            );
        }
        assert_eq!(error(&place_order(&line, &"k".repeat(128))).await, "ok");
    }
}
