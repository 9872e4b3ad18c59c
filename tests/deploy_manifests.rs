//! The deployment files (`deploy/`, docs/deploy.md), checked without a cluster or
//! Docker:
//!
//! - the Kustomize base (`deploy/kustomize`), rendered by `tests/deploy/render.py`
//!   (PyYAML; the files `kustomization.yaml` lists, any transformation refused), every
//!   resource validated by PyPI `kubernetes-validate` (schemas bundled in the package)
//!   against Kubernetes [`K8S_VERSION`], strict (unknown fields refused);
//! - its meaning against the host's real configuration: the ConfigMap's `host.toml`
//!   with the pod's environment is parsed by `host::HostConfig::from_toml` (what
//!   `media-processor host` does at start), then the grace period covers the drain,
//!   the ports, probes, Services, Ingress paths, peers and the PodDisruptionBudget
//!   agree with it, and the resources fit the sizing;
//! - `deploy/Dockerfile`: its stages, build and runtime packages, non-root user,
//!   EXPOSE and ENTRYPOINT (the binary's `host` subcommand runs), and its build
//!   context: every COPY source exists and is not ignored, Cargo loads the copied
//!   workspace (`cargo fetch --locked --offline`), and every `include_str!` /
//!   `include_bytes!` of the copied sources finds its file.
//!
//! A missing `python3`, PyYAML or `kubernetes-validate` fails the test under `CI`
//! (scripts/install-deps.sh installs them) and skips it elsewhere, saying so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The Kubernetes version whose schemas the resources must satisfy.
const K8S_VERSION: &str = "1.30.0";

/// Where the base is, from the repository root.
const BASE: &str = "deploy/kustomize";

/// Memory per call measured by the load tool (BENCHMARKS.md, PCM ramp at 450 calls;
/// both ends of the call, so an upper bound for the processor's side).
const MEMORY_PER_CALL_KIB: u64 = 572;

/// Seconds the grace period must leave after preStop, the drain deadline and the
/// linger: the hang-ups' DELETEs, the summary, the exit.
const GRACE_MARGIN_S: u64 = 10;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool the test needs is missing: a failure under CI, a skip elsewhere.
fn missing(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is needed by tests/deploy_manifests.rs: run scripts/install-deps.sh"
    );
    eprintln!("skipped: {what} is not installed (scripts/install-deps.sh installs it)");
}

/// One resource of the rendered base and the file it came from.
struct Resource {
    file: String,
    doc: Value,
}

impl Resource {
    fn kind(&self) -> &str {
        self.doc["kind"].as_str().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.doc["metadata"]["name"].as_str().unwrap_or("")
    }
}

/// The base as `kubectl kustomize` would print it; `None` when PyYAML is missing.
fn render() -> Option<Vec<Resource>> {
    let out = Command::new("python3")
        .arg(root().join("tests/deploy/render.py"))
        .arg(root().join(BASE))
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            missing(&format!("python3 ({e})"));
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'yaml'") {
        missing("PyYAML (PyPI pyyaml)");
        return None;
    }
    assert!(
        out.status.success(),
        "tests/deploy/render.py {BASE} failed: {stderr}"
    );
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).expect("render.py prints JSON");
    Some(
        all.into_iter()
            .map(|r| Resource {
                file: r["file"].as_str().unwrap_or("").to_owned(),
                doc: r["resource"].clone(),
            })
            .collect(),
    )
}

fn find<'a>(base: &'a [Resource], kind: &str, name: &str) -> &'a Value {
    &base
        .iter()
        .find(|r| r.kind() == kind && r.name() == name)
        .unwrap_or_else(|| panic!("{BASE}: no {kind} named {name}"))
        .doc
}

fn text<'a>(v: &'a Value, pointer: &str, what: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{what}: {pointer} is missing or not text"))
}

fn int(v: &Value, pointer: &str, what: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{what}: {pointer} is missing or not a whole number"))
}

fn array<'a>(v: &'a Value, pointer: &str, what: &str) -> &'a Vec<Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{what}: {pointer} is missing or not a list"))
}

/// `matchLabels` or a selector map as label pairs.
fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, pod: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod.get(k) == Some(v))
}

/// What the kubelet would put in an environment variable of the pod
/// `media-processor-0`: literal values with `$(VAR)` expanded from earlier
/// variables, downward-API fields and secrets as stand-ins.
fn pod_env(container: &Value, pod_name: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for e in array(container, "/env", "the container") {
        let name = text(e, "/name", "an env entry").to_owned();
        let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
            let mut v = v.to_owned();
            for (k, val) in &env {
                v = v.replace(&format!("$({k})"), val);
            }
            v
        } else if let Some(field) = e.pointer("/valueFrom/fieldRef/fieldPath") {
            match field.as_str().unwrap_or("") {
                "metadata.name" => pod_name.to_owned(),
                "metadata.namespace" => "media".to_owned(),
                "status.hostIP" => "192.0.2.10".to_owned(),
                "status.podIP" => "10.244.0.10".to_owned(),
                f => panic!("env {name}: a downward-API field this test does not know: {f}"),
            }
        } else if e.pointer("/valueFrom/secretKeyRef").is_some() {
            "from-a-secret".to_owned()
        } else {
            panic!("env {name}: neither a value, a fieldRef nor a secretKeyRef")
        };
        env.push((name, value));
    }
    env
}

fn env_entry<'a>(container: &'a Value, name: &str) -> &'a Value {
    array(container, "/env", "the container")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("statefulset.yaml: the container has no env {name}"))
}

/// The named container port: (number, protocol).
fn container_port(container: &Value, name: &str) -> (u64, String, Option<u64>) {
    let p = array(container, "/ports", "the container")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("statefulset.yaml: the container has no port named {name}"));
    (
        int(p, "/containerPort", name),
        p["protocol"].as_str().unwrap_or("TCP").to_owned(),
        p["hostPort"].as_u64(),
    )
}

/// A probe's or a Service's port (a name of the container's ports, or a number) as
/// a number.
fn resolve_port(container: &Value, port: &Value) -> u64 {
    match port {
        Value::Number(n) => n.as_u64().expect("a port number"),
        Value::String(name) => container_port(container, name).0,
        other => panic!("not a port: {other}"),
    }
}

/// Everything of the base the semantic tests use.
struct Deployment {
    sts: Value,
    container: Value,
    config: host::HostConfig,
    replicas: u64,
    pod_labels: BTreeMap<String, String>,
}

fn deployment(base: &[Resource]) -> Deployment {
    let sts = find(base, "StatefulSet", "media-processor").clone();
    let containers = array(&sts, "/spec/template/spec/containers", "statefulset.yaml");
    assert_eq!(containers.len(), 1, "statefulset.yaml: one container");
    let container = containers[0].clone();

    // The ConfigMap mounted at the path the image's ENTRYPOINT reads.
    let mount = array(&container, "/volumeMounts", "the container")
        .iter()
        .find(|m| m["mountPath"] == "/etc/media-processor/host.toml")
        .expect("statefulset.yaml: host.toml is mounted at /etc/media-processor/host.toml");
    let key = text(mount, "/subPath", "the host.toml mount");
    let volume = text(mount, "/name", "the host.toml mount");
    let cm_name = array(&sts, "/spec/template/spec/volumes", "statefulset.yaml")
        .iter()
        .find(|v| v["name"] == volume)
        .and_then(|v| v.pointer("/configMap/name"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("statefulset.yaml: volume {volume} is not a ConfigMap"));
    let toml = text(
        find(base, "ConfigMap", cm_name),
        &format!("/data/{key}"),
        "configmap.yaml",
    );

    // The certificate files exist only in the pod (a mounted Secret): left out here,
    // their mount checked.
    let mut env = pod_env(&container, "media-processor-0");
    for var in ["MP_MEDIA_CERT_FILE", "MP_MEDIA_KEY_FILE"] {
        if let Some((_, path)) = env.iter().find(|(k, _)| k == var) {
            let mounted = array(&container, "/volumeMounts", "the container")
                .iter()
                .any(|m| path.starts_with(m["mountPath"].as_str().unwrap_or("\0")));
            assert!(mounted, "{var}={path} is not under a mounted volume");
        }
    }
    env.retain(|(k, _)| k != "MP_MEDIA_CERT_FILE" && k != "MP_MEDIA_KEY_FILE");
    let config =
        host::HostConfig::from_toml(toml, env, "configmap.yaml host.toml").unwrap_or_else(|e| {
            panic!("the ConfigMap's host.toml with the pod's environment is refused: {e}")
        });
    Deployment {
        replicas: int(&sts, "/spec/replicas", "statefulset.yaml"),
        pod_labels: labels(&sts["spec"]["template"]["metadata"]["labels"]),
        sts,
        container,
        config,
    }
}

#[test]
fn every_resource_is_valid_for_the_pinned_kubernetes_version() {
    let Some(base) = render() else { return };
    let files: BTreeSet<&str> = base.iter().map(|r| r.file.as_str()).collect();
    // The package's command line (`kubernetes-validate`), run by the interpreter that
    // has it, so that no PATH shim is needed.
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "kubernetes_validate"]);
    cmd.args(["--kubernetes-version", K8S_VERSION, "--strict"]);
    for f in &files {
        cmd.arg(root().join(BASE).join(f));
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => return missing(&format!("kubernetes-validate (PyPI; {e})")),
    };
    if String::from_utf8_lossy(&out.stderr).contains("No module named kubernetes_validate") {
        return missing("kubernetes-validate (PyPI)");
    }
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubernetes-validate --kubernetes-version {K8S_VERSION} --strict refused the base:\n{report}"
    );
    // One "passed" line per resource, each against the pinned version's schemas.
    let minor = K8S_VERSION.rsplit_once('.').map_or(K8S_VERSION, |(m, _)| m);
    let passed = report
        .lines()
        .filter(|l| l.contains(" passed ") && l.ends_with(&format!("against version {minor}")))
        .count();
    assert_eq!(
        passed,
        base.len(),
        "every resource validated against {minor}:\n{report}"
    );
}

#[test]
fn grace_period_covers_the_prestop_and_the_hosts_drain() {
    let Some(base) = render() else { return };
    let d = deployment(&base);
    let grace = int(
        &d.sts,
        "/spec/template/spec/terminationGracePeriodSeconds",
        "statefulset.yaml",
    );
    let command = array(&d.container, "/lifecycle/preStop/exec/command", "preStop");
    let words: Vec<&str> = command.iter().filter_map(Value::as_str).collect();
    let pre_stop: u64 = match words.as_slice() {
        ["sleep", n] => n.parse().expect("preStop: sleep SECONDS"),
        other => {
            panic!("preStop: expected [sleep, SECONDS] (SIGTERM starts the drain), got {other:?}")
        }
    };
    let deadline = d.config.drain_deadline.as_secs();
    let linger = d.config.drain_linger.as_millis().div_ceil(1000) as u64;
    let needed = pre_stop + deadline + linger + GRACE_MARGIN_S;
    assert!(
        grace >= needed,
        "statefulset.yaml: terminationGracePeriodSeconds {grace} s is less than preStop {pre_stop} s \
         + drain.deadline_s {deadline} s + drain.linger_ms {linger} s + {GRACE_MARGIN_S} s margin \
         = {needed} s: the kubelet would SIGKILL the host while its calls still drain"
    );
}

#[test]
fn ports_probes_env_services_and_budget_agree_with_the_host_config() {
    let Some(base) = render() else { return };
    let d = deployment(&base);
    let c = &d.container;
    let spec = &d.sts["spec"]["template"]["spec"];
    let host_network = spec["hostNetwork"] == true;

    // Ports: the container's are the ones host.toml binds, on every address.
    let wanted = [
        ("media", d.config.media.bind, "UDP"),
        ("callback", d.config.callback.bind, "TCP"),
        ("admin", d.config.admin_bind, "TCP"),
    ];
    for (name, bind, protocol) in wanted {
        let (port, proto, host_port) = container_port(c, name);
        assert_eq!(
            port,
            u64::from(bind.port()),
            "container port {name} is not host.toml's"
        );
        assert_eq!(proto, protocol, "container port {name}: protocol");
        assert!(
            bind.ip().is_unspecified(),
            "host.toml binds {name} to {bind}: the pod's port is unreachable"
        );
        if host_network {
            assert_eq!(host_port, Some(port), "hostNetwork: hostPort of {name}");
        }
    }

    // The blob's mpUri: the pod's public address and port.
    let public = env_entry(c, "MP_MEDIA_PUBLIC_HOST");
    let field = text(
        public,
        "/valueFrom/fieldRef/fieldPath",
        "MP_MEDIA_PUBLIC_HOST",
    );
    let expected = if host_network {
        "status.hostIP"
    } else {
        "status.podIP"
    };
    assert_eq!(field, expected, "MP_MEDIA_PUBLIC_HOST");
    assert_eq!(d.config.media.public_host, "192.0.2.10");
    if host_network {
        assert_eq!(
            d.config.media.public_port,
            Some(d.config.media.bind.port()),
            "hostNetwork: media.public_port is the node's port, the bound one"
        );
    }

    // The secret and the instance id.
    text(
        env_entry(c, "MP_GRAPH_CLIENT_SECRET"),
        "/valueFrom/secretKeyRef/name",
        "MP_GRAPH_CLIENT_SECRET",
    );
    assert_eq!(d.config.graph.client_secret, "from-a-secret");
    assert_eq!(
        text(
            env_entry(c, "MP_ROUTING_INSTANCE_ID"),
            "/valueFrom/fieldRef/fieldPath",
            "MP_ROUTING_INSTANCE_ID"
        ),
        "metadata.name"
    );

    // Probes: the admin port's endpoints.
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let p = &c[probe];
        assert_eq!(text(p, "/httpGet/path", probe), path, "{probe}");
        assert_eq!(
            resolve_port(c, &p["httpGet"]["port"]),
            u64::from(d.config.admin_bind.port()),
            "{probe} is not on the admin port"
        );
    }

    // The headless Service: stable pod DNS, reachable while draining.
    let sts_name = text(&d.sts, "/metadata/name", "statefulset.yaml");
    let headless_name = text(&d.sts, "/spec/serviceName", "statefulset.yaml");
    let headless = find(&base, "Service", headless_name);
    assert_eq!(
        headless["spec"]["clusterIP"], "None",
        "{headless_name}: headless"
    );
    assert_eq!(
        headless["spec"]["publishNotReadyAddresses"], true,
        "{headless_name}: a draining pod must stay reachable by its peers"
    );
    assert!(
        selects(&labels(&headless["spec"]["selector"]), &d.pod_labels),
        "{headless_name} does not select the pods"
    );
    let callback_port = u64::from(d.config.callback.bind.port());

    // Peers: every replica's callback server by its stable name.
    let env = pod_env(c, "media-processor-0");
    let peers = &env
        .iter()
        .find(|(k, _)| k == "MP_ROUTING_PEERS")
        .expect("statefulset.yaml: MP_ROUTING_PEERS")
        .1;
    let expected: Vec<String> = (0..d.replicas)
        .map(|i| format!("http://{sts_name}-{i}.{headless_name}.media.svc:{callback_port}"))
        .collect();
    assert_eq!(
        peers.split(',').collect::<Vec<_>>(),
        expected,
        "MP_ROUTING_PEERS: one entry per replica (spec.replicas {})",
        d.replicas
    );

    // The shared callback path and one per pod, in the Services and the Ingress.
    let public_url = d
        .config
        .callback
        .public_url
        .as_deref()
        .expect("host.toml: callback.public_url (the bot's registered callbackUri)");
    let (host, path) = public_url
        .strip_prefix("https://")
        .and_then(|u| u.split_once('/'))
        .map(|(h, p)| (h, format!("/{p}")))
        .expect("callback.public_url: https://HOST/PATH");
    let ingress = find(&base, "Ingress", "media-processor");
    let rule = array(ingress, "/spec/rules", "ingress.yaml")
        .iter()
        .find(|r| r["host"] == host)
        .unwrap_or_else(|| panic!("ingress.yaml: no rule for callback.public_url's host {host}"));
    let backend = |p: &str| -> String {
        let entry = array(rule, "/http/paths", "ingress.yaml")
            .iter()
            .find(|e| e["path"] == p)
            .unwrap_or_else(|| panic!("ingress.yaml: no path {p}"));
        text(entry, "/backend/service/name", p).to_owned()
    };
    let service_port = |svc: &Value, name: &str| {
        let port = array(svc, "/spec/ports", name)
            .iter()
            .find(|p| p["name"] == "callback")
            .unwrap_or_else(|| panic!("Service {name}: no port named callback"));
        assert_eq!(
            resolve_port(c, &port["targetPort"]),
            callback_port,
            "Service {name}: targetPort is not the callback port"
        );
    };
    let shared_name = backend(&path);
    let shared = find(&base, "Service", &shared_name);
    assert!(
        selects(&labels(&shared["spec"]["selector"]), &d.pod_labels),
        "{shared_name} (the shared path {path}) does not select the pods"
    );
    assert_ne!(
        shared["spec"]["publishNotReadyAddresses"], true,
        "{shared_name}: incoming calls must reach ready pods only"
    );
    service_port(shared, &shared_name);
    for i in 0..d.replicas {
        let pod = format!("{sts_name}-{i}");
        let name = backend(&format!("/callbacks/{pod}"));
        let svc = find(&base, "Service", &name);
        let mut pod_labels = d.pod_labels.clone();
        pod_labels.insert("statefulset.kubernetes.io/pod-name".into(), pod.clone());
        let selector = labels(&svc["spec"]["selector"]);
        assert!(
            selects(&selector, &pod_labels) && !selects(&selector, &d.pod_labels),
            "Service {name} must select pod {pod} alone (statefulset.kubernetes.io/pod-name)"
        );
        assert_eq!(
            svc["spec"]["publishNotReadyAddresses"], true,
            "Service {name}: pod {pod} must get its calls' notifications while it drains"
        );
        service_port(svc, &name);
    }

    // The budget: one pod at a time, the StatefulSet's pods.
    let pdb = base
        .iter()
        .find(|r| r.kind() == "PodDisruptionBudget")
        .expect("a PodDisruptionBudget");
    assert_eq!(pdb.doc["spec"]["maxUnavailable"], 1, "PDB maxUnavailable");
    let selector = labels(&pdb.doc["spec"]["selector"]["matchLabels"]);
    assert!(
        selects(&selector, &d.pod_labels),
        "the PodDisruptionBudget does not select the StatefulSet's pods"
    );
    assert_eq!(
        selector,
        labels(&d.sts["spec"]["selector"]["matchLabels"]),
        "the PodDisruptionBudget's selector is the StatefulSet's"
    );

    // Resources: a core per reactor thread at least, memory for the calls.
    let cpu = text(c, "/resources/requests/cpu", "resources");
    let cpu: f64 = cpu
        .strip_suffix('m')
        .map_or_else(|| cpu.parse(), |m| m.parse::<f64>().map(|m| m / 1000.0))
        .expect("a CPU quantity");
    assert!(
        d.config.media.reactor_threads > 0 && cpu >= d.config.media.reactor_threads as f64,
        "requests.cpu {cpu} for media.reactor_threads {}",
        d.config.media.reactor_threads
    );
    let memory = text(c, "/resources/limits/memory", "resources");
    let mib: u64 = memory
        .strip_suffix("Mi")
        .map(|m| m.parse().expect("Mi"))
        .or_else(|| {
            memory
                .strip_suffix("Gi")
                .map(|g| g.parse::<u64>().expect("Gi") * 1024)
        })
        .expect("limits.memory in Mi or Gi");
    let calls_mib = d.config.media.limits.max_sessions as u64 * MEMORY_PER_CALL_KIB / 1024;
    assert!(
        mib >= 2 * calls_mib,
        "limits.memory {memory} for media.max_sessions {} x {MEMORY_PER_CALL_KIB} KiB = {calls_mib} MiB (want twice that)",
        d.config.media.limits.max_sessions
    );
    assert!(
        c.pointer("/resources/limits/cpu").is_none(),
        "no CPU limit: CFS throttling would make 20 ms ticks late"
    );
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(root().join("deploy/Dockerfile")).expect("deploy/Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(part) = t.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (op, rest) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((op.to_ascii_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

/// The ignore file's patterns (those this test can apply: a top-level name with `*`
/// globs, or `**/*.EXT`).
fn ignored(patterns: &[String], path: &str) -> bool {
    fn glob(p: &str, s: &str) -> bool {
        match p.split_once('*') {
            None => p == s,
            Some((head, tail)) => s.strip_prefix(head).is_some_and(|rest| {
                rest.char_indices()
                    .map(|(i, _)| i)
                    .chain([rest.len()])
                    .any(|i| glob(tail, &rest[i..]))
            }),
        }
    }
    patterns.iter().any(|p| {
        if let Some(ext) = p.strip_prefix("**/*.") {
            path.ends_with(&format!(".{ext}"))
        } else {
            assert!(
                !p.contains('/') && !p.starts_with('!'),
                "a pattern this test cannot apply: {p}"
            );
            glob(p, path.split('/').next().unwrap_or(""))
        }
    })
}

fn copy_tree(from: &Path, to: &Path, rel: &str, patterns: &[String]) {
    if ignored(patterns, rel) {
        return;
    }
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("stage dir");
        for e in std::fs::read_dir(from).expect("read dir") {
            let e = e.expect("dir entry");
            let name = e.file_name().to_string_lossy().into_owned();
            copy_tree(
                &e.path(),
                &to.join(&name),
                &format!("{rel}/{name}"),
                patterns,
            );
        }
    } else {
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("stage dir");
        std::fs::copy(from, to).expect("stage file");
    }
}

/// Every `include_str!("...")` / `include_bytes!("...")` literal under `dir`: (file, path).
fn includes(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            includes(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let src = std::fs::read_to_string(&p).unwrap_or_default();
            for mac in ["include_str!(", "include_bytes!("] {
                for (at, _) in src.match_indices(mac) {
                    let rest = src[at + mac.len()..].trim_start();
                    if let Some(lit) = rest.strip_prefix('"').and_then(|r| r.split_once('"')) {
                        out.push((p.clone(), lit.0.to_owned()));
                    }
                }
            }
        }
    }
}

#[test]
fn dockerfile_builds_the_host_from_what_the_context_holds() {
    let ins = dockerfile();
    let froms: Vec<&str> = ins
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "deploy/Dockerfile: a build and a runtime stage: {froms:?}"
    );
    let builder = froms[0];
    let (image, stage) = builder
        .split_once(" AS ")
        .expect("deploy/Dockerfile: FROM rust:VERSION-bookworm AS builder");
    assert_eq!(stage, "builder");
    let version = image
        .strip_prefix("rust:")
        .and_then(|v| v.strip_suffix("-bookworm"))
        .expect("the builder is rust:VERSION-bookworm");
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let floor = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"'))
        .expect("Cargo.toml: rust-version");
    let parse = |v: &str| -> Vec<u32> {
        v.split('.')
            .map(|n| n.parse().expect("a version"))
            .collect()
    };
    assert!(
        parse(version) >= parse(floor),
        "the builder's Rust {version} is older than rust-version {floor}"
    );
    assert!(
        froms[1].starts_with("debian:bookworm-slim"),
        "the runtime stage is debian:bookworm-slim: {}",
        froms[1]
    );
    let runtime_from = ins.iter().rposition(|(op, _)| op == "FROM").expect("FROM");
    let (build, run) = ins.split_at(runtime_from);
    let runs = |part: &[(String, String)]| -> String {
        part.iter()
            .filter(|(op, _)| op == "RUN")
            .map(|(_, a)| a.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (build_runs, run_runs) = (runs(build), runs(run));
    let apt_packages = |runs: &str| -> BTreeSet<String> {
        runs.split("apt-get install")
            .skip(1)
            .flat_map(|s| s.split("&&").next().unwrap_or("").split_whitespace())
            .filter(|w| !w.starts_with('-'))
            .map(str::to_owned)
            .collect()
    };
    for p in ["cmake", "pkg-config", "libasound2-dev"] {
        assert!(
            apt_packages(&build_runs).contains(p),
            "the build stage installs {p}"
        );
    }
    assert_eq!(
        apt_packages(&run_runs),
        BTreeSet::from(["libasound2".to_owned(), "ca-certificates".to_owned()]),
        "the runtime stage installs the runtime libraries only"
    );
    assert!(
        build_runs.contains("cargo build --release --locked --bin media-processor"),
        "the build stage runs cargo build --release --locked --bin media-processor"
    );
    let user = run
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, a)| a.as_str())
        .expect("the runtime stage sets USER");
    let uid = user.split(':').next().unwrap_or("");
    assert!(uid != "root" && uid != "0", "USER {user} is root");

    // EXPOSE and ENTRYPOINT against the base's configuration.
    let expose: BTreeSet<String> = run
        .iter()
        .filter(|(op, _)| op == "EXPOSE")
        .flat_map(|(_, a)| a.split_whitespace().map(str::to_owned))
        .collect();
    let entrypoint: Vec<String> = run
        .iter()
        .find(|(op, _)| op == "ENTRYPOINT")
        .map(|(_, a)| serde_json::from_str(a).expect("ENTRYPOINT in exec (JSON) form"))
        .expect("ENTRYPOINT");
    assert_eq!(
        entrypoint[..3],
        ["media-processor", "host", "--config"],
        "ENTRYPOINT"
    );
    assert_eq!(
        entrypoint[3], "/etc/media-processor/host.toml",
        "ENTRYPOINT's config"
    );
    if let Some(base) = render() {
        let d = deployment(&base);
        let wanted: BTreeSet<String> = [
            format!("{}/udp", d.config.media.bind.port()),
            format!("{}/tcp", d.config.callback.bind.port()),
            format!("{}/tcp", d.config.admin_bind.port()),
        ]
        .into();
        assert_eq!(
            expose, wanted,
            "EXPOSE: the media, callback and admin ports of host.toml"
        );
    }
    let help = Command::new(env!("CARGO_BIN_EXE_media-processor"))
        .args(&entrypoint[1..2])
        .arg("--help")
        .output()
        .expect("media-processor runs");
    assert!(
        help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--config"),
        "media-processor host --help: {}",
        String::from_utf8_lossy(&help.stderr)
    );

    // The build context: COPY sources exist and are not ignored; staged, Cargo
    // resolves the workspace and every include finds its file.
    let patterns: Vec<String> =
        std::fs::read_to_string(root().join("deploy/Dockerfile.dockerignore"))
            .expect("deploy/Dockerfile.dockerignore")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
    let stage = std::env::temp_dir().join(format!("mp-docker-context-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&stage);
    let mut copied = 0;
    for (_, args) in build.iter().filter(|(op, _)| op == "COPY") {
        assert!(
            !args.starts_with("--"),
            "COPY with options in the build stage: {args}"
        );
        let words: Vec<&str> = args.split_whitespace().collect();
        let (dest, sources) = words.split_last().expect("COPY SRC... DEST");
        for src in sources {
            assert!(
                root().join(src).exists(),
                "deploy/Dockerfile: COPY {src}: no such file in the repository"
            );
            assert!(
                !ignored(&patterns, src),
                "deploy/Dockerfile: COPY {src} is excluded by Dockerfile.dockerignore"
            );
            let to = if dest.ends_with('/') {
                stage.join(dest).join(src)
            } else {
                stage.join(dest)
            };
            copy_tree(&root().join(src), &to, src, &patterns);
            copied += 1;
        }
    }
    assert!(copied > 0, "deploy/Dockerfile copies nothing");
    // For this machine's platform: the others' dependencies are not downloaded here.
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host");
    // `cargo fetch` loads the whole workspace as a build does (every member, every
    // declared target's file, the lock file) and downloads nothing here.
    let meta = Command::new(env!("CARGO"))
        .args(["fetch", "--locked", "--offline", "--target", &host])
        .current_dir(&stage)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("cargo runs");
    let mut found = Vec::new();
    includes(&stage.join("src"), &mut found);
    includes(&stage.join("crates"), &mut found);
    let dangling: Vec<String> = found
        .iter()
        .filter(|(file, _)| !file.components().any(|c| c.as_os_str() == "tests"))
        .filter(|(file, path)| !file.parent().expect("a parent").join(path).exists())
        .map(|(file, path)| {
            format!(
                "{} includes {path}",
                file.strip_prefix(&stage).unwrap_or(file).display()
            )
        })
        .collect();
    let _ = std::fs::remove_dir_all(&stage);
    assert!(
        meta.status.success(),
        "cargo fetch --locked --offline in the Docker build context failed (a missing COPY?): {}",
        String::from_utf8_lossy(&meta.stderr)
    );
    assert!(
        dangling.is_empty(),
        "the Docker build context lacks included files (add a COPY): {dangling:?}"
    );
    assert!(
        !found.is_empty(),
        "no include_str! found: the scan is broken"
    );
}
