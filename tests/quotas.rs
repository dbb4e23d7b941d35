//! Quotas against the running binary: per-owner daily and stored limits
//! for JWT and ejabberd slots (one account, two slot families), the global
//! limit for owner-less slots, uploads racing a limit, reservations given
//! back by abandoned uploads, expiry and erasure, and the sentences and
//! codes a refused client reads.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::io::Write as _;

use common::{
    Claims, Put, Upslot, client, data, ejabberd_path, erase_request, erase_sig, get, metric,
    metrics, raw, unix_now, wait_for,
};
use reqwest::{Response, StatusCode, header};

const ROMEO: &str = "romeo@montague.tld";
const JULIET: &str = "juliet@capulet.lit";

/// Starts upslot accepting files of up to 1 KiB, with `quota` as the
/// `[quota]` section's keys and `rest` appended.
fn start(quota: &str, rest: &str) -> Upslot {
    Upslot::start_with(
        "",
        "max_size = \"1KiB\"",
        &format!("[quota]\n{quota}\n{rest}"),
        &[],
    )
}

/// A JWT PUT of `len` bytes to `<slot>/f.bin` by `jid`.
fn jwt_put(slot: &str, jid: &str, len: usize) -> Put {
    let token = Claims::new(slot, len as u64).sub(jid).jwt();
    Put::bearer(&format!("{slot}/f.bin"), &token, data(len))
}

/// An ejabberd (v1, owner in the path) PUT of `len` bytes by `jid`.
fn ejabberd_put(random: &str, jid: &str, len: usize) -> Put {
    Put::v1(&ejabberd_path(jid, random, "f.bin"), data(len))
}

/// The refusal's status, code and sentence; checks that the sentence is one
/// line naming no account.
async fn refusal(response: Response) -> (StatusCode, String, String) {
    let status = response.status();
    let code = response.headers()["upslot-error"]
        .to_str()
        .unwrap()
        .to_string();
    let text = response.text().await.unwrap();
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "{text:?}"
    );
    for private in [ROMEO, JULIET, "montague", "127.0.0.1"] {
        assert!(!text.contains(private), "{text:?}");
    }
    (status, code, text.trim_end().to_string())
}

/// The value of the quota refusal counter of `kind`.
async fn refusals(server: &Upslot, kind: &str) -> f64 {
    metric(
        &metrics(server).await,
        &format!("upslot_quota_refusals_total{{kind=\"{kind}\"}}"),
    )
}

#[tokio::test]
async fn the_daily_limit_counts_one_account_across_slot_families() {
    let server = start("per_owner_daily = \"2KiB\"", "");
    assert_eq!(
        jwt_put("d1", ROMEO, 1024).status(&server).await,
        StatusCode::CREATED
    );
    // ejabberd names the same account by sha1(user@host): one owner.
    assert_eq!(
        ejabberd_put("r1", ROMEO, 1024).status(&server).await,
        StatusCode::CREATED
    );
    let before = unix_now();
    let response = ejabberd_put("r2", ROMEO, 1).send(&server).await;
    let retry_after: i64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, code, text) = refusal(response).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "quota_daily")
    );
    // The first upload's minute ages out 24 h and a minute after it began.
    assert!(
        (86_400 - 5..=86_400 + 65).contains(&retry_after),
        "{retry_after}"
    );
    // Shown as the minute it ends in (the refusal rounds the time up).
    let at = before + retry_after;
    let clock = |t: i64| {
        let minute_of_day = (t + 59) / 60 % 1440;
        format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
    };
    let sentence = |t| {
        format!(
            "Daily upload limit of 2 KiB reached; you can upload again after {} UTC.",
            clock(t)
        )
    };
    assert!(text == sentence(at) || text == sentence(at + 60), "{text}");
    // Refused before its body: no file was stored.
    assert_eq!(get(&server, "d1/f.bin").await.status(), StatusCode::OK);
    assert_eq!(
        jwt_put("d2", ROMEO, 1).status(&server).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another account, and slots without an owner, are not charged.
    assert_eq!(
        jwt_put("d3", JULIET, 1024).status(&server).await,
        StatusCode::CREATED
    );
    for i in 0..3 {
        assert_eq!(
            Put::v2(&format!("v2-{i}/f.bin"), data(1024))
                .status(&server)
                .await,
            StatusCode::CREATED
        );
    }
    assert_eq!(refusals(&server, "daily").await, 2.0);
    assert_eq!(refusals(&server, "owner_stored").await, 0.0);
}

#[tokio::test]
async fn the_stored_limit_is_released_by_expiry_and_erasure() {
    let server = start(
        "per_owner_daily = \"0\"\nper_owner_stored = \"2KiB\"",
        "[retention]\nkeep = \"4s\"\nsweep_every = \"1s\"",
    );
    for slot in ["s1", "s2"] {
        assert_eq!(
            jwt_put(slot, ROMEO, 1024).status(&server).await,
            StatusCode::CREATED
        );
    }
    let (status, code, text) = refusal(ejabberd_put("r1", ROMEO, 1).send(&server).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::INSUFFICIENT_STORAGE, "quota_stored")
    );
    assert_eq!(
        text,
        "Storage limit of 2 KiB per account reached; space frees up as your older uploads expire."
    );
    assert_eq!(refusals(&server, "owner_stored").await, 1.0);
    // Once the files expire and are swept, the account may upload again.
    wait_for(
        "the stored bytes to be released by the sweeper",
        async || {
            jwt_put(&format!("s3-{}", unix_now()), ROMEO, 1024)
                .status(&server)
                .await
                == StatusCode::CREATED
        },
    )
    .await;
    assert_eq!(
        jwt_put("s4", ROMEO, 1024).status(&server).await,
        StatusCode::CREATED
    );
    assert_eq!(
        jwt_put("s5", ROMEO, 1).status(&server).await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    // Erasing the account releases what it stored at once.
    let ts = unix_now();
    let erased = erase_request(&server, ROMEO, ts, &erase_sig(ROMEO, ts))
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), StatusCode::OK);
    assert_eq!(
        jwt_put("s6", ROMEO, 1024).status(&server).await,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn slots_without_an_owner_meet_the_global_limit() {
    let server = start("global_stored = \"2KiB\"", "");
    for i in 0..2 {
        assert_eq!(
            Put::v2(&format!("g{i}/f.bin"), data(1024))
                .status(&server)
                .await,
            StatusCode::CREATED
        );
    }
    let (status, code, text) = refusal(Put::v2("g2/f.bin", data(1)).send(&server).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::INSUFFICIENT_STORAGE, "quota_global")
    );
    assert_eq!(
        text,
        "The upload service is full right now; please try again later."
    );
    // Owned slots count against it too.
    assert_eq!(
        jwt_put("g3", JULIET, 1).status(&server).await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    assert_eq!(refusals(&server, "global_stored").await, 2.0);
}

#[tokio::test]
async fn twenty_uploads_racing_a_limit_never_exceed_it() {
    let server = start("per_owner_daily = \"0\"\nper_owner_stored = \"10KiB\"", "");
    let uploads: Vec<_> = (0..20)
        .map(|i| {
            let put = jwt_put(&format!("race{i}"), ROMEO, 1024).request(&server);
            tokio::spawn(async move { put.send().await.unwrap().status() })
        })
        .collect();
    let mut accepted = Vec::new();
    for (i, upload) in uploads.into_iter().enumerate() {
        let status = upload.await.unwrap();
        match status {
            StatusCode::CREATED => accepted.push(i),
            StatusCode::INSUFFICIENT_STORAGE => {}
            other => panic!("upload {i}: {other}"),
        }
    }
    assert!(
        !accepted.is_empty() && accepted.len() * 1024 <= 10 * 1024,
        "{accepted:?}"
    );
    // What was accepted is stored, and nothing else.
    for i in 0..20 {
        let expected = if accepted.contains(&i) {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(
            get(&server, &format!("race{i}/f.bin")).await.status(),
            expected
        );
    }
    assert_eq!(
        metric(&metrics(&server).await, "upslot_quota_reserved_bytes"),
        0.0
    );
}

#[tokio::test]
async fn an_abandoned_upload_gives_its_reservation_back() {
    let server = start("per_owner_daily = \"0\"\nper_owner_stored = \"1KiB\"", "");
    // An ejabberd upload that sends its head and half its body, then stalls.
    let path = ejabberd_path(ROMEO, "stalled", "f.bin");
    let mut stalled = raw::start_put(&server.base_url, &path, 1024);
    stalled.write_all(&data(512)).unwrap();
    wait_for("the stalled upload's reservation", async || {
        metric(&metrics(&server).await, "upslot_quota_reserved_bytes") == 1024.0
    })
    .await;
    assert_eq!(
        jwt_put("a1", ROMEO, 1024).status(&server).await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    drop(stalled);
    wait_for(
        "the dropped upload's reservation to be released",
        async || metric(&metrics(&server).await, "upslot_quota_reserved_bytes") == 0.0,
    )
    .await;
    assert_eq!(
        jwt_put("a2", ROMEO, 1024).status(&server).await,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn every_refusal_reads_as_a_sentence_with_its_code() {
    let server = start("", "");
    let too_large = Put::v1("big/f.bin", data(2048)).send(&server).await;
    let (status, code, text) = refusal(too_large).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    assert_eq!(
        text,
        "This file is larger than the 1 KiB this server accepts."
    );
    let expired = Claims::new("exp", 3).exp(unix_now() - 10).jwt();
    let (status, code, text) = refusal(
        Put::bearer("exp/f.bin", &expired, "abc")
            .send(&server)
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "token_expired")
    );
    assert_eq!(
        text,
        "This upload link has expired; please upload the file again."
    );
    assert_eq!(
        Put::v1("once/f.bin", "abc").status(&server).await,
        StatusCode::CREATED
    );
    let (status, code, text) = refusal(Put::v1("once/f.bin", "abc").send(&server).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "slot_taken")
    );
    assert_eq!(text, "A file has already been uploaded with this link.");
    let (status, code, _) = refusal(get(&server, "none/f.bin").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    // Browsers may read the code and Retry-After across origins.
    let preflighted = client()
        .get(server.url("none/f.bin"))
        .header(header::ORIGIN, "https://chat.example")
        .send()
        .await
        .unwrap();
    let exposed = preflighted.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        exposed.contains("Upslot-Error") && exposed.contains("Retry-After"),
        "{exposed}"
    );
}
