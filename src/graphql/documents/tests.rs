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

    /// A list of objects: an answer with more resolved fields than the query's selections.
    async fn greetings(&self) -> Vec<Greeting> {
        ["ada", "bob", "cy"]
            .map(|name| Greeting {
                text: format!("hello {name}"),
            })
            .into()
    }
}

#[derive(async_graphql::SimpleObject)]
struct Greeting {
    text: String,
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
    assert!(remembered.passed_alone.get().is_some());
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
    let _ = remembered.passed_alone.set(true);
    // A validation error has no path; an execution error names the field.
    assert!(strict.errors.iter().all(|e| e.path.is_empty()));
    let (known, _) = send(&schemas, &documents, &wrong).await;
    assert!(
        known.errors.iter().any(|e| !e.path.is_empty()),
        "{:?}",
        known.errors
    );
}

/// A document sent alone whose answer resolves more fields than it selects (a list of
/// objects) skips the strict rules on the fast schema: the verdict extension would cost each
/// resolved field more than the fast rules cost the document.
#[tokio::test]
async fn an_answer_of_many_resolved_fields_runs_on_the_fast_schema() {
    let (schemas, documents) = (greeter(), Documents::default());
    let query = "{ greetings { text } }";
    let (first, remembered) = send(&schemas, &documents, &body(query)).await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(resolved(&first.data), 4);
    assert_eq!(selections(remembered.document()), 2);
    let (request, _) = parse_request(&body(query), &documents).unwrap();
    let inputs = remembered.inputs(&request);
    assert!(matches!(remembered.known(&inputs), Some(Known::Fast)));
    let (again, _) = send(&schemas, &documents, &body(query)).await;
    assert_eq!(again.data, first.data);
    assert!(
        remembered.verdict.get().is_none(),
        "the known schema did not run"
    );

    // One field resolved for one selected: the verdict's way.
    let (_, hello) = send(&schemas, &documents, &body("{ hello }")).await;
    let (request, _) = parse_request(&body("{ hello }"), &documents).unwrap();
    let inputs = hello.inputs(&request);
    assert!(matches!(hello.known(&inputs), Some(Known::Verdict(_))));
}

#[tokio::test]
async fn invalid_documents_stay_strict_and_requests_with_inputs_are_not_alone() {
    let (schemas, documents) = (greeter(), Documents::default());
    let wrong = body(r#"{ hello(name: 1) }"#);
    for _ in 0..2 {
        let (response, remembered) = send(&schemas, &documents, &wrong).await;
        assert_eq!(response.data, async_graphql::Value::Null);
        assert!(!response.errors.is_empty());
        assert!(remembered.passed_alone.get().is_none());
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
        assert!(remembered.passed_alone.get().is_none(), "{input}");
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
    assert!(remembered.passed_alone.get().is_none());
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
    remembered.passed(remembered.inputs(&request), &async_graphql::Value::Null);
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
    let newest = format!("\"n{}\"", Remembered::MAX_INPUT_SETS + 2);
    assert!(
        passed.iter().any(|p| p.inputs.contains(&newest)),
        "a full list replaces one of its least used with the newest"
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
    assert!(remembered.passed_alone.get().is_some());
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
