//! The rollout integration files in `ci/rollouts/`: Argo Rollouts analysis templates (job and web
//! providers), a Flagger metric template and webhook, a Kubernetes sidecar and a systemd unit.
//!
//! Each file parses (YAML with yaml-rust2, the unit as INI-like text) and has the fields its
//! controller acts on; every `leakgate` command line in them uses only flags of the `leakgate
//! watch` / `leakgate run` command line, with values of the right form; the Job's scenario file
//! resolves with the Job's `--set` overrides. `checks_reject_broken_files` runs the same checks
//! on copies of the files with one mistake each, so that no check passes whatever the file says.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use leakgate::cli::Cli;
use leakgate::scenario::units::{parse_duration, parse_slope};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

type Check = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        let ok: bool = $cond;
        if !ok {
            return Err(format!($($msg)+));
        }
    };
}

const ARGO_JOB: &str = "argo-analysistemplate-job.yaml";
const ARGO_WEB: &str = "argo-analysistemplate-web.yaml";
const FLAGGER_METRIC: &str = "flagger-metrictemplate.yaml";
const FLAGGER_WEBHOOK: &str = "flagger-webhook-canary.yaml";
const SIDECAR: &str = "k8s-sidecar.yaml";
const UNIT: &str = "leakgate-watch@.service";
const README: &str = "README.md";
const FILES: [&str; 7] = [
    ARGO_JOB,
    ARGO_WEB,
    FLAGGER_METRIC,
    FLAGGER_WEBHOOK,
    SIDECAR,
    UNIT,
    README,
];

/// The port the sidecar serves `/verdict`, `/metrics` and `/healthz` on.
const LEAKGATE_PORT: u16 = 9090;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/rollouts")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn pass(name: &str) {
    if let Err(e) = check_file(name, &read(name)) {
        panic!("ci/rollouts/{name}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn argo_job_template() {
    pass(ARGO_JOB);
}

#[test]
fn argo_web_template() {
    pass(ARGO_WEB);
}

#[test]
fn flagger_metric_template() {
    pass(FLAGGER_METRIC);
}

#[test]
fn flagger_webhook_canary() {
    pass(FLAGGER_WEBHOOK);
}

#[test]
fn k8s_sidecar() {
    pass(SIDECAR);
}

#[test]
fn systemd_unit() {
    pass(UNIT);
}

#[test]
fn readme_names_every_file() {
    pass(README);
}

/// Every file in the folder is one of the checked ones, and every YAML document in them names
/// its apiVersion and kind.
#[test]
fn every_file_is_checked_and_parses() {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            FILES.contains(&name.as_str()),
            "ci/rollouts/{name} is not checked by harness/tests/rollout_manifests.rs: add a check"
        );
        found.insert(name);
    }
    for name in FILES {
        assert!(found.contains(name), "ci/rollouts/{name} is missing");
        if name.ends_with(".yaml") {
            let docs = parse_yaml(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!docs.is_empty(), "{name}: no YAML document");
            for (i, d) in docs.iter().enumerate() {
                for key in ["apiVersion", "kind"] {
                    let v = d.get(key).and_then(Value::as_str).unwrap_or("");
                    assert!(!v.is_empty(), "{name}: document {i} has no {key}");
                }
            }
        }
    }
}

/// The Job, the sidecar and the unit each start leakgate; every start uses known flags only.
#[test]
fn every_leakgate_invocation_uses_known_flags() {
    let mut all = Vec::new();
    for name in FILES {
        let text = read(name);
        let found = invocations(name, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for inv in &found {
            if let Err(e) = check_invocation(inv) {
                panic!("{}: {e}\n  {}", inv.origin, inv.argv.join(" "));
            }
        }
        all.extend(found);
    }
    let origins: BTreeSet<&str> = all.iter().map(|i| i.file).collect();
    assert_eq!(
        origins,
        BTreeSet::from([ARGO_JOB, SIDECAR, UNIT]),
        "files that start leakgate"
    );
}

/// Each check fails on a copy of its file with one mistake: the checks test something.
#[test]
fn checks_reject_broken_files() {
    const SIDECAR_HARDENING: &str = "allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
              add:";
    let broken: &[(&str, &str, &str)] = &[
        // The Job template.
        (ARGO_JOB, "kind: AnalysisTemplate", "kind: AnalysisTemplat"),
        (
            ARGO_JOB,
            "apiVersion: argoproj.io/v1alpha1",
            "apiVersion: argoproj.io/v1beta1",
        ),
        (ARGO_JOB, "                      - --until-verdict\n", ""),
        (ARGO_JOB, "- --no-progress", "- --no-progres"),
        (ARGO_JOB, "backoffLimit: 0", "backoffLimit: 3"),
        (ARGO_JOB, "restartPolicy: Never", "restartPolicy: OnFailure"),
        (
            ARGO_JOB,
            "count: 1\n",
            "count: 1\n      successCondition: result == \"pass\"\n",
        ),
        (ARGO_JOB, "count: 1\n", "count: 3\n"),
        (ARGO_JOB, "{{args.metrics-port}}", "{{args.metric-port}}"),
        (ARGO_JOB, "target.base_url=", "target.base_ur="),
        (
            ARGO_JOB,
            "- probes.prometheus.url=",
            "- probes.prometheus.uri=",
        ),
        (ARGO_JOB, "\"256 B/request\"", "\"256 B per request\""),
        (
            ARGO_JOB,
            "name: leakgate-canary-scenario\ndata:",
            "name: other\ndata:",
        ),
        // The web template.
        (ARGO_WEB, "/verdict\"", "/verdicts\""),
        (ARGO_WEB, "\"{$.verdict}\"", "\"{$.verdicts}\""),
        (ARGO_WEB, "result == \"pass\"", "result == \"passed\""),
        (ARGO_WEB, "result == \"leak\"", "result != \"pass\""),
        (ARGO_WEB, "      inconclusiveLimit: 3\n", ""),
        (ARGO_WEB, "      failureLimit: 0\n", ""),
        (ARGO_WEB, "      count: 12\n", ""),
        (ARGO_WEB, "      interval: 5m\n", ""),
        (ARGO_WEB, "value: \"9090\"", "value: \"9091\""),
        (ARGO_WEB, "{{args.namespace}}", "{{args.ns}}"),
        (ARGO_WEB, "kind: AnalysisTemplate", "kind: Analysis"),
        // The Flagger metric template.
        (
            FLAGGER_METRIC,
            "      leakgate_verdict{\n",
            "      leakgate_verdicts{\n",
        ),
        (FLAGGER_METRIC, "type: prometheus", "type: datadog"),
        (
            FLAGGER_METRIC,
            "flagger.app/v1beta1\nkind: MetricTemplate",
            "flagger.app/v1alpha3\nkind: MetricTemplate",
        ),
        (FLAGGER_METRIC, "#           max: 0", "#           max: 1"),
        (
            FLAGGER_METRIC,
            "#           name: leakgate-verdict",
            "#           name: leakgate",
        ),
        (FLAGGER_METRIC, "# kind: Canary", "# kind: Canry"),
        // The Flagger webhook.
        (
            FLAGGER_WEBHOOK,
            "9090/verdict?fail_on_leak=1",
            "9090/verdict?fail_on_leak=0",
        ),
        (FLAGGER_WEBHOOK, "type: rollout", "type: post-rollout"),
        (FLAGGER_WEBHOOK, "9090/verdict?", "9090/verdicts?"),
        (
            FLAGGER_WEBHOOK,
            "portDiscovery: true",
            "portDiscovery: false",
        ),
        (FLAGGER_WEBHOOK, "kind: Canary", "kind: Canar"),
        // The sidecar.
        (
            SIDECAR,
            "shareProcessNamespace: true",
            "shareProcessNamespace: false",
        ),
        (
            SIDECAR,
            "add: [SYS_PTRACE, DAC_READ_SEARCH]",
            "add: [SYS_PTRACE, DAC_READ_SEARCH, SYS_ADMIN]",
        ),
        (
            SIDECAR,
            "add: [SYS_PTRACE, DAC_READ_SEARCH]",
            "add: [DAC_READ_SEARCH]",
        ),
        (
            SIDECAR,
            SIDECAR_HARDENING,
            &SIDECAR_HARDENING.replace("drop: [ALL]", "drop: [NET_RAW]"),
        ),
        (
            SIDECAR,
            SIDECAR_HARDENING,
            &SIDECAR_HARDENING.replace(
                "readOnlyRootFilesystem: true",
                "readOnlyRootFilesystem: false",
            ),
        ),
        (SIDECAR, "containerPort: 9090", "containerPort: 9091"),
        (SIDECAR, "path: /healthz", "path: /health"),
        (SIDECAR, "- --process-name", "- --process-nam"),
        (SIDECAR, "- --listen-public", "- --listen-publik"),
        (
            SIDECAR,
            "            - --listen-public # the controllers and Prometheus call from outside the pod\n",
            "",
        ),
        (
            SIDECAR,
            "rss_bytes=64 B/request",
            "rss_bytes=64 B per request",
        ),
        (
            SIDECAR,
            "- --interval\n            - 10s",
            "- --interval\n            - ten",
        ),
        (
            SIDECAR,
            "            - --process-name\n            - api\n",
            "",
        ),
        (
            SIDECAR,
            "mountPath: /var/lib/leakgate",
            "mountPath: /var/lib/leakgat",
        ),
        (SIDECAR, "127.0.0.1:8080/metrics", "127.0.0.1:8081/metrics"),
        (SIDECAR, "memory: 64Mi", "memory: 1Gi"),
        (SIDECAR, "kind: Deployment", "kind: Deploymen"),
        (
            SIDECAR,
            "  selector:\n    app: api",
            "  selector:\n    app: web",
        ),
        // The systemd unit.
        (UNIT, "--systemd-unit %i", "--systemd-unit %I"),
        (UNIT, "leakgate watch", "leakgate wach"),
        (UNIT, "KillSignal=SIGTERM", "KillSignal=SIGKILL"),
        (UNIT, "Restart=on-failure", "Restart=always"),
        (UNIT, "TimeoutStopSec=2min", "TimeoutStopSec=5s"),
        (
            UNIT,
            "CapabilityBoundingSet=CAP_SYS_PTRACE CAP_DAC_READ_SEARCH",
            "CapabilityBoundingSet=CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_SYS_ADMIN",
        ),
        (UNIT, "--evaluate-every 1m", "--evaluate-evry 1m"),
        (UNIT, "--min-time-to-limit 24h", "--min-time-to-limit"),
        (
            UNIT,
            "ReadWritePaths=/var/lib/leakgate/%i",
            "ReadWritePaths=/var/lib/other",
        ),
        (UNIT, "ProtectSystem=strict", "ProtectSystem=full"),
        (UNIT, "NoNewPrivileges=yes", "NoNewPrivileges=no"),
        (UNIT, "[Service]", "[Servic]"),
        (UNIT, "${LEAKGATE_LISTEN}", "${LEAKGATE_LISTN}"),
        (
            UNIT,
            "# Not ProtectProc=invisible",
            "ProtectProc=invisible\n#",
        ),
        // The README.
        (README, "argo-analysistemplate-web.yaml", "argo-web.yaml"),
        (
            README,
            "flagger-webhook-canary.yaml",
            "flagger-webhook.yaml",
        ),
    ];
    let mut passed = Vec::new();
    for (name, from, to) in broken {
        let text = read(name);
        assert!(
            text.contains(from),
            "{name} no longer contains {from:?}: update this broken-file case"
        );
        let changed = text.replacen(from, to, 1);
        match check_file(name, &changed) {
            Ok(()) => passed.push(format!("{name}: {from:?} -> {to:?}")),
            Err(e) => println!("{name}: {from:?} -> {to:?}: rejected: {e}"),
        }
    }
    assert!(
        passed.is_empty(),
        "broken copies passed the checks:\n  {}",
        passed.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// One check per file

fn check_file(name: &str, text: &str) -> Check {
    match name {
        ARGO_JOB => check_argo_job(text)?,
        ARGO_WEB => check_argo_web(text)?,
        FLAGGER_METRIC => check_flagger_metric(text)?,
        FLAGGER_WEBHOOK => check_flagger_webhook(text)?,
        SIDECAR => check_sidecar(text)?,
        UNIT => check_unit(text)?,
        README => return check_readme(text),
        other => return Err(format!("no check for {other}")),
    }
    for inv in invocations(name, text)? {
        check_invocation(&inv).map_err(|e| format!("{}: {e}", inv.origin))?;
    }
    Ok(())
}

/// Argo Rollouts `AnalysisTemplate` with a `job` provider: one Job, not retried, whose exit code
/// is the measurement, running `leakgate run ... --until-verdict` (or `leakgate watch`) with a
/// scenario that resolves with the Job's overrides.
fn check_argo_job(text: &str) -> Check {
    let docs = parse_yaml(text)?;
    let t = one_doc(&docs, "argoproj.io/v1alpha1", "AnalysisTemplate")?;
    argo_args_declared(t)?;
    let metric = metric_with(t, "job")?;
    for cond in ["successCondition", "failureCondition"] {
        ensure!(
            metric.get(cond).is_none(),
            "the job metric has a {cond}: Argo's job provider takes none (the Job's exit decides)"
        );
    }
    ensure!(
        metric.get("count") == Some(&Value::from(1)),
        "the job metric's count must be 1 (one Job per analysis), got {:?}",
        metric.get("count")
    );
    ensure!(
        metric.get("failureLimit") == Some(&Value::from(0)),
        "the job metric's failureLimit must be 0 (a failed Job fails the analysis), got {:?}",
        metric.get("failureLimit")
    );
    let job = at(metric, "/provider/job/spec")?;
    ensure!(
        job.get("backoffLimit") == Some(&Value::from(0)),
        "backoffLimit must be 0: a retried pod can turn a leak into a pass"
    );
    let pod = at(job, "/template/spec")?;
    ensure!(
        str_at(pod, "/restartPolicy")? == "Never",
        "restartPolicy must be Never (a restarted container hides its exit code)"
    );
    let values = argo_arg_values(t);
    let invs = pod_invocations(ARGO_JOB, "job", pod, &values)?;
    ensure!(
        invs.len() == 1,
        "the Job must start leakgate once, found {}",
        invs.len()
    );
    let argv = &invs[0].argv;
    let sub = argv.get(1).map(String::as_str);
    ensure!(
        sub == Some("watch") || argv.iter().any(|a| a == "--until-verdict"),
        "the Job's leakgate must be `watch` or `run ... --until-verdict` (it has to end by itself \
         with the verdict as its exit code): {}",
        argv.join(" ")
    );
    if sub == Some("run") {
        check_job_scenario(&docs, pod, &invs[0])?;
    }
    Ok(())
}

/// The Job's scenario file comes from a ConfigMap in the same file and resolves with the Job's
/// `--set` overrides, which replace every placeholder address in it.
fn check_job_scenario(docs: &[Value], pod: &Value, inv: &Invocation) -> Check {
    let argv = &inv.argv;
    let scenario = argv[2..]
        .iter()
        .find(|a| a.ends_with(".toml"))
        .ok_or("`leakgate run` in the Job names no scenario file")?;
    let (folder, file) = scenario
        .rsplit_once('/')
        .ok_or("the scenario path is not absolute")?;
    let container = pod_containers(pod)?
        .into_iter()
        .find(|c| c.get("name") == Some(&Value::from(inv.container.as_str())))
        .ok_or("no leakgate container")?;
    let volume = array(container, "/volumeMounts")?
        .iter()
        .find(|m| m.get("mountPath").and_then(Value::as_str) == Some(folder))
        .and_then(|m| m.get("name").and_then(Value::as_str))
        .ok_or_else(|| format!("nothing is mounted at {folder}, the scenario's folder"))?;
    let config_map = array(pod, "/volumes")?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(volume))
        .and_then(|v| v.pointer("/configMap/name").and_then(Value::as_str))
        .ok_or_else(|| format!("volume {volume} is not a ConfigMap"))?;
    let cm = docs
        .iter()
        .find(|d| {
            d.get("kind").and_then(Value::as_str) == Some("ConfigMap")
                && d.pointer("/metadata/name").and_then(Value::as_str) == Some(config_map)
        })
        .ok_or_else(|| format!("no ConfigMap {config_map} in the file"))?;
    let toml = str_at(cm, &format!("/data/{file}"))?;
    let mut overrides = Vec::new();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let set = match a.strip_prefix("--set=") {
            Some(v) => Some(v),
            None if a == "--set" => it.next().map(String::as_str),
            None => None,
        };
        if let Some(kv) = set {
            let (k, v) = kv.split_once('=').ok_or("--set without KEY=VALUE")?;
            overrides.push((k.to_string(), v.to_string()));
        }
    }
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = tmp.path().join(file);
    std::fs::write(&path, toml).map_err(|e| e.to_string())?;
    let plan = leakgate::scenario::load(&path, &overrides)
        .map_err(|e| format!("the Job's scenario with its --set overrides: {e}"))?;
    ensure!(
        !plan.gates.signals.is_empty(),
        "the Job's scenario gates no signal"
    );
    let prometheus = plan.probes.prometheus.as_ref().map(|p| p.url.as_str());
    for url in [Some(plan.load.base_url.as_str()), prometheus]
        .into_iter()
        .flatten()
    {
        ensure!(
            url.contains("sample-canary-service"),
            "{url} is not the canary's address: the Job must --set it from its args"
        );
    }
    Ok(())
}

/// Argo Rollouts `AnalysisTemplate` with a `web` provider reading the sidecar's `/verdict`.
fn check_argo_web(text: &str) -> Check {
    let docs = parse_yaml(text)?;
    let t = one_doc(&docs, "argoproj.io/v1alpha1", "AnalysisTemplate")?;
    argo_args_declared(t)?;
    let metric = metric_with(t, "web")?;
    let values = argo_arg_values(t);
    let url = fill_argo(str_at(metric, "/provider/web/url")?, &values);
    ensure!(
        url.ends_with("/verdict"),
        "the url must end with /verdict: {url}"
    );
    ensure!(
        url_port(&url) == Some(LEAKGATE_PORT),
        "the url must reach the sidecar's port {LEAKGATE_PORT}: {url}"
    );
    let json_path = str_at(metric, "/provider/web/jsonPath")?;
    ensure!(
        json_path == "{$.verdict}",
        "jsonPath must be {{$.verdict}}, got {json_path}"
    );
    // pass -> Successful, leak -> Failed, inconclusive -> neither, so Argo records Inconclusive.
    let success = str_at(metric, "/successCondition")?;
    let failure = str_at(metric, "/failureCondition")?;
    ensure!(
        success.contains("\"pass\"")
            && !success.contains("leak")
            && !success.contains("inconclusive"),
        "successCondition must match \"pass\" only: {success}"
    );
    ensure!(
        failure.contains("\"leak\"")
            && !failure.contains("pass")
            && !failure.contains("inconclusive"),
        "failureCondition must match \"leak\" only: {failure}"
    );
    for key in ["interval", "count", "inconclusiveLimit", "failureLimit"] {
        ensure!(metric.get(key).is_some(), "the web metric has no {key}");
    }
    Ok(())
}

/// Flagger `MetricTemplate` on Prometheus's `leakgate_verdict`, and the commented `Canary` that
/// uses it with `thresholdRange.max: 0`.
fn check_flagger_metric(text: &str) -> Check {
    let docs = parse_yaml(text)?;
    let t = one_doc(&docs, "flagger.app/v1beta1", "MetricTemplate")?;
    ensure!(
        str_at(t, "/spec/provider/type")? == "prometheus",
        "the provider must be prometheus"
    );
    str_at(t, "/spec/provider/address")?;
    let query = str_at(t, "/spec/query")?;
    ensure!(
        query.contains("leakgate_verdict{") || query.contains("leakgate_verdict "),
        "the query must read leakgate_verdict: {query}"
    );
    let name = str_at(t, "/metadata/name")?;
    let snippet = commented_yaml(text, "# apiVersion: flagger.app/v1beta1").ok_or(
        "no commented Canary snippet (a block starting `# apiVersion: flagger.app/v1beta1`)",
    )?;
    let canary = parse_yaml(&snippet).map_err(|e| format!("the commented Canary: {e}"))?;
    let canary = one_doc(&canary, "flagger.app/v1beta1", "Canary")
        .map_err(|e| format!("the commented Canary: {e}"))?;
    let metric = array(canary, "/spec/analysis/metrics")?
        .iter()
        .find(|m| m.pointer("/templateRef/name").and_then(Value::as_str) == Some(name))
        .ok_or_else(|| format!("the commented Canary has no metric with templateRef {name}"))?;
    ensure!(
        metric
            .pointer("/thresholdRange/max")
            .and_then(Value::as_f64)
            == Some(0.0),
        "the commented Canary's thresholdRange.max must be 0 (any leak fails the check)"
    );
    Ok(())
}

/// Flagger `Canary` with a `rollout` webhook on `/verdict?fail_on_leak=1`.
fn check_flagger_webhook(text: &str) -> Check {
    let docs = parse_yaml(text)?;
    let c = one_doc(&docs, "flagger.app/v1beta1", "Canary")?;
    let hook = array(c, "/spec/analysis/webhooks")?
        .iter()
        .find(|h| h.get("type").and_then(Value::as_str) == Some("rollout"))
        .ok_or("no webhook of type rollout")?;
    let url = str_at(hook, "/url")?;
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    ensure!(
        path.ends_with("/verdict"),
        "the webhook must call /verdict: {url}"
    );
    ensure!(
        query.split('&').any(|q| q == "fail_on_leak=1"),
        "the webhook url must ask for fail_on_leak=1 (503 on a leak): {url}"
    );
    ensure!(
        url_port(url) == Some(LEAKGATE_PORT),
        "the webhook must reach the sidecar's port {LEAKGATE_PORT}: {url}"
    );
    ensure!(
        c.pointer("/spec/service/portDiscovery") == Some(&Value::Bool(true)),
        "service.portDiscovery must be true: it puts the sidecar's port on the -canary Service"
    );
    Ok(())
}

/// A Deployment with the app and a `leakgate watch` sidecar in one PID namespace.
fn check_sidecar(text: &str) -> Check {
    let docs = parse_yaml(text)?;
    let d = one_doc(&docs, "apps/v1", "Deployment")?;
    let pod = at(d, "/spec/template/spec")?;
    ensure!(
        pod.get("shareProcessNamespace") == Some(&Value::Bool(true)),
        "shareProcessNamespace must be true (the sidecar finds the app's process)"
    );
    let invs = pod_invocations(SIDECAR, "sidecar", pod, &BTreeMap::new())?;
    ensure!(
        invs.len() == 1,
        "one container must run leakgate, found {}",
        invs.len()
    );
    let inv = &invs[0];
    ensure!(
        inv.argv.get(1).map(String::as_str) == Some("watch"),
        "the sidecar must run `leakgate watch`"
    );
    let containers = pod_containers(pod)?;
    let (side, apps): (Vec<&Value>, Vec<&Value>) = containers
        .into_iter()
        .partition(|c| c.get("name") == Some(&Value::from(inv.container.as_str())));
    let side = side[0];
    ensure!(!apps.is_empty(), "no app container beside the sidecar");

    let sc = at(side, "/securityContext")?;
    let caps = |key: &str| -> Result<BTreeSet<String>, String> {
        Ok(array(sc, &format!("/capabilities/{key}"))?
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_string())
            .collect())
    };
    ensure!(
        caps("drop")? == BTreeSet::from(["ALL".to_string()]),
        "the sidecar must drop ALL capabilities"
    );
    let want: BTreeSet<String> = ["SYS_PTRACE", "DAC_READ_SEARCH"].map(String::from).into();
    ensure!(
        caps("add")? == want,
        "the sidecar must add exactly SYS_PTRACE (smaps_rollup) and DAC_READ_SEARCH (fd) of \
         another uid's process, got {:?}",
        caps("add")?
    );
    ensure!(
        sc.get("readOnlyRootFilesystem") == Some(&Value::Bool(true)),
        "the sidecar's root filesystem must be read-only"
    );
    ensure!(
        sc.get("allowPrivilegeEscalation") == Some(&Value::Bool(false)),
        "the sidecar must not allow privilege escalation"
    );

    let port = array(side, "/ports")?
        .iter()
        .find(|p| p.get("containerPort") == Some(&Value::from(LEAKGATE_PORT)))
        .ok_or("the sidecar has no containerPort 9090")?;
    ensure!(
        port.get("name") == Some(&Value::from("leakgate")),
        "port 9090 must be named leakgate"
    );
    ensure!(
        str_at(side, "/readinessProbe/httpGet/path")? == "/healthz",
        "the readiness probe must GET /healthz"
    );
    let probe_port = at(side, "/readinessProbe/httpGet/port")?;
    ensure!(
        probe_port == &Value::from(LEAKGATE_PORT) || probe_port == &Value::from("leakgate"),
        "the readiness probe must use port 9090"
    );
    let listen = inv
        .value("--listen")
        .ok_or("the sidecar serves no --listen")?;
    ensure!(
        listen.ends_with(&format!(":{LEAKGATE_PORT}")),
        "--listen {listen} is not the container port {LEAKGATE_PORT}"
    );

    // Small: a few MiB and a tenth of a core.
    let mem = quantity(str_at(side, "/resources/limits/memory")?)?;
    let cpu = quantity(str_at(side, "/resources/limits/cpu")?)?;
    ensure!(
        mem <= 128.0 * 1024.0 * 1024.0,
        "the sidecar's memory limit is not small: {mem} bytes"
    );
    ensure!(
        cpu <= 0.5,
        "the sidecar's cpu limit is not small: {cpu} cores"
    );
    for r in ["/resources/requests/memory", "/resources/requests/cpu"] {
        quantity(str_at(side, r)?)?;
    }

    // The results folder is an emptyDir mounted in the sidecar.
    let results = inv
        .value("--results-dir")
        .ok_or("the sidecar has no --results-dir")?;
    let mount = array(side, "/volumeMounts")?
        .iter()
        .find(|m| m.get("mountPath").and_then(Value::as_str) == Some(results))
        .and_then(|m| m.get("name").and_then(Value::as_str))
        .ok_or_else(|| format!("nothing is mounted at --results-dir {results}"))?;
    ensure!(
        array(pod, "/volumes")?
            .iter()
            .any(|v| v.get("name") == Some(&Value::from(mount)) && v.get("emptyDir").is_some()),
        "the results volume {mount} must be an emptyDir"
    );

    // The request counter is the app's, on loopback (one network namespace per pod).
    let from = inv
        .value("--requests-from")
        .ok_or("the sidecar has no --requests-from")?;
    ensure!(
        from.starts_with("http://127.0.0.1:") || from.starts_with("http://localhost:"),
        "--requests-from must be the app on loopback: {from}"
    );
    let app_ports: BTreeSet<u16> = apps
        .iter()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| p.get("containerPort").and_then(Value::as_u64))
        .map(|p| p as u16)
        .collect();
    ensure!(
        url_port(from).is_some_and(|p| app_ports.contains(&p)),
        "--requests-from {from} is not on a port of the app container ({app_ports:?})"
    );

    // An optional Service selects these pods and maps the sidecar's port.
    let labels = at(d, "/spec/template/metadata/labels")?;
    for svc in docs
        .iter()
        .filter(|d| d.get("kind") == Some(&Value::from("Service")))
    {
        let selector = at(svc, "/spec/selector")?
            .as_object()
            .ok_or("Service selector is not a map")?;
        for (k, v) in selector {
            ensure!(
                labels.get(k) == Some(v),
                "the Service selects {k}={v}, which the pod template does not carry"
            );
        }
    }
    Ok(())
}

/// The systemd template unit: `leakgate watch --systemd-unit %i`, stopped with SIGTERM and time
/// to write reports, restarted on failure, hardened.
fn check_unit(text: &str) -> Check {
    let unit = parse_unit(text)?;
    let service = unit.get("Service").ok_or("no [Service] section")?;
    let one = |key: &str| -> Result<&str, String> {
        let vals: Vec<&str> = service
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        match vals.as_slice() {
            [v] => Ok(v),
            [] => Err(format!("[Service] has no {key}=")),
            _ => Err(format!("[Service] sets {key}= more than once")),
        }
    };
    let argv = unit_exec_start(&unit)?;
    ensure!(
        argv.len() >= 4
            && basename(&argv[0]) == "leakgate"
            && argv[1..4] == ["watch", "--systemd-unit", "%i"],
        "ExecStart must run `leakgate watch --systemd-unit %i`: {}",
        argv.join(" ")
    );
    ensure!(
        one("KillSignal")? == "SIGTERM",
        "KillSignal must be SIGTERM"
    );
    ensure!(
        one("Restart")? == "on-failure",
        "Restart must be on-failure"
    );
    let stop = one("TimeoutStopSec")?;
    let stop = if stop.chars().all(|c| c.is_ascii_digit()) {
        std::time::Duration::from_secs(stop.parse().map_err(|e| format!("{e}"))?)
    } else {
        parse_duration(stop)?
    };
    ensure!(
        stop >= std::time::Duration::from_secs(30),
        "TimeoutStopSec {stop:?} leaves too little time to write the reports"
    );
    ensure!(
        one("ProtectSystem")? == "strict",
        "ProtectSystem must be strict"
    );
    ensure!(
        one("NoNewPrivileges")? == "yes",
        "NoNewPrivileges must be yes"
    );
    let caps: BTreeSet<&str> = one("CapabilityBoundingSet")?.split_whitespace().collect();
    ensure!(
        caps == BTreeSet::from(["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"]),
        "CapabilityBoundingSet must be exactly CAP_SYS_PTRACE CAP_DAC_READ_SEARCH, got {caps:?}"
    );
    let results = argv
        .iter()
        .position(|a| a == "--results-dir")
        .and_then(|i| argv.get(i + 1))
        .ok_or("ExecStart has no --results-dir")?;
    let writable: Vec<&str> = one("ReadWritePaths")?.split_whitespace().collect();
    ensure!(
        writable
            .iter()
            .any(|w| Path::new(results).starts_with(w.trim_start_matches('-'))),
        "--results-dir {results} is not under ReadWritePaths= {writable:?} (ProtectSystem=strict \
         makes the rest read-only)"
    );
    for (key, hides) in [("ProtectProc", "invisible"), ("ProcSubset", "pid")] {
        ensure!(
            service.iter().all(|(k, v)| k != key || v != hides),
            "{key}={hides} hides the watched service's /proc/<pid>"
        );
    }
    Ok(())
}

/// The README names every file of the folder.
fn check_readme(text: &str) -> Check {
    for name in FILES.iter().filter(|n| **n != README) {
        ensure!(text.contains(name), "README.md does not mention {name}");
    }
    for word in ["Successful", "Failed", "Inconclusive", "thresholdRange"] {
        ensure!(
            text.contains(word),
            "README.md does not say how the verdict maps ({word})"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// leakgate command lines

/// One `leakgate ...` command line found in a file.
#[derive(Debug)]
struct Invocation {
    file: &'static str,
    origin: String,
    container: String,
    argv: Vec<String>,
}

impl Invocation {
    /// The value of `--flag value` or `--flag=value`.
    fn value(&self, flag: &str) -> Option<&str> {
        let mut it = self.argv.iter();
        while let Some(a) = it.next() {
            if a == flag {
                return it.next().map(String::as_str);
            }
            if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                return Some(v);
            }
        }
        None
    }
}

/// How a `leakgate watch` flag takes its value.
#[derive(Clone, Copy, PartialEq)]
enum Arity {
    Value,
    Switch,
    OptionalValue,
}

/// The `leakgate watch` command line.
const WATCH_FLAGS: &[(&str, Arity)] = &[
    ("--pid", Arity::Value),
    ("--pid-file", Arity::Value),
    ("--cgroup", Arity::Value),
    ("--systemd-unit", Arity::Value),
    ("--container", Arity::Value),
    ("--process-name", Arity::Value),
    ("--requests-from", Arity::Value),
    ("--requests-metric", Arity::Value),
    ("--gate", Arity::Value),
    ("--interval", Arity::Value),
    ("--duration", Arity::Value),
    ("--evaluate-every", Arity::Value),
    ("--horizon", Arity::Value),
    ("--until-verdict", Arity::Switch),
    ("--min-time-to-limit", Arity::Value),
    ("--listen", Arity::OptionalValue),
    ("--listen-public", Arity::Switch),
    ("--results-dir", Arity::Value),
    ("--segment", Arity::Value),
];

/// The flags that name what `leakgate watch` attaches to; exactly one is given.
const WATCH_TARGETS: [&str; 6] = [
    "--pid",
    "--pid-file",
    "--cgroup",
    "--systemd-unit",
    "--container",
    "--process-name",
];

/// Every `leakgate` command line in a file: containers of Kubernetes objects, the unit's
/// ExecStart.
fn invocations(name: &str, text: &str) -> Result<Vec<Invocation>, String> {
    let file = FILES
        .into_iter()
        .find(|f| *f == name)
        .ok_or_else(|| format!("unknown file {name}"))?;
    if name == UNIT {
        let argv = unit_exec_start(&parse_unit(text)?)?;
        return Ok(vec![Invocation {
            file,
            origin: format!("{name} ExecStart"),
            container: String::new(),
            argv,
        }]);
    }
    if !name.ends_with(".yaml") {
        return Ok(vec![]);
    }
    let mut out = Vec::new();
    for doc in parse_yaml(text)? {
        let values = argo_arg_values(&doc);
        collect_invocations(file, &doc, &values, &mut out);
    }
    Ok(out)
}

/// Walks a document for container specs (`image` with `command`/`args`) that start leakgate.
fn collect_invocations(
    file: &'static str,
    v: &Value,
    argo: &BTreeMap<String, String>,
    out: &mut Vec<Invocation>,
) {
    match v {
        Value::Object(m) => {
            if m.contains_key("image")
                && let Some(inv) = container_invocation(file, v, argo)
            {
                out.push(inv);
            }
            m.values()
                .for_each(|c| collect_invocations(file, c, argo, out));
        }
        Value::Array(a) => a
            .iter()
            .for_each(|c| collect_invocations(file, c, argo, out)),
        _ => {}
    }
}

fn container_invocation(
    file: &'static str,
    c: &Value,
    argo: &BTreeMap<String, String>,
) -> Option<Invocation> {
    let strings = |key: &str| -> Vec<String> {
        c.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|s| fill_argo(&scalar(s), argo)).collect())
            .unwrap_or_default()
    };
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    let mut argv = strings("command");
    if argv.is_empty() && image.contains("leakgate") {
        argv.push("leakgate".into());
    }
    argv.extend(strings("args"));
    let start = argv.iter().position(|a| basename(a) == "leakgate")?;
    let container = c
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    Some(Invocation {
        file,
        origin: format!("{file} container {container}"),
        container,
        argv: argv[start..].to_vec(),
    })
}

fn pod_invocations(
    file: &'static str,
    what: &str,
    pod: &Value,
    argo: &BTreeMap<String, String>,
) -> Result<Vec<Invocation>, String> {
    let mut out = Vec::new();
    for c in pod_containers(pod)? {
        out.extend(container_invocation(file, c, argo));
    }
    ensure!(!out.is_empty(), "the {what} runs no leakgate");
    Ok(out)
}

fn check_invocation(inv: &Invocation) -> Check {
    let argv = &inv.argv;
    ensure!(
        argv.first().is_some_and(|a| basename(a) == "leakgate"),
        "not a leakgate command"
    );
    match argv.get(1).map(String::as_str) {
        Some("watch") => check_watch(argv),
        Some("run") => check_run(argv),
        other => Err(format!("leakgate {other:?}: expected `watch` or `run`")),
    }
}

/// `leakgate watch`: flags from the watch command line only, each with a value of its form; one
/// target; `--listen` off loopback only with `--listen-public`. Once the binary has a `watch`
/// subcommand, its own parser must accept the line too.
fn check_watch(argv: &[String]) -> Check {
    let mut given: Vec<(&str, Option<&str>)> = Vec::new();
    let mut positional = Vec::new();
    let mut i = 2;
    while i < argv.len() {
        let tok = argv[i].as_str();
        i += 1;
        if !tok.starts_with('-') {
            positional.push(tok);
            continue;
        }
        let (name, inline) = match tok.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (tok, None),
        };
        let Some(&(_, arity)) = WATCH_FLAGS.iter().find(|(f, _)| *f == name) else {
            return Err(format!(
                "unknown flag `{name}` for `leakgate watch` (known: {})",
                WATCH_FLAGS
                    .iter()
                    .map(|(f, _)| *f)
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        };
        let next_is_value = argv
            .get(i)
            .is_some_and(|n| !n.starts_with("--") && !n.ends_with(".toml"));
        let value = match (arity, inline) {
            (Arity::Switch, Some(_)) => return Err(format!("`{name}` takes no value")),
            (Arity::Switch, None) => None,
            (_, Some(v)) => Some(v),
            (Arity::Value, None) if next_is_value => {
                i += 1;
                Some(argv[i - 1].as_str())
            }
            (Arity::Value, None) => return Err(format!("`{name}` needs a value")),
            (Arity::OptionalValue, None) if next_is_value => {
                i += 1;
                Some(argv[i - 1].as_str())
            }
            (Arity::OptionalValue, None) => None,
        };
        if let Some(v) = value {
            check_watch_value(name, v)?;
        }
        given.push((name, value));
    }
    ensure!(
        positional.len() <= 1 && positional.iter().all(|p| p.ends_with(".toml")),
        "`leakgate watch` takes at most one SCENARIO.toml besides its flags, got {positional:?}"
    );
    let has = |f: &str| given.iter().any(|(n, _)| *n == f);
    let targets: Vec<&str> = given
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| WATCH_TARGETS.contains(n))
        .collect();
    ensure!(
        targets.len() == 1 || (targets.is_empty() && !positional.is_empty()),
        "`leakgate watch` needs exactly one target ({}), got {targets:?}",
        WATCH_TARGETS.join(" | ")
    );
    ensure!(
        !has("--requests-metric") || has("--requests-from"),
        "--requests-metric without --requests-from"
    );
    ensure!(
        !has("--listen-public") || has("--listen"),
        "--listen-public without --listen"
    );
    for (n, v) in &given {
        if *n == "--listen"
            && let Some(addr) = v
        {
            let loopback = addr.starts_with("127.")
                || addr.starts_with("[::1]")
                || addr.starts_with("localhost:");
            ensure!(
                loopback || has("--listen-public"),
                "--listen {addr} is off loopback: it needs --listen-public"
            );
        }
    }
    let cmd = Cli::command();
    if cmd.find_subcommand("watch").is_some() {
        Cli::try_parse_from(argv).map_err(|e| format!("leakgate's own parser: {e}"))?;
    }
    Ok(())
}

/// The form of a `leakgate watch` flag's value.
fn check_watch_value(flag: &str, v: &str) -> Check {
    let bad = |what: &str| Err(format!("`{flag} {v}`: expected {what}"));
    match flag {
        "--interval" | "--duration" | "--evaluate-every" | "--min-time-to-limit" | "--segment" => {
            parse_duration(v)
                .map(|_| ())
                .map_err(|e| format!("`{flag}`: {e}"))
        }
        "--horizon" => {
            let requests = v
                .strip_suffix("requests")
                .is_some_and(|n| n.trim().parse::<u64>().is_ok());
            if requests || parse_duration(v).is_ok() {
                Ok(())
            } else {
                bad("a duration (30m) or a request count (100000 requests)")
            }
        }
        "--gate" => match v.split_once('=') {
            Some((signal, limit))
                if !signal.is_empty()
                    && signal
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                parse_slope(limit)
                    .map(|_| ())
                    .map_err(|e| format!("`--gate {v}`: {e}"))
            }
            _ => bad("SIGNAL=LIMIT, e.g. rss_bytes=64 B/request"),
        },
        "--requests-from" if !(v.starts_with("http://") || v.starts_with("https://")) => {
            bad("an http(s) URL")
        }
        "--pid" if v.parse::<u32>().is_err() => bad("a process id"),
        "--listen" if !v.contains(':') => bad("HOST:PORT"),
        _ if v.is_empty() => bad("a value"),
        _ => Ok(()),
    }
}

/// `leakgate run`: the flags of the binary's `run` plus `--until-verdict`, and its own parser
/// accepts the line (without `--until-verdict` while it lacks that flag).
fn check_run(argv: &[String]) -> Check {
    let cmd = Cli::command();
    let run = cmd.find_subcommand("run").ok_or("leakgate has no `run`")?;
    let mut known: BTreeSet<String> = run
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(|l| format!("--{l}"))
        .collect();
    let has_until = known.contains("--until-verdict");
    known.insert("--until-verdict".into());
    for a in &argv[2..] {
        if a.starts_with("--") {
            let name = a.split_once('=').map_or(a.as_str(), |(n, _)| n);
            ensure!(
                known.contains(name),
                "unknown flag `{name}` for `leakgate run` (known: {})",
                known.iter().cloned().collect::<Vec<_>>().join(" ")
            );
        }
    }
    let args: Vec<&String> = argv
        .iter()
        .filter(|a| has_until || *a != "--until-verdict")
        .collect();
    Cli::try_parse_from(args).map_err(|e| format!("leakgate's own parser: {e}"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Argo templates

/// The template's `metrics[]` entry with this provider.
fn metric_with<'a>(t: &'a Value, provider: &str) -> Result<&'a Value, String> {
    array(t, "/spec/metrics")?
        .iter()
        .find(|m| m.pointer(&format!("/provider/{provider}")).is_some())
        .ok_or_else(|| format!("no metric with a {provider} provider"))
}

/// Argo args as a Rollout would pass them: the declared value, else `sample-<name>`.
fn argo_arg_values(doc: &Value) -> BTreeMap<String, String> {
    doc.pointer("/spec/args")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let name = a.get("name")?.as_str()?;
            let value = a
                .get("value")
                .map(scalar)
                .unwrap_or_else(|| format!("sample-{name}"));
            Some((name.to_string(), value))
        })
        .collect()
}

fn fill_argo(s: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = s.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{{{args.{k}}}}}"), v);
    }
    out
}

/// Every `{{args.NAME}}` in the template is declared in `spec.args`.
fn argo_args_declared(t: &Value) -> Check {
    let declared = argo_arg_values(t);
    let text = at(t, "/spec/metrics")?.to_string();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("{{args.") {
        rest = &rest[i + "{{args.".len()..];
        let end = rest.find("}}").ok_or("unclosed {{args.")?;
        let name = &rest[..end];
        ensure!(
            declared.contains_key(name),
            "{{{{args.{name}}}}} is used but not declared in spec.args"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// systemd unit files

type Unit = BTreeMap<String, Vec<(String, String)>>;

/// Sections of `Key=Value` lines; `#`/`;` comments; a trailing backslash continues a line.
fn parse_unit(text: &str) -> Result<Unit, String> {
    let mut unit = Unit::new();
    let mut section: Option<String> = None;
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let mut line = line.trim().to_string();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        while let Some(head) = line.strip_suffix('\\') {
            let head = head.to_string();
            let (_, next) = lines
                .next()
                .ok_or_else(|| format!("line {}: continued past the end", n + 1))?;
            line = format!("{head} {}", next.trim());
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            unit.entry(name.to_string()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: not Key=Value: {line}", n + 1))?;
        let key = key.trim();
        ensure!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()),
            "line {}: bad key {key:?}",
            n + 1
        );
        let section = section
            .as_ref()
            .ok_or_else(|| format!("line {}: {key}= before any [Section]", n + 1))?;
        unit.get_mut(section)
            .unwrap()
            .push((key.to_string(), value.trim().to_string()));
    }
    Ok(unit)
}

/// `ExecStart=` split into words as systemd does (quotes, `$VAR` as words, `${VAR}` inside a
/// word), with the variables of the unit's own `Environment=` lines.
fn unit_exec_start(unit: &Unit) -> Result<Vec<String>, String> {
    let service = unit.get("Service").ok_or("no [Service] section")?;
    let mut env = BTreeMap::new();
    for (_, v) in service.iter().filter(|(k, _)| k == "Environment") {
        for word in split_words(v)? {
            let (k, v) = word
                .split_once('=')
                .ok_or("Environment= without NAME=value")?;
            env.insert(k.to_string(), v.to_string());
        }
    }
    let exec: Vec<&String> = service
        .iter()
        .filter(|(k, _)| k == "ExecStart")
        .map(|(_, v)| v)
        .collect();
    let [exec] = exec.as_slice() else {
        return Err(format!(
            "[Service] needs one ExecStart=, has {}",
            exec.len()
        ));
    };
    let exec = exec.trim_start_matches(['@', '-', ':', '+', '!']);
    let var = |name: &str| -> Result<String, String> {
        env.get(name)
            .cloned()
            .ok_or_else(|| format!("ExecStart uses ${name}, which no Environment= line sets"))
    };
    let mut argv = Vec::new();
    for word in split_words(exec)? {
        if let Some(name) = word.strip_prefix('$').filter(|n| !n.starts_with('{')) {
            argv.extend(var(name)?.split_whitespace().map(String::from));
            continue;
        }
        let mut out = String::new();
        let mut rest = word.as_str();
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find('}').ok_or("unclosed ${")? + i;
            out.push_str(&var(&rest[i + 2..end])?);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        argv.push(out);
    }
    Ok(argv)
}

/// Splits on whitespace, keeping quoted runs ("..." or '...') together.
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => cur.get_or_insert_default().extend(chars.next()),
            (Some(_), c) => cur.get_or_insert_default().push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.get_or_insert_default();
            }
            (None, c) if c.is_whitespace() => words.extend(cur.take()),
            (None, c) => cur.get_or_insert_default().push(c),
        }
    }
    ensure!(quote.is_none(), "unclosed quote in {s}");
    words.extend(cur);
    Ok(words)
}

// ---------------------------------------------------------------------------------------------
// YAML into serde_json values, and small lookups

fn parse_yaml(text: &str) -> Result<Vec<Value>, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("YAML: {e}"))?;
    docs.iter().map(to_json).collect()
}

fn to_json(y: &Yaml) -> Result<Value, String> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(_) => Value::from(y.as_f64().ok_or("a real that is not a number")?),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            let mut m = serde_json::Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => return Err(format!("unsupported YAML key {other:?}")),
                };
                m.insert(key, to_json(v)?);
            }
            Value::Object(m)
        }
        Yaml::Alias(_) => return Err("YAML aliases are not used in these files".into()),
        Yaml::BadValue => return Err("bad YAML value".into()),
    })
}

/// The one document of this kind; its apiVersion must be `api`.
fn one_doc<'a>(docs: &'a [Value], api: &str, kind: &str) -> Result<&'a Value, String> {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .collect();
    let [doc] = found.as_slice() else {
        return Err(format!(
            "expected one {kind} document, found {}",
            found.len()
        ));
    };
    let got = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    ensure!(got == api, "{kind} must be apiVersion {api}, got {got:?}");
    Ok(doc)
}

fn at<'a>(v: &'a Value, pointer: &str) -> Result<&'a Value, String> {
    v.pointer(pointer)
        .ok_or_else(|| format!("missing {pointer}"))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Result<&'a str, String> {
    at(v, pointer)?
        .as_str()
        .ok_or_else(|| format!("{pointer} is not a string"))
}

fn array<'a>(v: &'a Value, pointer: &str) -> Result<&'a Vec<Value>, String> {
    at(v, pointer)?
        .as_array()
        .ok_or_else(|| format!("{pointer} is not a list"))
}

fn pod_containers(pod: &Value) -> Result<Vec<&Value>, String> {
    Ok(array(pod, "/containers")?.iter().collect())
}

/// A YAML scalar as the string a container would see.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The explicit port of an http URL.
fn url_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

/// A Kubernetes quantity: `64Mi`, `250m`, `1`, `1G`.
fn quantity(q: &str) -> Result<f64, String> {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let n: f64 = q[..split]
        .parse()
        .map_err(|_| format!("not a quantity: {q}"))?;
    let factor = match &q[split..] {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown quantity suffix {other} in {q}")),
    };
    Ok(n * factor)
}

/// The YAML in a comment block that starts with `first` (`# ` taken off each line).
fn commented_yaml(text: &str, first: &str) -> Option<String> {
    let start = text.lines().position(|l| l.trim_end() == first)?;
    let block: Vec<&str> = text
        .lines()
        .skip(start)
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
        .collect();
    Some(block.join("\n"))
}
