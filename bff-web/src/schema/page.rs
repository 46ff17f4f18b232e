//! Relay-style cursor connections over the backends' cursor pages. Both paged services
//! (orders, catalog search) answer `nextCursor` = the id of the first item of the next page.
//! So the cursor of an edge says where the page AFTER it starts: the id of the next item on
//! this page, or for the last edge the backend's `nextCursor` (nothing when there is no more).
//! `after: <any edge's cursor>` is then one backend call with that cursor, and no item is
//! fetched twice. Cursors are opaque (base64 JSON) so clients do not build them.

use async_graphql::connection::{Connection, CursorType, Edge, OpaqueCursor};
use async_graphql::{OutputType, Result};
use manifold::error::Code;
use manifold::graphql;
use serde::{Deserialize, Serialize};

/// One page of a connection.
pub type Page<Node> = Connection<OpaqueCursor<ResumeAt>, Node>;

/// Where the page after an edge starts: a backend cursor, or `None` past the last item.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeAt(Option<String>);

/// Backend cursors are item ids; anything much longer was not issued by us.
const MAX_CURSOR_LEN: usize = 256;

/// Where the requested page starts, from the `after` argument.
#[derive(Debug, PartialEq, Eq)]
pub enum PageStart {
    /// No `after`: the first page.
    First,
    /// At this backend cursor.
    At(String),
    /// After the last item: the page is empty, no backend call needed.
    PastEnd,
}

impl PageStart {
    pub fn decode(after: Option<&str>) -> Result<Self> {
        let Some(after) = after else {
            return Ok(PageStart::First);
        };
        let invalid = || graphql::error(Code::BadUserInput, "after: not a cursor this API issued");
        if after.len() > MAX_CURSOR_LEN {
            return Err(invalid());
        }
        let OpaqueCursor(ResumeAt(at)) =
            OpaqueCursor::<ResumeAt>::decode_cursor(after).map_err(|_| invalid())?;
        Ok(match at {
            Some(cursor) if !cursor.is_empty() => PageStart::At(cursor),
            Some(_) => return Err(invalid()),
            None => PageStart::PastEnd,
        })
    }

    /// The backend cursor to ask with (none for the first page).
    pub fn cursor(&self) -> Option<&str> {
        match self {
            PageStart::At(cursor) => Some(cursor),
            PageStart::First | PageStart::PastEnd => None,
        }
    }

    /// Whether items come before this page.
    fn after_something(&self) -> bool {
        !matches!(self, PageStart::First)
    }
}

/// The empty page after the last item.
pub fn past_end<Node: OutputType>() -> Page<Node> {
    Connection::new(true, false)
}

/// A connection from one backend page: `nodes` with their ids, in order, and the backend's
/// `next` cursor. At most `first` nodes are kept: should the backend send more, the next page
/// starts at the first node dropped.
pub fn connection<Node: OutputType>(
    nodes: impl IntoIterator<Item = (String, Node)>,
    next: Option<String>,
    first: usize,
    start: &PageStart,
) -> Page<Node> {
    let mut nodes: Vec<(String, Node)> = nodes.into_iter().collect();
    let mut resume = next;
    if nodes.len() > first {
        nodes.truncate(first + 1);
        resume = nodes.pop().map(|(id, _)| id);
    }
    let mut connection = Connection::new(start.after_something(), resume.is_some());
    // Walk backwards: each edge resumes where the edge after it begins.
    let mut edges: Vec<_> = nodes
        .into_iter()
        .rev()
        .map(|(id, node)| Edge::new(OpaqueCursor(ResumeAt(resume.replace(id))), node))
        .collect();
    edges.reverse();
    connection.edges = edges;
    connection
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursors(page: &Page<i32>) -> Vec<PageStart> {
        page.edges
            .iter()
            .map(|e| PageStart::decode(Some(&e.cursor.encode_cursor())).unwrap())
            .collect()
    }

    fn nodes(ids: &[&str]) -> Vec<(String, i32)> {
        ids.iter()
            .zip(0..)
            .map(|(id, n)| (id.to_string(), n))
            .collect()
    }

    #[test]
    fn each_edge_resumes_at_the_next_item() {
        let page = connection(
            nodes(&["a", "b", "c"]),
            Some("d".into()),
            3,
            &PageStart::First,
        );
        assert!(!page.has_previous_page);
        assert!(page.has_next_page);
        assert_eq!(
            cursors(&page),
            [
                PageStart::At("b".into()),
                PageStart::At("c".into()),
                PageStart::At("d".into())
            ]
        );
    }

    #[test]
    fn the_last_page_ends_past_the_end() {
        let start = PageStart::At("x".into());
        let page = connection(nodes(&["x", "y"]), None, 5, &start);
        assert!(page.has_previous_page);
        assert!(!page.has_next_page);
        assert_eq!(cursors(&page)[1], PageStart::PastEnd);
    }

    #[test]
    fn extra_items_from_the_backend_are_dropped_and_resumed_at() {
        let page = connection(nodes(&["a", "b", "c"]), None, 2, &PageStart::First);
        assert_eq!(page.edges.len(), 2);
        assert_eq!(page.edges[1].node, 1);
        assert!(page.has_next_page);
        assert_eq!(cursors(&page)[1], PageStart::At("c".into()));
    }

    #[test]
    fn foreign_cursors_are_refused() {
        assert_eq!(PageStart::decode(None).unwrap(), PageStart::First);
        assert!(PageStart::decode(Some("o-42-3")).is_err());
        assert!(PageStart::decode(Some("")).is_err());
        assert!(PageStart::decode(Some(&"A".repeat(1000))).is_err());
        let empty_id = OpaqueCursor(ResumeAt(Some(String::new()))).encode_cursor();
        assert!(PageStart::decode(Some(&empty_id)).is_err());
    }
}
