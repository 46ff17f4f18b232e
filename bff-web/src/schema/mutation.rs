//! The web client's writes: adding to the cart and placing an order. Inputs are checked (see
//! `input`) before any backend is called.

use async_graphql::{Context, ID, InputObject, Object, Result};
use backends::Scope;
use backends::{NewOrder, NewOrderLine};
use manifold::graphql::{RequireScope, UpstreamResultExt};

use super::order::Order;
use super::viewer::Cart;
use super::{input, user_id};

pub struct Mutation;

#[Object]
impl Mutation {
    /// Adds `quantity` of a product to the viewer's cart (to its line, if it has one) and
    /// returns the whole cart. Requires scope `cart:write`. Null, with an error, when it
    /// fails: the other mutations of the request still answer.
    #[graphql(guard = "RequireScope(\"cart:write\")")]
    async fn add_to_cart(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        #[graphql(default = 1, desc = "1 to 99.")] quantity: i32,
    ) -> Result<Option<Cart>> {
        input::product_id("productId", &product_id)?;
        let quantity = input::quantity("quantity", quantity)?;
        let user_id = user_id(ctx)?;
        let scope = Scope::of(ctx)?;
        let cart = scope
            .backends
            .cart
            .add_item(&scope.call, user_id, &product_id, quantity)
            .await
            .gql()?;
        Ok(Some(Cart::from(cart)))
    }

    /// Places an order for the viewer. Retrying with the same `idempotencyKey` (one the client
    /// made for this checkout, e.g. a UUID) returns the order the first attempt placed and
    /// never places a second one. Requires scope `orders:write`. Null, with an error, when it
    /// fails.
    #[graphql(guard = "RequireScope(\"orders:write\")")]
    async fn place_order(
        &self,
        ctx: &Context<'_>,
        input: PlaceOrderInput,
        #[graphql(desc = "1 to 128 visible ASCII characters, e.g. a UUID.")]
        idempotency_key: String,
    ) -> Result<Option<Order>> {
        let order = input.validated()?;
        input::idempotency_key(&idempotency_key)?;
        user_id(ctx)?;
        let scope = Scope::of(ctx)?;
        let placed = scope
            .backends
            .orders
            .create(&scope.call, &order, &idempotency_key)
            .await
            .gql()?;
        Ok(Some(Order::from(placed)))
    }
}

#[derive(InputObject)]
pub struct PlaceOrderInput {
    /// 1 to 50 lines.
    items: Vec<OrderLineInput>,
}

#[derive(InputObject)]
pub struct OrderLineInput {
    product_id: ID,
    /// 1 to 99.
    quantity: i32,
}

impl PlaceOrderInput {
    /// The order for the orders service, or the first problem with the input.
    fn validated(self) -> Result<NewOrder> {
        input::order_lines(self.items.len())?;
        let items = self
            .items
            .into_iter()
            .enumerate()
            .map(|(i, line)| {
                input::product_id(format_args!("input.items[{i}].productId"), &line.product_id)?;
                Ok(NewOrderLine {
                    quantity: input::quantity(
                        format_args!("input.items[{i}].quantity"),
                        line.quantity,
                    )?,
                    product_id: line.product_id.0,
                })
            })
            .collect::<Result<_>>()?;
        Ok(NewOrder { items })
    }
}
