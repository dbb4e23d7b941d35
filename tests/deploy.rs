//! The monitoring and Kubernetes files under `deploy/`: the alert rules
//! and their unit tests, the manifests, the configs in the ConfigMaps and
//! the Grafana dashboard. `deploy/check.sh` is the one home of the checks
//! that run tools on them (promtool, kubernetes-validate, `upslot
//! check-config`), so operators can run it without cargo; these tests run
//! it part by part, and fail with its output when a tool is missing. What
//! only the running binary can answer is checked here: every metric the
//! rules and the dashboard name is one upslot exports.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Upslot, data, get, metrics, put};
use reqwest::StatusCode;

/// The files whose `upslot_*` names must be exported, below `deploy/`.
const USERS_OF_METRICS: [&str; 3] = [
    "prometheus/upslot-rules.yml",
    "prometheus/upslot-rules.test.yml",
    "grafana/upslot.json",
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Runs `deploy/check.sh PART` with this build's binary; fails with the
/// script's output unless it succeeds.
fn check(part: &str) {
    let out = Command::new(deploy_dir().join("check.sh"))
        .arg(part)
        .env("UPSLOT", env!("CARGO_BIN_EXE_upslot"))
        .output()
        .unwrap_or_else(|error| panic!("cannot run deploy/check.sh: {error}"));
    assert!(
        out.status.success(),
        "deploy/check.sh {part} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_fire_and_stay_quiet() {
    check("rules");
}

#[test]
fn kubernetes_manifests_match_the_schemas() {
    check("kubernetes");
}

#[test]
fn kubernetes_configs_are_accepted_by_upslot() {
    check("configs");
}

#[test]
fn dashboard_is_an_importable_model() {
    check("dashboard");
}

/// A Service named `upslot` gives every pod of its namespace (not only
/// the ones in deploy/kubernetes, which turn service links off)
/// `UPSLOT_SERVICE_HOST` and friends: upslot must start regardless, and
/// still refuse a mistyped key.
#[test]
fn service_link_variables_do_not_stop_upslot() {
    let check_config = |name: &str, value: &str| {
        Command::new(env!("CARGO_BIN_EXE_upslot"))
            .arg("check-config")
            .env_remove("UPSLOT_CONFIG")
            .env(name, value)
            .output()
            .unwrap()
    };
    for (name, value) in [
        ("UPSLOT_SERVICE_HOST", "10.96.0.10"),
        ("UPSLOT_PORT_5050_TCP_ADDR", "10.96.0.10"),
        ("UPSLOT_ADMIN_SERVICE_PORT", "5051"),
    ] {
        let out = check_config(name, value);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = check_config("UPSLOT_SECRET", "x");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UPSLOT_SECRET"));
}

#[tokio::test]
async fn every_metric_the_dashboard_and_rules_use_is_exported() {
    let server = Upslot::start("");
    // An upload, a download and a refusal, so labelled counters have series.
    assert_eq!(
        put(&server, "deploy1/a.txt", data(1000)).await,
        StatusCode::CREATED
    );
    let download = get(&server, "deploy1/a.txt").await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.bytes().await.unwrap().len(), 1000);
    assert_eq!(
        get(&server, "deploy1/none.txt").await.status(),
        StatusCode::NOT_FOUND
    );
    let exposition = metrics(&server).await;
    let exported = exported_metrics(&exposition);

    let mut used = BTreeSet::new();
    for file in USERS_OF_METRICS {
        let text = std::fs::read_to_string(deploy_dir().join(file)).unwrap();
        let names = metric_names(&text);
        assert!(!names.is_empty(), "no upslot_* names in deploy/{file}");
        used.extend(names);
    }
    // The rules and the dashboard use nearly every metric upslot has: a
    // short list means the extraction broke, not that all is well.
    assert!(
        used.len() >= 30,
        "only {} metric names found in deploy/: {used:?}",
        used.len()
    );
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| !is_exported(name, &exported))
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/ uses {} metrics that upslot does not export: {missing:?}\n\nexported:\n{exposition}",
        missing.len()
    );
}

/// Metric name → type, from the `# TYPE` lines of a scrape.
fn exported_metrics(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let (name, kind) = rest.split_once(' ')?;
            Some((name.to_string(), kind.trim().to_string()))
        })
        .collect()
}

/// Whether `name` is exported, directly or as a series of a histogram
/// (`_bucket`, `_sum`, `_count`) or summary (`_sum`, `_count`).
fn is_exported(name: &str, exported: &BTreeMap<String, String>) -> bool {
    if exported.contains_key(name) {
        return true;
    }
    let of_kind = |suffix: &str, kinds: &[&str]| {
        name.strip_suffix(suffix)
            .and_then(|base| exported.get(base))
            .is_some_and(|kind| kinds.contains(&kind.as_str()))
    };
    of_kind("_bucket", &["histogram"])
        || of_kind("_sum", &["histogram", "summary"])
        || of_kind("_count", &["histogram", "summary"])
}

/// Every distinct `upslot_[a-z0-9_]+` token in `text` that does not
/// continue a longer word.
fn metric_names(text: &str) -> BTreeSet<String> {
    const PREFIX: &str = "upslot_";
    let word = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices(PREFIX) {
        if text[..at].chars().next_back().is_some_and(word) {
            continue;
        }
        let rest = &text[at + PREFIX.len()..];
        let len = rest.find(|c: char| !word(c)).unwrap_or(rest.len());
        if len > 0 {
            names.insert(format!("{PREFIX}{}", &rest[..len]));
        }
    }
    names
}

#[test]
fn metric_names_are_whole_tokens() {
    let names = metric_names(
        "rate(upslot_bans_total[5m]) x_upslot_no upslot_ upslot-rules.yml \"upslot_files_overdue\"",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["upslot_bans_total", "upslot_files_overdue"]
    );
}
