//! The known schema's validation verdict on a remembered document, found once. A document
//! the strict rules passed alone (`documents::Schemas`) runs on the known schema, whose fast
//! rules still walked the whole document for every request: fragment cycles, uploads, and
//! the cache control, complexity and depth calculators (async-graphql runs them in its fast
//! mode too, and each field looks its type up in the registry by a SipHash of its name): 38k
//! instructions, 6.6% of the mobile home query. Their verdict depends only on the document,
//! the request's inputs and the schema, and a document alone (no variables, no choice of
//! operation) on the same schema has the same verdict every time: so the first one is kept
//! beside the document, and this extension, on the known schema only, answers it for the
//! requests after. Its limits were checked when it was found (a verdict is only kept when
//! the rules passed it), and the schema it was found on is the endpoint's own for its life.

use std::sync::{Arc, OnceLock};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{ServerError, ValidationResult};

/// Where the verdict on one remembered document is kept.
pub(super) type Slot = Arc<OnceLock<ValidationResult>>;

/// Request data: the verdict slot of the request's document, set only on a request whose
/// verdict depends on that document alone.
pub(super) struct Known(pub(super) Slot);

/// The extension of the known schema: the kept verdict, or the rules' (kept when they pass).
#[derive(Clone, Default)]
pub(super) struct Verdicts(Arc<Remember>);

#[derive(Default)]
struct Remember;

impl ExtensionFactory for Verdicts {
    fn create(&self) -> Arc<dyn Extension> {
        self.0.clone()
    }
}

#[async_trait::async_trait]
impl Extension for Remember {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let Some(Known(slot)) = ctx.data_opt::<Known>() else {
            return next.run(ctx).await;
        };
        if let Some(verdict) = slot.get() {
            return Ok(*verdict);
        }
        let verdict = next.run(ctx).await?;
        let _ = slot.set(verdict);
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{CacheControl, EmptyMutation, EmptySubscription, Object, Schema};

    use super::*;

    struct Query;

    #[Object(cache_control(max_age = 60))]
    impl Query {
        async fn hello(&self) -> &str {
            "hello"
        }
    }

    fn schema(complexity: usize) -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .limit_complexity(complexity)
            .extension(Verdicts::default())
            .finish()
    }

    fn known(slot: &Slot) -> async_graphql::Request {
        async_graphql::Request::new("{ hello }").data(Known(slot.clone()))
    }

    #[tokio::test]
    async fn a_kept_verdict_answers_without_the_rules() {
        let schema = schema(10);
        let slot = Slot::default();
        let first = schema.execute(known(&slot)).await;
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        let kept = slot.get().expect("the verdict of the rules is kept");
        assert_eq!(kept.cache_control.max_age, 60);
        assert_eq!(first.cache_control.max_age, 60);

        // A verdict the rules would not give (their cache control is 60 s) is the one used:
        // the rules did not run.
        let slot = Slot::new(OnceLock::from(ValidationResult {
            cache_control: CacheControl {
                max_age: 4242,
                ..CacheControl::default()
            },
            complexity: 1,
            depth: 1,
        }));
        let again = schema.execute(known(&slot)).await;
        assert!(again.errors.is_empty(), "{:?}", again.errors);
        assert_eq!(again.data, first.data);
        assert_eq!(again.cache_control.max_age, 4242);

        // Without the slot, the rules run as ever.
        let plain = schema.execute("{ hello }").await;
        assert_eq!(plain.cache_control.max_age, 60);
    }

    #[tokio::test]
    async fn a_refusal_is_not_kept() {
        let schema = schema(0);
        let slot = Slot::default();
        for _ in 0..2 {
            let refused = schema.execute(known(&slot)).await;
            assert!(
                refused
                    .errors
                    .iter()
                    .any(|e| e.message.contains("too complex")),
                "{:?}",
                refused.errors
            );
            assert!(slot.get().is_none());
        }
    }
}
