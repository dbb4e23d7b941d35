//! Served files cannot attack the browser.
//!
//! Files upslot serves are attacker-chosen bytes on the operator's domain.
//! Four of them are uploaded: an HTML page, an SVG with `<script>`, an
//! XHTML document, and HTML bytes declared `image/png`. Each tries to reach
//! a canary server of the test (script, `onload`, subresources) and to log
//! a marker on the console. Debian's Chromium opens every GET URL directly
//! and inside an `<iframe>`, `<img>` and `<object>` of a page on another
//! origin (`tests/browser/served_files.mjs`).
//!
//! The canary must get no request and the console no marker from them.
//! A positive control comes first: a page of the test's own, without
//! upslot's headers, opened directly and in an `<iframe>` and `<object>`,
//! whose script reaches the canary and logs the marker each time. Opened directly, the
//! active types are downloaded (`Content-Disposition: attachment`), and the
//! HTML declared as PNG is shown as a (broken) image, never as a page.
//!
//! The same through the presigned-URL offload: the browser follows the
//! redirect to a real S3 server (`s3s-fs`), which serves the type and
//! disposition upslot folded into the signature.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::time::Duration;

use common::browser::{self, DriverRun};
use common::s3::S3Server;
use common::{Put, Upslot, free_port};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// What the payloads log on the console, so a script that ran is seen.
const MARKER: &str = "UPSLOT-XSS-MARKER";

/// How long the driver may take for every file, both ways.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(150);

/// One attacking file: label, slot path, declared type, how Chromium must
/// treat it when opened directly, and its bytes given the canary's origin.
struct Attack {
    label: &'static str,
    path: &'static str,
    content_type: &'static str,
    direct: Direct,
    body: fn(&str) -> String,
}

/// What opening a file's URL in a tab must give.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Direct {
    /// A download, nothing rendered.
    Download,
    /// A document of the declared type (an image document for an image).
    Shown,
}

const ATTACKS: [Attack; 4] = [
    Attack {
        label: "html",
        path: "xss/page.html",
        content_type: "text/html",
        direct: Direct::Download,
        body: |canary| {
            format!(
                "<!DOCTYPE html><html><body><h1>inert</h1>\
                 <img src=\"{canary}/html-img\">\
                 <script>console.log('{MARKER} html');fetch('{canary}/html-script')</script>\
                 </body></html>"
            )
        },
    },
    Attack {
        label: "svg",
        path: "xss/drawing.svg",
        content_type: "image/svg+xml",
        direct: Direct::Download,
        body: |canary| {
            format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\" \
                 onload=\"fetch('{canary}/svg-onload')\">\
                 <image href=\"{canary}/svg-image\" width=\"10\" height=\"10\"/>\
                 <script>console.log('{MARKER} svg');fetch('{canary}/svg-script')</script></svg>"
            )
        },
    },
    Attack {
        label: "xhtml",
        path: "xss/doc.xhtml",
        content_type: "application/xhtml+xml",
        direct: Direct::Download,
        body: |canary| {
            format!(
                "<?xml version=\"1.0\"?><html xmlns=\"http://www.w3.org/1999/xhtml\"><body>\
                 <img src=\"{canary}/xhtml-img\"/>\
                 <script>console.log('{MARKER} xhtml');fetch('{canary}/xhtml-script')</script>\
                 </body></html>"
            )
        },
    },
    Attack {
        label: "html-as-png",
        path: "xss/cat.png",
        content_type: "image/png",
        direct: Direct::Shown,
        body: |canary| {
            format!(
                "<!DOCTYPE html><html><body><img src=\"{canary}/sniffed-img\">\
                 <script>console.log('{MARKER} sniffed');fetch('{canary}/sniffed-script')</script>\
                 </body></html>"
            )
        },
    },
];

#[tokio::test]
async fn served_files_cannot_attack_the_browser() {
    let server = Upslot::start("");
    let run = open_attacks(&server).await;
    check(&run, "upslot");
}

#[tokio::test]
async fn offloaded_files_cannot_attack_the_browser() {
    let s3 = S3Server::start("uploads");
    // A redirect hands out the stored bytes, so offload needs plaintext.
    let offload = "[offload]\nmode = \"presigned\"\npresigned_ttl = \"5m\"\n\
                   [encryption]\nenabled = false\n";
    let server = Upslot::start(&format!("{}\n{offload}", s3.storage_toml("uploads")));
    let run = open_attacks(&server).await;
    check(&run, "presigned offload");
}

/// Uploads every attack with a canary on a free port, then lets the
/// driver open them all.
async fn open_attacks(server: &Upslot) -> DriverRun {
    let canary_port = free_port();
    let canary = format!("http://127.0.0.1:{canary_port}");
    let mut files = Vec::new();
    for attack in &ATTACKS {
        let status = Put::v1(attack.path, (attack.body)(&canary))
            .content_type(attack.content_type)
            .status(server)
            .await;
        assert_eq!(status, StatusCode::CREATED, "upload of {}", attack.label);
        files.push(json!({ "label": attack.label, "url": server.url(attack.path) }));
    }
    let args = json!({ "canary_port": canary_port, "marker": MARKER, "files": files });
    tokio::task::spawn_blocking(move || {
        browser::run_driver("served_files.mjs", &args, DRIVER_TIMEOUT)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The control reached the canary; nothing else did, nothing else logged
/// the marker, and each file opened directly was treated as it must be.
fn check(run: &DriverRun, path: &str) {
    let control = run.event("control");
    assert_eq!(
        (&control["hits"], &control["marked"]),
        (
            &json!(["/control", "/control?iframe", "/control?object"]),
            &json!([
                format!("{MARKER} control"),
                format!("{MARKER} control?iframe"),
                format!("{MARKER} control?object")
            ])
        ),
        "the positive control must reach the canary and log, opened directly and \
         embedded, or the check proves nothing:\n{}",
        run.describe()
    );
    let hits = &run.event("canary")["hits"];
    assert_eq!(
        hits,
        &json!([]),
        "a served file reached the canary through {path}:\n{}",
        run.describe()
    );
    let marked = &run.event("marked")["lines"];
    assert_eq!(
        marked,
        &json!([]),
        "a served file's script ran through {path}:\n{}",
        run.describe()
    );
    let opened: Vec<&Value> = run.events("opened");
    for record in &opened {
        eprintln!("{path}: {record}");
    }
    for attack in &ATTACKS {
        let direct = opened
            .iter()
            .find(|o| o["label"] == attack.label && o["how"] == "direct")
            .unwrap_or_else(|| panic!("{} not opened:\n{}", attack.label, run.describe()));
        let seen = match direct["result"].as_str() {
            Some("download") => Some(Direct::Download),
            Some("shown") if direct["content_type"] == attack.content_type => Some(Direct::Shown),
            _ => None,
        };
        assert_eq!(
            seen,
            Some(attack.direct),
            "{} opened directly through {path}: {direct}",
            attack.label
        );
        assert!(
            opened
                .iter()
                .any(|o| o["label"] == attack.label && o["how"] == "embedded"),
            "{} not embedded:\n{}",
            attack.label,
            run.describe()
        );
    }
}
