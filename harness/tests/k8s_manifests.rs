//! `ci/k8s/`: the Indexed Job of shards, its merge Job and the scenario they share parse and
//! fit together: the index mode, one count everywhere, one volume, a scenario `leakgate check`
//! accepts, and only flags the binary knows. A broken copy of each file is refused.

use std::path::Path;
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn read(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ci/k8s")
            .join(name),
    )
    .unwrap()
}

fn docs(text: &str) -> Result<Vec<Yaml>, String> {
    YamlLoader::load_from_str(text).map_err(|e| e.to_string())
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> Result<&'a Yaml, String> {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .ok_or_else(|| format!("no {kind}"))
}

/// The container's command line as one string (`sh -c` scripts included).
fn script(container: &Yaml) -> String {
    let parts = |v: &Yaml| -> Vec<String> {
        v.as_vec()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut all = parts(&container["command"]);
    all.extend(parts(&container["args"]));
    all.join(" ")
}

fn pvc_name(pod: &Yaml) -> Option<&str> {
    pod["volumes"]
        .as_vec()?
        .iter()
        .find_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
}

/// Every `--flag` after `leakgate SUB` in `text` is one `leakgate SUB --help` lists.
fn flags_known(text: &str) -> Result<(), String> {
    let mut words = text.split_whitespace().peekable();
    while let Some(w) = words.next() {
        if w != "leakgate" {
            continue;
        }
        let sub = words.next().ok_or("leakgate without a subcommand")?;
        let help = Command::new(env!("CARGO_BIN_EXE_leakgate"))
            .args([sub, "--help"])
            .output()
            .map_err(|e| e.to_string())?;
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        while let Some(next) = words.peek() {
            if *next == "leakgate" || next.ends_with(';') && !next.starts_with('-') {
                break;
            }
            let w = words.next().unwrap_or_default();
            if let Some(flag) = w.strip_prefix("--")
                && !help.contains(&format!("--{flag}"))
            {
                return Err(format!("leakgate {sub} has no --{flag}"));
            }
        }
    }
    Ok(())
}

/// The shards Job, the merge Job and the ConfigMap fit together; the shard count.
fn check(shards: &str, merge: &str, config: &str) -> Result<u64, String> {
    let sd = docs(shards)?;
    let job = of_kind(&sd, "Job")?;
    let pvc = of_kind(&sd, "PersistentVolumeClaim")?;
    let spec = &job["spec"];
    if spec["completionMode"].as_str() != Some("Indexed") {
        return Err("the shards Job is not completionMode: Indexed".into());
    }
    let n = spec["completions"].as_i64().ok_or("no completions")? as u64;
    if spec["parallelism"].as_i64() != Some(n as i64) {
        return Err(format!(
            "parallelism is not completions ({n}): shards run at once"
        ));
    }
    let pod = &spec["template"]["spec"];
    let c = &pod["containers"][0];
    let line = script(c);
    if !line.contains(&format!("leakgate run /scenario/api.toml --shards {n} ")) {
        return Err(format!(
            "the shards do not run `leakgate run ... --shards {n}`: {line}"
        ));
    }
    if !line.contains("--results-dir /results/shard-$JOB_COMPLETION_INDEX") {
        return Err("each shard needs its own results folder by JOB_COMPLETION_INDEX".into());
    }
    flags_known(&line)?;
    if pvc["spec"]["accessModes"][0].as_str() != Some("ReadWriteMany") {
        return Err("the results volume must be ReadWriteMany: every shard writes it".into());
    }
    let claim = pvc["metadata"]["name"]
        .as_str()
        .ok_or("the PVC has no name")?;
    if pvc_name(pod) != Some(claim) {
        return Err(format!("the shards do not mount the PVC {claim}"));
    }
    let config_name = pod["volumes"]
        .as_vec()
        .and_then(|v| v.iter().find_map(|v| v["configMap"]["name"].as_str()))
        .ok_or("the shards mount no scenario ConfigMap")?;

    let md = docs(merge)?;
    let mjob = of_kind(&md, "Job")?;
    let mpod = &mjob["spec"]["template"]["spec"];
    let mline = script(&mpod["containers"][0]);
    let want: Vec<String> = (0..n).map(|i| format!("/results/shard-{i}/*")).collect();
    if !mline.contains(&format!("leakgate merge {} --out ", want.join(" "))) {
        return Err(format!(
            "the merge does not take all {n} shard folders: {mline}"
        ));
    }
    flags_known(&mline)?;
    if pvc_name(mpod) != Some(claim) {
        return Err(format!("the merge does not mount the PVC {claim}"));
    }

    let cd = docs(config)?;
    let cm = of_kind(&cd, "ConfigMap")?;
    if cm["metadata"]["name"].as_str() != Some(config_name) {
        return Err(format!(
            "the ConfigMap is not {config_name}, which the shards mount"
        ));
    }
    let scenario = cm["data"]["api.toml"]
        .as_str()
        .ok_or("no api.toml in the ConfigMap")?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = tmp.path().join("api.toml");
    std::fs::write(&path, scenario).map_err(|e| e.to_string())?;
    let out = Command::new(env!("CARGO_BIN_EXE_leakgate"))
        .arg("check")
        .arg(&path)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "leakgate check api.toml: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(n)
}

#[test]
fn the_shipped_manifests_fit_together() {
    let n = check(
        &read("shards-job.yaml"),
        &read("merge-job.yaml"),
        &read("scenario-configmap.yaml"),
    )
    .unwrap();
    assert_eq!(n, 4);
    let readme = read("README.md");
    for f in [
        "shards-job.yaml",
        "merge-job.yaml",
        "scenario-configmap.yaml",
    ] {
        assert!(readme.contains(f), "ci/k8s/README.md does not name {f}");
    }
}

#[test]
fn broken_copies_are_refused() {
    let (shards, merge, config) = (
        read("shards-job.yaml"),
        read("merge-job.yaml"),
        read("scenario-configmap.yaml"),
    );
    let cases: [(&str, &str, &str, &str); 7] = [
        (
            "shards",
            "completionMode: Indexed",
            "completionMode: NonIndexed",
            "Indexed",
        ),
        ("shards", "parallelism: 4", "parallelism: 2", "parallelism"),
        (
            "shards",
            "api.toml --shards 4",
            "api.toml --shards 3",
            "--shards 4",
        ),
        ("shards", "ReadWriteMany", "ReadWriteOnce", "ReadWriteMany"),
        (
            "shards",
            "--no-progress",
            "--no-such-flag",
            "no --no-such-flag",
        ),
        ("merge", "/results/shard-3/* ", "", "all 4 shard folders"),
        ("config", "rate = 4000", "rate = \"fast\"", "leakgate check"),
    ];
    for (file, from, to, want) in cases {
        let mut texts = [shards.clone(), merge.clone(), config.clone()];
        let i = ["shards", "merge", "config"]
            .iter()
            .position(|f| *f == file)
            .unwrap();
        assert!(texts[i].contains(from), "{file} has no {from:?}");
        texts[i] = texts[i].replacen(from, to, 1);
        let err = check(&texts[0], &texts[1], &texts[2]).expect_err(from);
        assert!(err.contains(want), "{from:?} → {err}");
    }
}
