//! Documents by query text, and validation done once: clients send the same few operations
//! again and again, so a parsed document is remembered (`Documents`), and one the strict
//! schema found valid with no inputs runs on the fast schema after (`Schemas`, `run`). In
//! development mode, introspection operations run on a schema of their own (`introspection`).

use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};
use async_graphql::{ObjectType, Schema, SchemaBuilder, SubscriptionType, ValidationMode};

use super::bounds::{self, Bounds, OutOfBounds};
use super::verdict::{self, Verdicts};
use super::{harden, introspection};
use crate::config::GraphqlConfig;

/// One schema, built three times from the same builder. `strict` runs every validation rule;
/// `known` and `fast` run async-graphql's fast set only (fragment cycles, uploads) and the
/// limits (depth, complexity), and execute only a remembered document that `strict` already
/// found valid with the same inputs: validation depends on nothing else, so its verdict
/// cannot have changed. Validation was 9% of the mobile home query's instructions and 8.7%
/// of the web orders page's. `known` runs a document sent alone (no variables, no choice of
/// operation), and its own verdict on it is found once too (`verdict`) and answered to the
/// requests after; `fast` runs one sent again with the same operation name and variables, to
/// the byte, without that extension: an extension puts every field's resolution through its
/// chain (~2k instructions a field), which a page of many fields pays for more than the
/// fast rules cost it (the web orders page: 3.03M instructions on `strict`, 3.57M on
/// `known`). `introspection`, in
/// development mode only, runs operations that select nothing but introspection fields,
/// past the depth and complexity limits.
pub struct Schemas<Q, M, S> {
    strict: Schema<Q, M, S>,
    known: Schema<Q, M, S>,
    fast: Schema<Q, M, S>,
    introspection: Option<Schema<Q, M, S>>,
}

impl<Q, M, S> Clone for Schemas<Q, M, S> {
    fn clone(&self) -> Self {
        Self {
            strict: self.strict.clone(),
            known: self.known.clone(),
            fast: self.fast.clone(),
            introspection: self.introspection.clone(),
        }
    }
}

impl<Q, M, S> Schemas<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    /// The schema in SDL, for the cost model.
    pub(super) fn sdl(&self) -> String {
        self.strict.sdl()
    }

    /// `builder` hardened with `config`'s limits, finished in both validation modes (and for
    /// introspection, in development mode).
    pub fn new(builder: impl Fn() -> SchemaBuilder<Q, M, S>, config: &GraphqlConfig) -> Self {
        Self {
            strict: harden(builder(), config).finish(),
            known: harden(builder(), config)
                .validation_mode(ValidationMode::Fast)
                .extension(Verdicts::default())
                .finish(),
            fast: harden(builder(), config)
                .validation_mode(ValidationMode::Fast)
                .finish(),
            introspection: introspection::schema(builder(), config),
        }
    }
}

/// Parsed documents by query text. Clients send the same few operations again and again,
/// and parsing one (async-graphql's parser) was the largest single cost of the mobile home
/// query. Bounded in count, and only short texts are kept, so a client sending a stream of
/// distinct queries only churns it. Every request is still checked against the limits, and
/// against every validation rule unless `Schemas` says the verdict is already known.
#[derive(Clone)]
pub(super) struct Documents {
    /// Keyed with foldhash: SipHash over a 1.5 KB query text was 1% of the mobile home.
    cache: moka::sync::Cache<String, Arc<Remembered>, foldhash::fast::RandomState>,
    bounds: Bounds,
}

/// A remembered document, and what the strict schema found of it.
pub(super) struct Remembered {
    document: ExecutableDocument,
    /// Set once the strict rules passed it sent alone (no variables, no choice of
    /// operation), to whether it then runs on the known schema (its verdict kept) rather
    /// than the fast one: the verdict saves the fast rules' walk over the document (~1.3k instructions
    /// a selection) and the extension that keeps it puts every field async-graphql resolves
    /// through its chain (~2k each). So the verdict, when the first answer held no more
    /// resolved fields than the document has selections (short lists, objects written plain):
    /// the mobile home resolves 8 for 30 selections; the web orders page sent alone, hundreds
    /// for 52 (3.05M instructions on the known schema, 2.34M on the fast one).
    passed_alone: OnceLock<bool>,
    /// The known schema's verdict on it alone, once found.
    verdict: verdict::Slot,
    /// Inputs the strict rules passed it with (other than none): at most `MAX_INPUT_SETS`,
    /// the least used replaced.
    passed_with: Mutex<Vec<Passed>>,
    /// Whether the document is within the bounds, found once.
    bounded: Result<(), OutOfBounds>,
    /// Its cost when sent alone (which depends on nothing else), found once.
    cost_alone: OnceLock<u64>,
    /// Whether each of its selection sets names each key once (`plain::keys_unique`).
    keys_unique: OnceLock<bool>,
}

/// One set of inputs a document passed the strict rules with.
struct Passed {
    /// The operation name and the variables, as JSON (`Remembered::inputs`).
    inputs: Box<str>,
    /// Requests that skipped the strict rules with these inputs.
    uses: u64,
}

/// How a remembered document found valid with a request's inputs runs.
enum Known {
    /// On the known schema, with the slot of its verdict (sent alone, and the verdict pays:
    /// `passed_alone`).
    Verdict(verdict::Slot),
    /// On the fast schema.
    Fast,
}

/// What a request's validation depends on besides its document.
pub(super) enum Inputs {
    /// Nothing: no variables, no choice of operation.
    Alone,
    /// Its operation name and variables, as JSON.
    With(String),
    /// Too large to keep: validated every time.
    Untracked,
}

impl Remembered {
    /// Sets of inputs kept per document: a few (a page's first request, a feed's size),
    /// not every cursor or id a client sends.
    const MAX_INPUT_SETS: usize = 8;
    /// Longer inputs are validated every time.
    const MAX_INPUTS_BYTES: usize = 512;

    fn new(document: ExecutableDocument, bounded: Result<(), OutOfBounds>) -> Self {
        Self {
            document,
            passed_alone: OnceLock::new(),
            verdict: verdict::Slot::default(),
            passed_with: Mutex::new(Vec::new()),
            bounded,
            cost_alone: OnceLock::new(),
            keys_unique: OnceLock::new(),
        }
    }

    pub(super) fn document(&self) -> &ExecutableDocument {
        &self.document
    }

    /// The cost of `request`'s operation: found once for a request that sends the document
    /// alone, else by `cost` every time.
    pub(super) fn cost(
        &self,
        request: &async_graphql::Request,
        cost: impl FnOnce(&ExecutableDocument) -> u64,
    ) -> u64 {
        if self.alone(request) {
            *self.cost_alone.get_or_init(|| cost(&self.document))
        } else {
            cost(&self.document)
        }
    }

    /// Whether each selection set of the document names each key once, its fragments spread
    /// (found once): plain answers may then be written as JSON as they resolve.
    pub(super) fn keys_unique(&self) -> bool {
        *self
            .keys_unique
            .get_or_init(|| super::plain::keys_unique(&self.document))
    }

    /// What `request`'s validation depends on besides this document.
    fn inputs(&self, request: &async_graphql::Request) -> Inputs {
        if self.alone(request) {
            return Inputs::Alone;
        }
        // The same JSON is the same inputs (a map's order kept as sent: the same request
        // again matches, another order is one more set).
        match serde_json::to_string(&(&request.operation_name, &request.variables)) {
            Ok(json) if json.len() <= Self::MAX_INPUTS_BYTES => Inputs::With(json),
            _ => Inputs::Untracked,
        }
    }

    /// How a request with `inputs` may skip the strict rules: when they passed the document
    /// with the same inputs.
    fn known(&self, inputs: &Inputs) -> Option<Known> {
        match inputs {
            Inputs::Alone => self.passed_alone.get().map(|&verdict_pays| {
                if verdict_pays {
                    Known::Verdict(self.verdict.clone())
                } else {
                    Known::Fast
                }
            }),
            Inputs::With(json) => {
                let mut passed = self.passed_with.lock().unwrap_or_else(|e| e.into_inner());
                let found = passed.iter_mut().find(|p| *p.inputs == **json)?;
                found.uses += 1;
                Some(Known::Fast)
            }
            Inputs::Untracked => None,
        }
    }

    /// The strict rules passed the document with `inputs`, and answered `data`.
    fn passed(&self, inputs: Inputs, data: &async_graphql::Value) {
        match inputs {
            Inputs::Alone => {
                let _ = self
                    .passed_alone
                    .set(resolved(data) <= selections(&self.document));
            }
            Inputs::With(json) => {
                let mut passed = self.passed_with.lock().unwrap_or_else(|e| e.into_inner());
                if passed.iter().any(|p| *p.inputs == *json) {
                    return;
                }
                let entry = Passed {
                    inputs: json.into_boxed_str(),
                    uses: 0,
                };
                if passed.len() < Self::MAX_INPUT_SETS {
                    passed.push(entry);
                } else if let Some(least) = passed.iter_mut().min_by_key(|p| p.uses) {
                    *least = entry;
                }
            }
            Inputs::Untracked => {}
        }
    }

    /// May `request` skip the rules the strict schema already passed it on?
    #[cfg(test)]
    fn known_valid(&self, request: &async_graphql::Request) -> bool {
        self.known(&self.inputs(request)).is_some()
    }

    /// Whether `request`'s validation depends on this document alone: no variables, and no
    /// operation name, or the name of the document's only operation (which is what no name
    /// selects; Apollo clients always send it).
    fn alone(&self, request: &async_graphql::Request) -> bool {
        request.variables.is_empty()
            && match &request.operation_name {
                None => true,
                Some(name) => match &self.document.operations {
                    DocumentOperations::Multiple(ops) => {
                        ops.len() == 1 && ops.keys().all(|only| only.as_str() == name)
                    }
                    DocumentOperations::Single(_) => false,
                },
            }
    }
}

impl Documents {
    const CAPACITY: u64 = 512;
    const MAX_QUERY_BYTES: usize = 16 * 1024;
}

impl Documents {
    pub(super) fn new(bounds: Bounds) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(Self::CAPACITY)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            bounds,
        }
    }

    /// Sets `request`'s document from the remembered one for its text (parsing and
    /// remembering it otherwise), and gives the remembered entry. A query that does not parse
    /// is not kept; neither is a very long one.
    pub(super) fn remember(&self, request: &mut async_graphql::Request) -> Option<Arc<Remembered>> {
        if let Some(remembered) = self.cache.get(&request.query) {
            request.set_parsed_query(remembered.document.clone());
            return Some(remembered);
        }
        if request.query.len() > Self::MAX_QUERY_BYTES {
            return None;
        }
        let document = request.parsed_query().ok()?;
        let remembered = Arc::new(Remembered::new(
            document.clone(),
            bounds::check(document, self.bounds),
        ));
        self.cache.insert(request.query.clone(), remembered.clone());
        Some(remembered)
    }

    /// Whether the request's document is within the bounds: the remembered verdict, or
    /// measured now. A document that does not parse passes (execution reports the parse).
    pub(super) fn bounded(
        &self,
        request: &mut async_graphql::Request,
        remembered: Option<&Remembered>,
    ) -> Result<(), OutOfBounds> {
        match remembered {
            Some(remembered) => remembered.bounded.clone(),
            None => match request.parsed_query() {
                Ok(document) => bounds::check(document, self.bounds),
                Err(_) => Ok(()),
            },
        }
    }
}

impl Default for Documents {
    /// With the default config's bounds.
    fn default() -> Self {
        Self::new(Bounds::from(&GraphqlConfig::default()))
    }
}

/// Executes `request` on the strict schema, or on the known or fast one when its remembered
/// document passed the strict rules with the same inputs; a strict pass is remembered. An
/// introspection operation runs on the introspection schema when there is one, and is
/// refused when there is none.
///
/// Each execution is boxed: async-graphql's execution future is kilobytes, and held inline
/// it made every future above it as large (the waves' driver, the endpoint's execution, the
/// handler axum moves twice), each copied whole on its way in (~9k instructions of `memcpy`
/// per mobile home query); boxed, it is copied once.
pub(super) async fn run<Q, M, S>(
    schemas: &Schemas<Q, M, S>,
    mut request: async_graphql::Request,
    remembered: Option<&Remembered>,
) -> async_graphql::Response
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    if let Ok(document) = request.parsed_query() {
        match &schemas.introspection {
            Some(schema) if introspection::roots(document).only_introspection => {
                return Box::pin(schema.execute(request)).await;
            }
            Some(_) => {}
            None => {
                if let Err(refused) = introspection::refuse(document) {
                    return async_graphql::Response::from_errors(vec![refused]);
                }
            }
        }
    }
    let Some(remembered) = remembered else {
        return Box::pin(schemas.strict.execute(request)).await;
    };
    let inputs = remembered.inputs(&request);
    match remembered.known(&inputs) {
        Some(Known::Verdict(verdict)) => {
            let request = request.data(verdict::Known(verdict));
            return Box::pin(schemas.known.execute(request)).await;
        }
        Some(Known::Fast) => return Box::pin(schemas.fast.execute(request)).await,
        None => {}
    }
    let response = Box::pin(schemas.strict.execute(request)).await;
    // Validation refused it iff nothing was executed: no data at all.
    if response.data != async_graphql::Value::Null {
        remembered.passed(inputs, &response.data);
    }
    response
}

/// The fields async-graphql resolved into `value` (an object written plain is one).
fn resolved(value: &async_graphql::Value) -> usize {
    match value {
        async_graphql::Value::Object(fields) => fields.values().map(|v| 1 + resolved(v)).sum(),
        async_graphql::Value::List(items) => items.iter().map(resolved).sum(),
        _ => 0,
    }
}

/// The field selections of `document`, its operations' and fragments', nested ones included.
fn selections(document: &ExecutableDocument) -> usize {
    fn count(set: &SelectionSet) -> usize {
        let one = |item: &Selection| match item {
            Selection::Field(field) => 1 + count(&field.node.selection_set.node),
            Selection::InlineFragment(inline) => count(&inline.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        };
        set.items.iter().map(|item| one(&item.node)).sum()
    }
    let operations = document.operations.iter();
    let fragments = document.fragments.values();
    operations
        .map(|(_, op)| count(&op.node.selection_set.node))
        .chain(fragments.map(|f| count(&f.node.selection_set.node)))
        .sum()
}

#[cfg(test)]
mod tests;
