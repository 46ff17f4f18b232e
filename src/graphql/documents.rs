//! Documents by query text, and validation done once: clients send the same few operations
//! again and again, so a parsed document is remembered (`Documents`), and one the strict
//! schema found valid with no inputs runs on the fast schema after (`Schemas`, `run`). In
//! development mode, introspection operations run on a schema of their own (`introspection`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
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

/// A remembered document, and whether the strict schema found it valid when sent alone
/// (no variables, no operation name).
pub(super) struct Remembered {
    document: ExecutableDocument,
    valid_alone: AtomicBool,
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
    /// Sent alone: on the known schema, with the slot of its verdict.
    Alone(verdict::Slot),
    /// Sent with the same inputs as before: on the fast schema.
    SameInputs,
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
            valid_alone: AtomicBool::new(false),
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
            Inputs::Alone => self
                .valid_alone
                .load(Ordering::Relaxed)
                .then(|| Known::Alone(self.verdict.clone())),
            Inputs::With(json) => {
                let mut passed = self.passed_with.lock().unwrap_or_else(|e| e.into_inner());
                let found = passed.iter_mut().find(|p| *p.inputs == **json)?;
                found.uses += 1;
                Some(Known::SameInputs)
            }
            Inputs::Untracked => None,
        }
    }

    /// The strict rules passed the document with `inputs`.
    fn passed(&self, inputs: Inputs) {
        match inputs {
            Inputs::Alone => self.valid_alone.store(true, Ordering::Relaxed),
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
        Some(Known::Alone(verdict)) => {
            let request = request.data(verdict::Known(verdict));
            return Box::pin(schemas.known.execute(request)).await;
        }
        Some(Known::SameInputs) => return Box::pin(schemas.fast.execute(request)).await,
        None => {}
    }
    let response = Box::pin(schemas.strict.execute(request)).await;
    // Validation refused it iff nothing was executed: no data at all.
    if response.data != async_graphql::Value::Null {
        remembered.passed(inputs);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(query: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "query": query })).unwrap()
    }

    /// A request from a JSON body, through `Documents::remember`, as the endpoint does.
    fn parse_request(
        body: &[u8],
        documents: &Documents,
    ) -> Result<(async_graphql::Request, Option<Arc<Remembered>>), serde_json::Error> {
        let mut request: async_graphql::Request = serde_json::from_slice(body)?;
        let remembered = documents.remember(&mut request);
        Ok((request, remembered))
    }

    #[test]
    fn a_parsed_document_is_remembered_and_reused_by_its_text() {
        let documents = Documents::default();
        let query = "{ home { greeting } }";
        parse_request(&body(query), &documents).unwrap();
        assert!(documents.cache.contains_key(query), "not remembered");

        // The second request with that text gets the remembered document: the parsed copy
        // is already set, even though this request never ran the parser itself.
        documents.cache.insert(
            query.to_owned(),
            Arc::new(Remembered::new(
                async_graphql::parser::parse_query("{ other }").unwrap(),
                Ok(()),
            )),
        );
        let (mut again, _) = parse_request(&body(query), &documents).unwrap();
        let Ok(doc) = again.parsed_query() else {
            panic!("no document")
        };
        assert!(
            format!("{doc:?}").contains("other"),
            "not the remembered one"
        );
    }

    #[test]
    fn a_document_sent_alone_is_costed_once_and_one_with_variables_every_time() {
        let documents = Documents::default();
        let query = "query Home($n: Int) { home(first: $n) { greeting } }";
        let (mut request, remembered) = parse_request(&body(query), &documents).unwrap();
        let remembered = remembered.expect("remembered");
        let costed = std::cell::Cell::new(0);
        let cost = |_: &ExecutableDocument| {
            costed.set(costed.get() + 1);
            7
        };
        assert_eq!(remembered.cost(&request, cost), 7);
        assert_eq!(remembered.cost(&request, cost), 7);
        assert_eq!(
            costed.get(),
            1,
            "a document alone costs the same every time"
        );
        request.variables = async_graphql::Variables::from_json(serde_json::json!({ "n": 50 }));
        remembered.cost(&request, cost);
        remembered.cost(&request, cost);
        assert_eq!(costed.get(), 3, "variables can change the cost");
    }

    struct Greeter;

    #[async_graphql::Object]
    impl Greeter {
        async fn hello(&self, name: Option<String>) -> String {
            format!("hello {}", name.unwrap_or_default())
        }
    }

    type GreeterSchemas =
        Schemas<Greeter, async_graphql::EmptyMutation, async_graphql::EmptySubscription>;

    fn greeter() -> GreeterSchemas {
        Schemas::new(
            || {
                Schema::build(
                    Greeter,
                    async_graphql::EmptyMutation,
                    async_graphql::EmptySubscription,
                )
            },
            &GraphqlConfig::default(),
        )
    }

    /// One request through `parse_request` and `run`, as the endpoint does.
    async fn send(
        schemas: &GreeterSchemas,
        documents: &Documents,
        body: &[u8],
    ) -> (async_graphql::Response, Arc<Remembered>) {
        let (request, remembered) = parse_request(body, documents).unwrap();
        let remembered = remembered.expect("remembered");
        (run(schemas, request, Some(&remembered)).await, remembered)
    }

    #[tokio::test]
    async fn a_document_found_valid_alone_skips_the_strict_rules_after() {
        let (schemas, documents) = (greeter(), Documents::default());
        let (first, remembered) = send(&schemas, &documents, &body("{ hello }")).await;
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        assert!(remembered.valid_alone.load(Ordering::Relaxed));
        assert!(
            remembered.verdict.get().is_none(),
            "the strict run keeps none"
        );
        let (again, _) = send(&schemas, &documents, &body("{ hello }")).await;
        assert_eq!(again.data, first.data);
        assert!(
            remembered.verdict.get().is_some(),
            "the known schema's verdict is kept for the requests after"
        );

        // The mark is what picks the known schema: on a document the strict rules refuse
        // (an argument of the wrong type), the known schema executes it, and the resolver's
        // argument parsing fails the field instead.
        let wrong = body(r#"{ hello(name: 1) }"#);
        let (strict, remembered) = send(&schemas, &documents, &wrong).await;
        assert_eq!(strict.data, async_graphql::Value::Null);
        assert!(!strict.errors.is_empty());
        remembered.valid_alone.store(true, Ordering::Relaxed);
        // A validation error has no path; an execution error names the field.
        assert!(strict.errors.iter().all(|e| e.path.is_empty()));
        let (known, _) = send(&schemas, &documents, &wrong).await;
        assert!(
            known.errors.iter().any(|e| !e.path.is_empty()),
            "{:?}",
            known.errors
        );
    }

    #[tokio::test]
    async fn invalid_documents_stay_strict_and_requests_with_inputs_are_not_alone() {
        let (schemas, documents) = (greeter(), Documents::default());
        let wrong = body(r#"{ hello(name: 1) }"#);
        for _ in 0..2 {
            let (response, remembered) = send(&schemas, &documents, &wrong).await;
            assert_eq!(response.data, async_graphql::Value::Null);
            assert!(!response.errors.is_empty());
            assert!(!remembered.valid_alone.load(Ordering::Relaxed));
        }
        // Valid, but with variables (or an operation name choosing among several) validation
        // also depends on them.
        let query = "query Hi($n: String) { hello(name: $n) }";
        let two = "query Hi { hello } query Ho { hello }";
        let inputs = [
            serde_json::json!({ "query": query, "variables": { "n": "x" } }),
            serde_json::json!({ "query": query, "operationName": "Hi", "variables": { "n": "x" } }),
            serde_json::json!({ "query": two, "operationName": "Hi" }),
        ];
        for input in inputs {
            let body = serde_json::to_vec(&input).unwrap();
            let (response, remembered) = send(&schemas, &documents, &body).await;
            assert!(response.errors.is_empty(), "{:?}", response.errors);
            assert!(!remembered.valid_alone.load(Ordering::Relaxed), "{input}");
        }
    }

    fn with_name(query: &str, n: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "query": query, "variables": { "n": n } })).unwrap()
    }

    /// A document sent with variables is validated with them once: the same inputs again
    /// run on the fast schema, other inputs on the strict one first.
    #[tokio::test]
    async fn a_document_found_valid_with_inputs_skips_the_strict_rules_for_the_same_inputs() {
        let (schemas, documents) = (greeter(), Documents::default());
        let query = "query Hi($n: String) { hello(name: $n) }";
        let (first, remembered) = send(&schemas, &documents, &with_name(query, "ada")).await;
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        assert!(!remembered.valid_alone.load(Ordering::Relaxed));
        let (request, _) = parse_request(&with_name(query, "ada"), &documents).unwrap();
        assert!(remembered.known_valid(&request), "the same inputs again");
        let (request, _) = parse_request(&with_name(query, "bob"), &documents).unwrap();
        assert!(
            !remembered.known_valid(&request),
            "other inputs are validated first"
        );

        let uses = || remembered.passed_with.lock().unwrap()[0].uses;
        let before = uses();
        let (again, _) = send(&schemas, &documents, &with_name(query, "ada")).await;
        assert_eq!(again.data, first.data);
        assert_eq!(uses(), before + 1, "skipped the strict rules");
        assert!(
            remembered.verdict.get().is_none(),
            "the known schema did not run"
        );

        // Inputs the strict rules refuse are not kept: a variable of another type than the
        // argument's, refused by validation (no path) every time.
        let wrong = serde_json::to_vec(&serde_json::json!({
            "query": "query Hi($n: Int) { hello(name: $n) }", "variables": { "n": 1 }
        }))
        .unwrap();
        for _ in 0..2 {
            let (response, remembered) = send(&schemas, &documents, &wrong).await;
            assert_eq!(response.data, async_graphql::Value::Null);
            assert!(!response.errors.is_empty());
            assert!(response.errors.iter().all(|e| e.path.is_empty()));
            assert!(remembered.passed_with.lock().unwrap().is_empty());
        }

        // The mark is what picks the fast schema: with those inputs marked, the fast schema
        // executes the document, and the resolver's argument parsing fails the field instead.
        let (request, remembered) = parse_request(&wrong, &documents).unwrap();
        let remembered = remembered.expect("remembered");
        remembered.passed(remembered.inputs(&request));
        let (fast, _) = send(&schemas, &documents, &wrong).await;
        assert!(
            fast.errors.iter().any(|e| !e.path.is_empty()),
            "{:?}",
            fast.errors
        );
    }

    #[tokio::test]
    async fn a_few_sets_of_inputs_are_kept_per_document_the_most_used_staying() {
        let (schemas, documents) = (greeter(), Documents::default());
        let query = "query Hi($n: String) { hello(name: $n) }";
        for _ in 0..3 {
            send(&schemas, &documents, &with_name(query, "hot")).await;
        }
        let mut remembered = None;
        for i in 0..Remembered::MAX_INPUT_SETS + 3 {
            let name = format!("n{i}");
            remembered = Some(send(&schemas, &documents, &with_name(query, &name)).await.1);
        }
        let remembered = remembered.expect("sent");
        let passed = remembered.passed_with.lock().unwrap();
        assert_eq!(passed.len(), Remembered::MAX_INPUT_SETS);
        assert!(
            passed.iter().any(|p| p.inputs.contains("\"hot\"")),
            "the used one stays"
        );
        // Inputs past the size kept are validated every time.
        let long = "x".repeat(Remembered::MAX_INPUTS_BYTES);
        let (request, _) = parse_request(&with_name(query, &long), &documents).unwrap();
        assert!(matches!(remembered.inputs(&request), Inputs::Untracked));
    }

    #[tokio::test]
    async fn the_name_of_the_only_operation_is_as_good_as_none() {
        let (schemas, documents) = (greeter(), Documents::default());
        let named = serde_json::json!({ "query": "query Hi { hello }", "operationName": "Hi" });
        let body = serde_json::to_vec(&named).unwrap();
        let (response, remembered) = send(&schemas, &documents, &body).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        assert!(remembered.valid_alone.load(Ordering::Relaxed));
        let (request, _) = parse_request(&body, &documents).unwrap();
        assert!(remembered.known_valid(&request));
        let other = serde_json::json!({ "query": "query Hi { hello }", "operationName": "Ho" });
        let (request, _) = parse_request(&serde_json::to_vec(&other).unwrap(), &documents).unwrap();
        assert!(
            !remembered.known_valid(&request),
            "another name is validated again"
        );
    }

    #[test]
    fn unparseable_and_oversized_queries_are_not_kept() {
        let documents = Documents::default();
        parse_request(&body("{ not graphql"), &documents).unwrap();
        let long = format!(
            "{{ home {{ greeting }} }} #{}",
            "x".repeat(Documents::MAX_QUERY_BYTES)
        );
        parse_request(&body(&long), &documents).unwrap();
        documents.cache.run_pending_tasks();
        assert_eq!(documents.cache.entry_count(), 0);
    }
}
