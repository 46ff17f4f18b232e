//! The deployment files on paper, since no container engine runs here: docker-compose.yml
//! parses, names config files that exist, and every BFF service's config — the shipped file
//! with that service's MANIFOLD_* variables — is valid and listens on the port its health
//! check probes and deploy/haproxy.cfg sends to. The Kubernetes manifests parse and probe
//! the two health endpoints.

use std::collections::BTreeMap;
use std::path::Path;

use manifold::BffSpec;
use yaml_rust2::{Yaml, YamlLoader};

/// The project root (this crate is `tests/`).
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn spec(binary: &str) -> &'static BffSpec {
    match binary {
        "bff-mobile" => &bff_mobile::SPEC,
        "bff-web" => &bff_web::SPEC,
        "bff-partner" => &bff_partner::SPEC,
        other => panic!("unknown BFF binary {other}"),
    }
}

fn strings(yaml: &Yaml) -> Vec<String> {
    yaml.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_file_matches_the_configs_and_haproxy() {
    let docs = YamlLoader::load_from_str(&read("docker-compose.yml")).expect("compose parses");
    let services = docs[0]["services"].as_hash().expect("services");
    let names: Vec<&str> = services.keys().filter_map(Yaml::as_str).collect();
    for needed in [
        "redis",
        "backends",
        "bff-mobile-1",
        "bff-mobile-2",
        "bff-web",
        "bff-partner",
        "haproxy",
    ] {
        assert!(names.contains(&needed), "service {needed} missing");
    }
    let haproxy_cfg = read("deploy/haproxy.cfg");
    let mut bffs = 0;
    for (name, service) in services {
        let name = name.as_str().expect("service name");
        let command = strings(&service["command"]);
        assert!(
            !service["healthcheck"]["test"].is_badvalue(),
            "{name} has no health check"
        );
        let Some(binary) = command.first().filter(|c| c.starts_with("bff-")) else {
            continue;
        };
        bffs += 1;
        let spec = spec(binary);
        assert_eq!(command[1], "--config", "{name}");
        let config_path = &command[2];
        let text = read(config_path);
        let env: BTreeMap<String, String> = service["environment"]
            .as_hash()
            .expect("environment")
            .iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| panic!("{name}: quote {k:?} so it is a string"));
                (k.as_str().expect("key").to_owned(), v)
            })
            .collect();
        let config = spec
            .parse_config(&text, env.clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let port = config.server.listen.port();
        // The shipped file and the container listen on the same port.
        let shipped = spec.parse_config(&text, []).expect("shipped config");
        assert_eq!(shipped.server.listen.port(), port, "{name}");
        assert!(
            config.server.drain_delay > std::time::Duration::ZERO,
            "{name}: no drain delay"
        );
        let probe = strings(&service["healthcheck"]["test"]).join(" ");
        assert!(
            probe.contains(&format!(":{port}/readyz")),
            "{name}: {probe}"
        );
        assert!(
            haproxy_cfg.contains(&format!(" {name}:{port} check")),
            "deploy/haproxy.cfg has no server {name}:{port}"
        );
        let published = strings(&services[&Yaml::String("haproxy".into())]["ports"]);
        assert!(
            published.contains(&format!("{port}:{port}")),
            "{name}: port {port} not published"
        );
        // The image contains the binary and the config file.
        let dockerfile = read("Dockerfile");
        assert!(
            dockerfile.contains(&format!("-p {binary}")),
            "Dockerfile does not build {binary}"
        );
        assert!(dockerfile.contains("COPY config/ /app/config/"));
    }
    assert_eq!(bffs, 4);
}

#[test]
fn kubernetes_manifests_probe_both_endpoints() {
    let docs = YamlLoader::load_from_str(&read("deploy/k8s/bff-mobile.yaml")).expect("parses");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler"
        ]
    );
    let container = &docs[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    let env: Vec<(String, String)> = container["env"]
        .as_vec()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().expect("name").to_owned(),
                e["value"].as_str().expect("value").to_owned(),
            )
        })
        .collect();
    let config = bff_mobile::SPEC
        .parse_config(&read("config/mobile.toml"), env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        container["ports"][0]["containerPort"].as_i64(),
        Some(i64::from(config.server.listen.port()))
    );
}
