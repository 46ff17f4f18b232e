//! The deployment files on paper, since no container engine or cluster runs here:
//! docker-compose.yml parses, names config files that exist, and every BFF service's config
//! — the shipped file with that service's MANIFOLD_* variables — is valid, listens on the port
//! its health check probes and deploy/haproxy.cfg sends to, and serves /metrics where
//! deploy/prometheus/prometheus.yml scrapes. `kubernetes` does the same for
//! deploy/kubernetes/.

mod kubernetes;

use std::collections::BTreeMap;
use std::path::Path;

use manifold::BffSpec;
use manifold::config::{SecretUrl, StoreKind};
use yaml_rust2::{Yaml, YamlLoader};

/// The project root (this crate is `tests/`).
pub(super) const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

pub(super) fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub(super) fn spec(binary: &str) -> &'static BffSpec {
    match binary {
        "bff-mobile" => &bff_mobile::SPEC,
        "bff-web" => &bff_web::SPEC,
        "bff-partner" => &bff_partner::SPEC,
        other => panic!("unknown BFF binary {other}"),
    }
}

pub(super) fn strings(yaml: &Yaml) -> Vec<String> {
    yaml.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `value`, with a path under `/run/secrets/` (where Compose mounts a service's secrets)
/// replaced by the file the top-level `secrets` names, when the service has that secret.
fn compose_secret_path(compose: &Yaml, service: &Yaml, value: &str) -> String {
    let Some(name) = value.strip_prefix("/run/secrets/") else {
        return value.to_owned();
    };
    assert!(
        strings(&service["secrets"]).iter().any(|s| s == name),
        "{value}: the service does not have the secret {name}"
    );
    let file = compose["secrets"][name]["file"]
        .as_str()
        .unwrap_or_else(|| panic!("no top-level secret {name} with a file"));
    Path::new(ROOT).join(file).display().to_string()
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
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(&needed), "service {needed} missing");
    }
    let haproxy_cfg = read("deploy/haproxy.cfg");
    let prometheus_yml = read("deploy/prometheus/prometheus.yml");
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
                    .map(|v| compose_secret_path(&docs[0], service, v))
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
        // Prometheus scrapes the admin listener, which listens off loopback with the token
        // Prometheus sends (the same compose secret).
        assert!(
            !config.admin.listen.ip().is_loopback(),
            "{name}: admin listener on loopback only"
        );
        let token = config.admin.token().expect("token file").expect("a token");
        // Prometheus sends the same file (relative to prometheus.yml's directory).
        assert_eq!(
            token.expose(),
            read("deploy/prometheus/admin-token").trim(),
            "{name}: not the token Prometheus sends"
        );
        assert!(
            prometheus_yml.contains("credentials_file: admin-token\n"),
            "deploy/prometheus/prometheus.yml sends no admin token"
        );
        let admin = config.admin.listen.port();
        assert!(
            prometheus_yml.contains(&format!("- {name}:{admin}\n")),
            "deploy/prometheus/prometheus.yml does not scrape {name}:{admin}"
        );
        // Every instance shares the rate-limit counters and the cache through Redis.
        assert_eq!(config.rate_limit.store, StoreKind::Redis, "{name}");
        let redis = |url: Option<&SecretUrl>| url.map(|u| u.expose().to_owned());
        assert_eq!(
            redis(config.rate_limit.redis_url.as_ref()).as_deref(),
            Some("redis://redis:6379"),
            "{name}"
        );
        assert_eq!(
            redis(config.cache.redis_url.as_ref()).as_deref(),
            Some("redis://redis:6379"),
            "{name}"
        );
    }
    assert_eq!(bffs, 4);
}
