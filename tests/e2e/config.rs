//! Config: every shipped config loads; bad ones report every problem with its key.

use manifold::BffSpec;

const SPECS: [&BffSpec; 3] = [&bff_mobile::SPEC, &bff_web::SPEC, &bff_partner::SPEC];

#[test]
fn every_shipped_config_is_valid_for_its_bff() {
    for spec in SPECS {
        let path = format!(
            "{}/../{}",
            env!("CARGO_MANIFEST_DIR"),
            spec.default_config_path
        );
        let text = std::fs::read_to_string(&path).expect("config file");
        assert_eq!(
            text, spec.embedded_config,
            "{path} differs from the embedded copy"
        );
        if let Err(e) = spec.parse_config(&text, std::iter::empty()) {
            panic!("{e}");
        }
    }
}

#[test]
fn an_unknown_key_and_a_zero_timeout_are_both_reported() {
    let text = bff_mobile::SPEC
        .embedded_config
        .replace("[server]\n", "[server]\ncolour = \"blue\"\n")
        .replace(
            "[upstreams.cart]\nurl = \"http://127.0.0.1:9106\"\ntimeout = \"300ms\"",
            "[upstreams.cart]\nurl = \"http://127.0.0.1:9106\"\ntimeout = \"0ms\"",
        );
    let errors = bff_mobile::SPEC
        .parse_config(&text, std::iter::empty())
        .expect_err("invalid");
    let shown = errors.to_string();
    assert!(shown.contains("server.colour: unknown key"), "{shown}");
    assert!(
        shown.contains("upstreams.cart.timeout: must be greater than 0"),
        "{shown}"
    );
}

#[test]
fn a_bff_requires_the_upstreams_its_code_calls() {
    let text = bff_mobile::SPEC
        .embedded_config
        .replace("[upstreams.shipping]", "[upstreams.shipping_old]");
    let errors = bff_mobile::SPEC
        .parse_config(&text, std::iter::empty())
        .expect_err("invalid");
    assert!(
        errors.to_string().contains("upstreams.shipping: missing"),
        "{errors}"
    );
}

#[test]
fn environment_overrides_apply_and_are_validated() {
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let config = bff_web::SPEC
        .parse_config(
            bff_web::SPEC.embedded_config,
            env(&[
                ("MANIFOLD_SERVER__LISTEN", "0.0.0.0:9999"),
                ("MANIFOLD_ROUTES__1__TIMEOUT", "5s"),
            ]),
        )
        .expect("valid");
    assert_eq!(config.server.listen.port(), 9999);
    assert_eq!(config.routes[1].timeout.as_secs(), 5);

    let errors = bff_web::SPEC
        .parse_config(
            bff_web::SPEC.embedded_config,
            env(&[
                ("MANIFOLD_UPSTREAMS__USERS__TIMEOUT", "0s"),
                ("MANIFOLD_SERVER__BOGUS", "1"),
            ]),
        )
        .expect_err("invalid");
    let shown = errors.to_string();
    assert!(shown.contains("upstreams.users.timeout"), "{shown}");
    assert!(shown.contains("server.bogus: unknown key"), "{shown}");
}
