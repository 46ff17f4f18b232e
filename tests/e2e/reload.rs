//! Reloading a config in-process: what changed is rebuilt, what did not keeps its state
//! (an upstream's pool, breaker and counters), and a refused config changes nothing.

use std::time::Duration;

use crate::harness::Stack;

#[tokio::test]
async fn a_reload_keeps_the_state_of_unchanged_upstreams() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let token = stack.token("42", "web", &[]).await;
    let r = stack.get_as("/api/users/42", &token).await;
    assert_eq!(r.status(), 200);
    let calls = |stack: &Stack, name: &str| stack.bff.gateway().upstreams()[name].stats().calls;
    assert_eq!(calls(&stack, "users"), 1);

    // Only the request budget changes: the users upstream is the same one.
    let mut config = stack.bff.gateway().config().clone();
    config.server.request_timeout = Duration::from_secs(7);
    assert_eq!(stack.bff.reload(config.clone()).await.unwrap(), 2);
    assert_eq!(
        stack.bff.gateway().config().server.request_timeout,
        Duration::from_secs(7)
    );
    assert_eq!(calls(&stack, "users"), 1);

    // Its own settings change: a new upstream with fresh state.
    config.upstreams.get_mut("users").unwrap().timeout = Duration::from_millis(900);
    assert_eq!(stack.bff.reload(config.clone()).await.unwrap(), 3);
    assert_eq!(calls(&stack, "users"), 0);

    // A refused config (a route to an unknown upstream) changes nothing.
    let mut broken = config.clone();
    broken.routes[0].upstream = "nope".into();
    let err = stack.bff.reload(broken).await.unwrap_err().to_string();
    assert!(err.contains("routes[0].upstream"), "{err}");
    let status = stack.bff.live().status();
    assert_eq!((status.generation, status.failed_total), (3, 1));
    assert_eq!(
        stack.bff.gateway().upstreams()["users"].stats().calls,
        0,
        "the refused config's generation was not swapped in"
    );
    let r = stack.get_as("/api/users/42", &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(calls(&stack, "users"), 1);
}
