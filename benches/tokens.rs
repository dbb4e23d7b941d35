//! Token verification cost per family (DESIGN.md §2 vectors), with one and
//! with three configured secrets (rotation), plus path decoding.
//!
//! Run: `cargo bench --bench tokens`.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use upslot::auth::{PutRequest, QueryTokens, SlotPath, Verifier};
use upslot::config::{Protocol, Secret};

const V1: &str = "v=d90b99240bb9aa4b3251e52c9d2d0ae21b0eee9cbaec63df26b67995ec365506";
const V2: &str = "v2=3d6a070108bbc49f51700606324d11dde942b8ce97999424e897d83a33dc8a21";
const TOKEN: &str = "token=3d6a070108bbc49f51700606324d11dde942b8ce97999424e897d83a33dc8a21";
const JWT: &str = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyb21lb0Btb250YWd1ZS50bGQiLCJzbG90IjoiYWJjMTIzIiwiZmlsZW5hbWUiOiJwaG90byAxLmpwZyIsImZpbGVzaXplIjoxMjM0NSwiZmlsZXR5cGUiOiJpbWFnZS9qcGVnIiwiZXhwaXJlcyI6MjAwMDYwNDIwMCwiaWF0IjoxOTk5OTk5NDAwLCJleHAiOjIwMDAwMDAwMDB9.P1EthuUZn0dxeiTnYZmZMJ51Ag3DHTe1kQZMFo4_DLA";
const NOW: i64 = 1_999_999_400;

fn verifier(secrets: &[&str]) -> Verifier {
    Verifier::new(
        secrets.iter().map(|s| Secret::new(*s)).collect(),
        None,
        vec![Protocol::V1, Protocol::V2, Protocol::Token, Protocol::Jwt],
    )
}

fn bench_tokens(c: &mut Criterion) {
    let path = SlotPath::from_wire("abc123/photo%201.jpg").expect("vector path");
    for (label, secrets) in [
        ("1 secret", vec!["s3cr3t"]),
        ("3 secrets", vec!["a", "b", "s3cr3t"]),
    ] {
        let verifier = verifier(&secrets);
        for (family, query, authorization) in [
            ("v1", V1, None),
            ("v2", V2, None),
            ("token", TOKEN, None),
            ("jwt", "", Some(JWT.as_bytes())),
        ] {
            let request = PutRequest {
                query: QueryTokens::parse(Some(query)),
                authorization,
                content_length: Some(12345),
                content_type: Some(b"image/jpeg"),
            };
            assert!(
                verifier.authorize_put(path.clone(), &request, NOW).is_ok(),
                "{family}"
            );
            c.bench_function(&format!("verify {family} ({label})"), |b| {
                b.iter(|| verifier.authorize_put(black_box(path.clone()), black_box(&request), NOW))
            });
        }
    }
    c.bench_function("decode path", |b| {
        b.iter(|| SlotPath::from_wire(black_box("abc123/tr%c3%a8s%20cool%20photo.jpg")))
    });
}

// The macros generate undocumented items.
#[allow(missing_docs)]
mod harness {
    use super::*;
    criterion_group!(benches, bench_tokens);
}
criterion_main!(harness::benches);
