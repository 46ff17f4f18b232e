//! Argument checks. Each failure is a `BAD_USER_INPUT` error whose message starts with the
//! argument it is about (`input.items[2].quantity: must be 1 to 99, got 0`), raised before any
//! backend is called. The limits are also in the schema's argument descriptions.

use std::fmt::Display;

use async_graphql::{Error, Result};
use manifold::error::Code;
use manifold::graphql;

/// Items on one page of a connection (the orders service's cap, too).
pub const MAX_PAGE: i32 = 50;
/// Units of one product in one cart or order line.
pub const MAX_QUANTITY: i32 = 99;
/// Lines of one order.
pub const MAX_ORDER_LINES: usize = 50;
/// Reviews one product shows (the reviews service sends at most that many).
pub const MAX_REVIEWS: i32 = 10;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// The catalog's ids are a few characters; anything this long is not one.
const MAX_PRODUCT_ID_LEN: usize = 64;
const MAX_SEARCH_LEN: usize = 100;

fn bad_input(argument: impl Display, problem: impl Display) -> Error {
    graphql::error(Code::BadUserInput, format!("{argument}: {problem}"))
}

fn in_range(argument: impl Display, value: i32, max: i32) -> Result<u32> {
    match u32::try_from(value) {
        Ok(n) if value >= 1 && value <= max => Ok(n),
        _ => Err(bad_input(
            argument,
            format!("must be 1 to {max}, got {value}"),
        )),
    }
}

/// `first` of a connection.
pub fn page_size(first: i32) -> Result<u32> {
    in_range("first", first, MAX_PAGE)
}

/// `first` of a product's reviews.
pub fn review_count(first: i32) -> Result<u32> {
    in_range("first", first, MAX_REVIEWS)
}

pub fn quantity(argument: impl Display, quantity: i32) -> Result<u32> {
    in_range(argument, quantity, MAX_QUANTITY)
}

/// Only the shape: whether the catalog knows the product is the backend's call.
pub fn product_id(argument: impl Display, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_PRODUCT_ID_LEN {
        return Err(bad_input(
            argument,
            format!("must be 1 to {MAX_PRODUCT_ID_LEN} characters"),
        ));
    }
    Ok(())
}

/// The words to search for, trimmed.
pub fn search_text(query: &str) -> Result<&str> {
    let words = query.trim();
    if words.is_empty() {
        return Err(bad_input("query", "must not be blank"));
    }
    if words.chars().count() > MAX_SEARCH_LEN {
        return Err(bad_input(
            "query",
            format!("must be at most {MAX_SEARCH_LEN} characters"),
        ));
    }
    Ok(words)
}

/// 1 to 128 visible ASCII characters: the key travels to the orders service as a header, and
/// one the service would trim or refuse must not get that far.
pub fn idempotency_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(bad_input(
            "idempotencyKey",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"),
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad_input(
            "idempotencyKey",
            "must be visible ASCII characters (letters, digits, punctuation; no spaces)",
        ));
    }
    Ok(())
}

/// The number of lines of an order.
pub fn order_lines(lines: usize) -> Result<()> {
    if lines == 0 || lines > MAX_ORDER_LINES {
        return Err(bad_input(
            "input.items",
            format!("must hold 1 to {MAX_ORDER_LINES} lines, got {lines}"),
        ));
    }
    Ok(())
}
