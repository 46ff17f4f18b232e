//! Limits checked on a parsed document before any validation rule walks it, in time linear in
//! the document: validation and the depth and complexity visitors expand every fragment
//! spread, so a query under 1 KB whose fragments each spread the next one twice costs
//! exponential time there. Here each fragment's expanded size is computed once (memoised), and
//! a document whose operations would expand past `max_fields` fields is refused. Directives
//! are checked on the way: at most `max_directives` on one location, and only the ones an
//! executable document may use (`@skip`, `@include`), so a field with 50,000 directives is one
//! error, not 50,000.

use std::collections::HashMap;

use async_graphql::Name;
use async_graphql::parser::types::{Directive, ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Pos, Positioned};

use crate::config::GraphqlConfig;

/// The directives an executable document may carry.
const KNOWN_DIRECTIVES: [&str; 2] = ["skip", "include"];

/// How large a document may be once its fragments are expanded.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Fields the operations select, every fragment spread counted in full.
    pub max_fields: u64,
    /// Directives on one field, fragment spread, inline fragment or definition.
    pub max_directives: usize,
}

impl From<&GraphqlConfig> for Bounds {
    fn from(config: &GraphqlConfig) -> Self {
        Self {
            max_fields: config.max_fields,
            max_directives: config.max_directives,
        }
    }
}

/// Why a document was refused, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    pub message: String,
    pub pos: Option<Pos>,
}

/// `Ok` when `document` is within `bounds`; else the first problem found.
pub fn check(document: &ExecutableDocument, bounds: Bounds) -> Result<(), OutOfBounds> {
    let mut walk = Walk {
        document,
        bounds,
        sizes: HashMap::new(),
    };
    for fragment in document.fragments.values() {
        walk.directives(&fragment.node.directives, fragment.pos)?;
    }
    let mut total = 0u64;
    for (_, operation) in document.operations.iter() {
        walk.directives(&operation.node.directives, operation.pos)?;
        total = total.saturating_add(walk.size(&operation.node.selection_set.node)?);
        if total > bounds.max_fields {
            return Err(OutOfBounds {
                message: format!(
                    "the operation selects more than {} fields once its fragments are expanded",
                    bounds.max_fields
                ),
                pos: Some(operation.pos),
            });
        }
    }
    Ok(())
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    bounds: Bounds,
    /// Expanded size per fragment: `None` while it is being measured (a spread back into it
    /// is a cycle, counted as nothing here; validation reports it).
    sizes: HashMap<&'a Name, Option<u64>>,
}

impl<'a> Walk<'a> {
    /// Fields `set` selects, fragments expanded. Stops early past the bound, so the sizes
    /// it adds up stay small.
    fn size(&mut self, set: &'a SelectionSet) -> Result<u64, OutOfBounds> {
        let mut total = 0u64;
        for item in &set.items {
            let size = match &item.node {
                Selection::Field(field) => {
                    self.directives(&field.node.directives, field.pos)?;
                    1 + self.size(&field.node.selection_set.node)?
                }
                Selection::InlineFragment(inline) => {
                    self.directives(&inline.node.directives, inline.pos)?;
                    self.size(&inline.node.selection_set.node)?
                }
                Selection::FragmentSpread(spread) => {
                    self.directives(&spread.node.directives, spread.pos)?;
                    self.fragment(&spread.node.fragment_name.node)?
                }
            };
            total = total.saturating_add(size);
            if total > self.bounds.max_fields {
                return Ok(total);
            }
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a Name) -> Result<u64, OutOfBounds> {
        match self.sizes.get(name) {
            Some(Some(size)) => return Ok(*size),
            Some(None) => return Ok(0), // a cycle
            None => {}
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return Ok(0); // unknown: validation reports it
        };
        self.sizes.insert(name, None);
        let size = self.size(&fragment.node.selection_set.node)?;
        self.sizes.insert(name, Some(size));
        Ok(size)
    }

    fn directives(&self, directives: &[Positioned<Directive>], at: Pos) -> Result<(), OutOfBounds> {
        if directives.len() > self.bounds.max_directives {
            return Err(OutOfBounds {
                message: format!(
                    "more than {} directives in one place",
                    self.bounds.max_directives
                ),
                pos: Some(at),
            });
        }
        for directive in directives {
            let name = directive.node.name.node.as_str();
            if !KNOWN_DIRECTIVES.contains(&name) {
                return Err(OutOfBounds {
                    message: format!("Unknown directive \"@{name}\"."),
                    pos: Some(directive.pos),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    const BOUNDS: Bounds = Bounds {
        max_fields: 1000,
        max_directives: 4,
    };

    /// Fragments `F0..Fn` where each spreads the next twice: 2^n fields once expanded.
    fn bomb(levels: usize) -> String {
        let mut query = String::from("query { ...F0 }\n");
        for i in 0..levels {
            query.push_str(&format!(
                "fragment F{i} on Query {{ a: __typename ...F{next} ...F{next} }}\n",
                next = i + 1
            ));
        }
        query.push_str(&format!("fragment F{levels} on Query {{ __typename }}\n"));
        query
    }

    fn checked(query: &str) -> Result<(), OutOfBounds> {
        check(&parse_query(query).unwrap(), BOUNDS)
    }

    #[test]
    fn expanded_size_counts_every_spread_and_stops_at_the_bound() {
        // 9 levels: 2^9 + (2^9 - 1) = 1023 fields, just over 1000; 8 levels are 511.
        assert!(checked(&bomb(8)).is_ok());
        let refused = checked(&bomb(9)).unwrap_err();
        assert!(
            refused.message.contains("more than 1000 fields"),
            "{refused:?}"
        );
        // A deep bomb is measured in linear time (memoised sizes): 2^200 fields, refused.
        assert!(checked(&bomb(200)).is_err());
    }

    #[test]
    fn aliases_and_inline_fragments_count_too() {
        let aliases: String = (0..1001).map(|i| format!("a{i}: __typename ")).collect();
        assert!(checked(&format!("{{ {aliases} }}")).is_err());
        let inline: String = (0..1001)
            .map(|i| format!("... on Query {{ a{i}: __typename }} "))
            .collect();
        assert!(checked(&format!("{{ {inline} }}")).is_err());
        assert!(checked("{ a: __typename b: __typename }").is_ok());
    }

    #[test]
    fn directives_are_capped_and_only_skip_and_include_pass() {
        assert!(checked("{ __typename @skip(if: false) @include(if: true) }").is_ok());
        let unknown = checked("{ __typename @a }").unwrap_err();
        assert_eq!(unknown.message, "Unknown directive \"@a\".");
        let many = "@skip(if: false) ".repeat(5);
        let capped = checked(&format!("{{ __typename {many} }}")).unwrap_err();
        assert!(
            capped.message.contains("more than 4 directives"),
            "{capped:?}"
        );
        assert!(checked("query Q @deprecated { __typename }").is_err());
        assert!(checked("{ ...F } fragment F on Query @a { __typename }").is_err());
    }

    #[test]
    fn cycles_and_unknown_fragments_are_left_to_validation() {
        assert!(
            checked("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }").is_ok()
        );
        assert!(checked("{ ...Missing }").is_ok());
    }
}
