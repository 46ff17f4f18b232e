//! Config: every shipped config loads and fits the config's JSON Schema; bad ones report every
//! problem with its key; the schema's formats agree with the loader.

use manifold::BffSpec;
use manifold::config::Config;
use serde_json::{Value, json};

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

/// What `--check` runs: a config the binary could not start with is refused, each problem
/// named by its key — a `rediss://` URL whose CA file is unreadable, a client CA file that
/// does not parse, an upstream `tls` block naming a missing key file.
#[test]
fn tls_files_that_cannot_be_used_are_refused_by_their_key() {
    let dir = std::env::temp_dir().join(format!("manifold-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("client-ca.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_file, key_file) = (dir.join("server.pem"), dir.join("server-key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let missing = dir.join("missing-key.pem");
    let text = bff_partner::SPEC
        .embedded_config
        .replace(
            "[upstreams.orders]\nurl = \"http://127.0.0.1:9102\"",
            &format!(
                "[upstreams.orders]\nurl = \"https://127.0.0.1:9102\"\ntls = {{ cert = {:?}, key = {:?} }}",
                cert_file, missing
            ),
        )
        .replace(
            "[rate_limit]\n",
            &format!(
                "[rate_limit]\nredis_url = \"rediss://127.0.0.1:6390\"\nredis_ca_file = {:?}\n",
                dir.join("no-such-ca.pem")
            ),
        )
        + &format!(
            "\n[tls]\ncert = {cert_file:?}\nkey = {key_file:?}\nclient_ca = {garbage:?}\n"
        );
    let errors = bff_partner::SPEC
        .parse_config(&text, std::iter::empty())
        .expect_err("invalid");
    let shown = errors.to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    for key in [
        "upstreams.orders.tls.key",
        "rate_limit.redis_ca_file",
        "tls.client_ca",
    ] {
        assert!(
            shown.contains(&format!("{key}:")),
            "{key} not named in:\n{shown}"
        );
    }
}

/// `schemas/config.schema.json`, as a real JSON Schema validator (draft 7) reads it.
fn schema_validator() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/config.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("schema"))
        .expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

/// What a config file holds, as JSON (what the validator checks).
fn as_json(toml_text: &str) -> Value {
    toml::from_str(toml_text).expect("TOML")
}

/// The three shipped configs (which start with `#:schema ../schemas/config.schema.json`, for
/// editors) fit the checked-in schema; the same configs with a value of the wrong type, a
/// duration or size that does not parse, an unknown key, or an enum value serde would refuse
/// do not, each for the key that is wrong.
#[test]
fn the_shipped_configs_fit_the_config_schema_and_broken_ones_do_not() {
    let validator = schema_validator();
    for spec in SPECS {
        assert!(
            spec.embedded_config
                .starts_with("#:schema ../schemas/config.schema.json\n"),
            "{}: no schema line for editors",
            spec.name
        );
        let config = as_json(spec.embedded_config);
        let problems: Vec<String> = validator
            .iter_errors(&config)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(problems.is_empty(), "{}: {problems:#?}", spec.name);

        for (pointer, wrong) in [
            ("/server/request_timeout", json!(5)),
            ("/server/request_timeout", json!("soon")),
            ("/server/max_request_body", json!("64 parsecs")),
            ("/server/colour", json!("red")),
            ("/graphql/mode", json!("staging")),
            ("/limits/max_headers", json!("many")),
        ] {
            let mut broken = config.clone();
            let [section, key] = pointer.split('/').skip(1).collect::<Vec<_>>()[..] else {
                panic!("{pointer}: /section/key");
            };
            broken[section][key] = wrong.clone();
            let errors: Vec<String> = validator
                .iter_errors(&broken)
                .map(|e| format!("{}", e.instance_path()))
                .collect();
            assert!(
                errors
                    .iter()
                    .any(|at| pointer.starts_with(at.as_str()) && !at.is_empty()),
                "{}: {pointer} = {wrong} passed the schema: {errors:?}",
                spec.name
            );
        }
    }
}

/// The schema's duration and size formats (patterns written for editors) accept exactly
/// what the loader reads, on values either could get wrong.
#[test]
fn the_schema_formats_agree_with_the_loader() {
    let validator = schema_validator();
    let agree = |key: &str, value: Value| {
        let (section, field) = key.split_once('.').expect("section.field");
        let header = match section {
            "server" => String::new(),
            other => format!("[{other}]\n"),
        };
        let text = format!("[server]\nlisten = \"127.0.0.1:0\"\n{header}{field} = {value}\n");
        let loads = Config::parse(&text, "t", [], &[]).is_ok();
        let fits = validator.is_valid(&as_json(&text));
        assert_eq!(
            loads, fits,
            "{key} = {value}: loader {loads}, schema {fits}"
        );
        loads
    };
    let durations = [
        ("800ms", true),
        ("5s", true),
        ("1m 30s", true),
        ("1m30s", true),
        (" 2 hours ", true),
        ("1.5s", true),
        ("3days", true),
        ("5", false),
        ("soon", false),
        ("5 parsecs", false),
        ("-5s", false),
        ("5s,", false),
        ("", false),
    ];
    for (text, valid) in durations {
        assert_eq!(agree("cors.max_age", json!(text)), valid, "{text:?}");
    }
    let sizes = [
        (json!("64KiB"), true),
        (json!(" 8 MiB "), true),
        (json!("1MB"), true),
        (json!("17"), true),
        (json!(17), true),
        (json!("8 parsecs"), false),
        (json!("8mib"), false),
        (json!("MiB"), false),
        (json!("1.5MiB"), false),
        (json!(-1), false),
        (json!(true), false),
    ];
    for (value, valid) in sizes {
        assert_eq!(
            agree("server.max_request_body", value.clone()),
            valid,
            "{value}"
        );
    }
}
