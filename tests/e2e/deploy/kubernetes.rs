//! deploy/kubernetes/ on paper (CI also runs kubernetes-validate --strict on it): one
//! kustomization listing every file; the ConfigMaps are the shipped configs; each BFF's
//! config as its Deployment sets it is valid and agrees with the Deployment (ports, probes,
//! scrape annotations, shutdown times, Redis and backends that exist as Services); every pod
//! is locked down; HAProxy finds and checks every BFF pod, and its config passes `haproxy -c`.

use crate::harness::run_tool;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use manifold::config::{Config, SecretUrl, StoreKind};
use yaml_rust2::{Yaml, YamlLoader};

use super::{read, spec, strings};

const DIR: &str = "deploy/kubernetes";
const NAMESPACE: &str = "manifold";

/// Every object of every manifest, with the file it is in.
fn objects() -> Vec<(String, Yaml)> {
    let mut files: Vec<String> = std::fs::read_dir(Path::new(super::ROOT).join(DIR))
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for file in files {
        let docs = YamlLoader::load_from_str(&read(&format!("{DIR}/{file}")))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        objects.extend(docs.into_iter().map(|d| (file.clone(), d)));
    }
    objects
}

fn find<'a>(objects: &'a [(String, Yaml)], kind: &str, name: &str) -> &'a Yaml {
    objects
        .iter()
        .map(|(_, o)| o)
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in {DIR}"))
}

fn text<'a>(yaml: &'a Yaml, what: &str) -> &'a str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {yaml:?}"))
}

/// The container port called `name`.
fn port(container: &Yaml, name: &str) -> u16 {
    container["ports"]
        .as_vec()
        .expect("ports")
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_i64())
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("no container port {name}"))
}

/// `host` and `port` of a URL such as `redis://redis:6379/0` or `http://demo-backends:9101`.
fn host_and_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (host, port) = authority.rsplit_once(':').expect("an explicit port");
    (host.to_owned(), port.parse().expect("a port number"))
}

/// Asserts a Service `host` in the namespace serves `port`, so the URL resolves in the cluster.
fn assert_service(objects: &[(String, Yaml)], url: &str, what: &str) {
    let (host, port) = host_and_port(url);
    let service = find(objects, "Service", &host);
    let ports = service["spec"]["ports"].as_vec().expect("ports");
    assert!(
        ports
            .iter()
            .any(|p| p["port"].as_i64() == Some(i64::from(port))),
        "{what}: Service {host} has no port {port}"
    );
}

#[test]
fn kubernetes_kustomization_lists_every_manifest() {
    let kustomization =
        YamlLoader::load_from_str(&read(&format!("{DIR}/kustomization.yaml"))).expect("parses");
    let listed: BTreeSet<String> = strings(&kustomization[0]["resources"])
        .into_iter()
        .collect();
    let files: BTreeSet<String> = objects().into_iter().map(|(file, _)| file).collect();
    assert_eq!(listed, files);
    for (file, object) in objects() {
        if object["kind"].as_str() != Some("Namespace") {
            assert_eq!(
                object["metadata"]["namespace"].as_str(),
                Some(NAMESPACE),
                "{file}: {:?}",
                object["metadata"]["name"]
            );
        }
    }
}

#[test]
fn kubernetes_configmaps_are_the_shipped_configs() {
    let objects = objects();
    for name in ["mobile", "web", "partner"] {
        let map = find(&objects, "ConfigMap", &format!("bff-{name}-config"));
        let file = format!("{name}.toml");
        assert!(
            text(&map["data"][file.as_str()], &file) == read(&format!("config/{file}")),
            "deploy/kubernetes/configs.yaml differs from config/{file}: run python3 deploy/kubernetes/configmaps.py"
        );
    }
}

/// The config a BFF's Deployment runs: the file its command names, from the ConfigMap
/// mounted there, with the container's MANIFOLD_* variables.
fn deployed_config(objects: &[(String, Yaml)], binary: &str) -> Config {
    let deployment = find(objects, "Deployment", binary);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let command = strings(&container["command"]);
    assert_eq!(command[..2], [binary, "--config"], "{binary}: {command:?}");
    let (dir, file) = command[2].rsplit_once('/').expect("a path");
    let mount = container["volumeMounts"]
        .as_vec()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(dir))
        .unwrap_or_else(|| panic!("{binary}: nothing mounted at {dir}"));
    let volume = pod["volumes"]
        .as_vec()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    let map = find(
        objects,
        "ConfigMap",
        text(&volume["configMap"]["name"], "configMap"),
    );
    let env: Vec<(String, String)> = container["env"]
        .as_vec()
        .expect("env")
        .iter()
        .map(|e| {
            let name = text(&e["name"], "env name").to_owned();
            let secret = &e["valueFrom"]["secretKeyRef"];
            let value = if secret.is_badvalue() {
                text(&e["value"], "env value").to_owned()
            } else {
                // Created by the operator, never in the manifests: any value of the kind.
                format!(
                    "{}-{}-from-the-secret",
                    text(&secret["name"], "secret"),
                    text(&secret["key"], "key")
                )
            };
            (name, value)
        })
        .collect();
    spec(binary)
        .parse_config(text(&map["data"][file], file), env)
        .unwrap_or_else(|e| panic!("{binary}: {e}"))
}

#[test]
fn kubernetes_bffs_agree_with_their_configs() {
    let objects = objects();
    for binary in ["bff-mobile", "bff-web", "bff-partner"] {
        let config = deployed_config(&objects, binary);
        let pod = &find(&objects, "Deployment", binary)["spec"]["template"];
        let container = &pod["spec"]["containers"][0];
        let http = port(container, "http");
        assert_eq!(config.server.listen.port(), http, "{binary}");
        assert!(
            config.server.listen.ip().is_unspecified(),
            "{binary} listens on loopback"
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            assert_eq!(
                container[probe]["httpGet"]["path"].as_str(),
                Some(path),
                "{binary}"
            );
            assert_eq!(
                container[probe]["httpGet"]["port"].as_str(),
                Some("http"),
                "{binary}"
            );
        }
        // Prometheus scrapes the admin listener, which listens off loopback.
        let annotations = &pod["metadata"]["annotations"];
        let admin = port(container, "admin");
        assert_eq!(config.admin.listen.port(), admin, "{binary}");
        assert!(
            config.admin.enabled && !config.admin.listen.ip().is_loopback(),
            "{binary}"
        );
        // Off loopback, with the token of the Secret the operator creates.
        let token = config.admin.token.as_ref().map(|t| t.expose());
        assert_eq!(
            token,
            Some("manifold-admin-token-from-the-secret"),
            "{binary}"
        );
        assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
        assert_eq!(
            annotations["prometheus.io/port"].as_str(),
            Some(admin.to_string().as_str())
        );
        assert_eq!(annotations["prometheus.io/path"].as_str(), Some("/metrics"));
        // Drain before the endpoints forget the pod, exit before the kubelet kills it.
        let grace = pod["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .expect("grace period");
        let grace = Duration::from_secs(u64::try_from(grace).expect("positive"));
        assert!(
            config.server.drain_delay >= Duration::from_secs(2),
            "{binary}"
        );
        assert!(
            config.server.drain_delay < config.server.shutdown_timeout,
            "{binary}"
        );
        assert!(
            config.server.shutdown_timeout < grace,
            "{binary}: exits after SIGKILL"
        );
        assert_wired(&objects, binary, &config);
    }
}

/// Redis and every backend the config calls are Services of the manifests.
fn assert_wired(objects: &[(String, Yaml)], binary: &str, config: &Config) {
    assert_eq!(config.rate_limit.store, StoreKind::Redis, "{binary}");
    let urls = [&config.rate_limit.redis_url, &config.cache.redis_url];
    for url in urls.into_iter().map(|u| u.as_ref().map(SecretUrl::expose)) {
        let url = url.unwrap_or_else(|| panic!("{binary}: no Redis"));
        assert_service(objects, url, binary);
    }
    for (name, upstream) in &config.upstreams {
        let url = upstream.url.as_deref().expect("url");
        assert_service(objects, url, &format!("{binary} upstreams.{name}"));
    }
    for jwt in &config.auth.jwt {
        assert_service(
            objects,
            jwt.jwks_url.expose(),
            &format!("{binary} jwks_url"),
        );
    }
}

#[test]
fn kubernetes_pods_are_locked_down_sized_and_probed() {
    let objects = objects();
    let deployments: Vec<&Yaml> = objects
        .iter()
        .map(|(_, o)| o)
        .filter(|o| o["kind"].as_str() == Some("Deployment"))
        .collect();
    assert_eq!(
        deployments.len(),
        6,
        "three BFFs, Redis, HAProxy, the sample backends"
    );
    for deployment in deployments {
        let name = text(&deployment["metadata"]["name"], "name");
        let pod = &deployment["spec"]["template"]["spec"];
        let security = &pod["securityContext"];
        assert_eq!(security["runAsNonRoot"].as_bool(), Some(true), "{name}");
        assert!(
            security["runAsUser"].as_i64().is_some_and(|u| u > 0),
            "{name}"
        );
        assert_eq!(
            security["seccompProfile"]["type"].as_str(),
            Some("RuntimeDefault"),
            "{name}"
        );
        assert_eq!(
            pod["automountServiceAccountToken"].as_bool(),
            Some(false),
            "{name}"
        );
        for container in pod["containers"].as_vec().expect("containers") {
            let security = &container["securityContext"];
            assert_eq!(
                security["readOnlyRootFilesystem"].as_bool(),
                Some(true),
                "{name}"
            );
            assert_eq!(
                security["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{name}"
            );
            assert_eq!(
                strings(&security["capabilities"]["drop"]),
                ["ALL"],
                "{name}"
            );
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    let value = &container["resources"][bound][resource];
                    assert!(!value.is_badvalue(), "{name}: no {bound}.{resource}");
                }
            }
            for probe in ["livenessProbe", "readinessProbe"] {
                assert!(!container[probe].is_badvalue(), "{name}: no {probe}");
            }
        }
        // A pod disruption budget for everything with more than one replica.
        if name != "redis" && name != "demo-backends" {
            let budget = find(&objects, "PodDisruptionBudget", name);
            assert_eq!(
                budget["spec"]["selector"]["matchLabels"],
                deployment["spec"]["selector"]["matchLabels"],
                "{name}"
            );
        }
    }
}

/// HAProxy's config from its ConfigMap.
fn haproxy_cfg(objects: &[(String, Yaml)]) -> String {
    let map = find(objects, "ConfigMap", "haproxy-config");
    text(&map["data"]["haproxy.cfg"], "haproxy.cfg").to_owned()
}

#[test]
fn kubernetes_haproxy_checks_every_pod_a_bff_can_scale_to() {
    let objects = objects();
    let cfg = haproxy_cfg(&objects);
    for (short, binary) in [
        ("mobile", "bff-mobile"),
        ("web", "bff-web"),
        ("partner", "bff-partner"),
    ] {
        let headless = find(&objects, "Service", &format!("{binary}-pods"));
        assert_eq!(headless["spec"]["clusterIP"].as_str(), Some("None"));
        let port = port(
            &find(&objects, "Deployment", binary)["spec"]["template"]["spec"]["containers"][0],
            "http",
        );
        let max = find(&objects, "HorizontalPodAutoscaler", binary)["spec"]["maxReplicas"]
            .as_i64()
            .expect("maxReplicas");
        let backend = cfg
            .split(&format!("\nbackend be_{short}\n"))
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .unwrap_or_else(|| panic!("no backend be_{short}"));
        assert!(
            backend.contains("http-check send meth GET uri /readyz"),
            "{backend}"
        );
        let slots = format!(
            "server-template {short} {max} {binary}-pods.{NAMESPACE}.svc.cluster.local:{port} check"
        );
        assert!(
            backend.contains(&slots),
            "be_{short} should have: {slots}\n{backend}"
        );
    }
}

#[test]
fn kubernetes_haproxy_config_passes_haproxy_check() {
    let cfg = haproxy_cfg(&objects());
    let path =
        std::env::temp_dir().join(format!("manifold-k8s-haproxy-{}.cfg", std::process::id()));
    std::fs::write(&path, cfg).expect("write the config");
    let checked = run_tool("haproxy", &["-c", "-f", &path.to_string_lossy()], None);
    let _ = std::fs::remove_file(&path);
    let Some(out) = checked else {
        return;
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "haproxy -c: {said}");
    assert!(!said.contains("[WARNING]"), "haproxy -c warns: {said}");
}
