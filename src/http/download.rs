//! `GET` and `HEAD`: look the file up, answer conditionals, serve one range
//! or the whole file as a stream.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use super::app::{App, Offload};
use super::body::{self, Body};
use super::error::ApiError;
use super::file_headers;
use super::range::{self, RangeRequest};
use crate::auth::SlotPath;
use crate::files::LiveFile;
use crate::time::parse_http_date;

/// Handles a GET (or HEAD, `head`) of `path` with request `headers` at
/// Unix time `now`.
pub(super) async fn get(
    app: &App,
    headers: &HeaderMap,
    path: &SlotPath,
    head: bool,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    // An expired file is never served, swept or not.
    let file = app
        .files
        .lookup(path, now)
        .await?
        .ok_or(ApiError::NotFound)?;
    let record = &file.record;
    let etag = file_headers::etag(record);

    let mut response = Response::new(body::empty());
    file_headers::apply(
        response.headers_mut(),
        record,
        path.file_name(),
        file.remaining,
    );
    if not_modified(headers, &etag, record.created) {
        app.files.ensure_readable(record, now).await?;
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(response);
    }

    if !head && let Some(location) = offload(app, &file, path).await? {
        return redirect(&location);
    }

    let range_header = headers
        .get(header::RANGE)
        .filter(|_| if_range_holds(headers, &etag, record.created))
        .map(HeaderValue::as_bytes);
    let bytes = match range::parse(range_header, record.size) {
        RangeRequest::Whole => 0..record.size,
        RangeRequest::Part(part) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let content_range = format!("bytes {}-{}/{}", part.start, part.end - 1, record.size);
            if let Ok(value) = HeaderValue::from_str(&content_range) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            part
        }
        RangeRequest::Unsatisfiable => {
            return Err(ApiError::RangeNotSatisfiable { size: record.size });
        }
    };
    response.headers_mut().insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(bytes.end - bytes.start),
    );
    if !head && bytes.end > bytes.start {
        let length = bytes.end - bytes.start;
        *response.body_mut() = body::stream(app.files.read(record, bytes, now).await?);
        app.traffic.served(length);
    } else {
        // Nothing is read: still answer as a GET would for a lost key.
        app.files.ensure_readable(record, now).await?;
    }
    Ok(response)
}

/// Where the bytes of `file` can be fetched instead of from upslot, if
/// downloads are offloaded. A presigned URL never outlives the file, and
/// carries the type, disposition and caching upslot would have sent.
async fn offload(app: &App, file: &LiveFile, path: &SlotPath) -> Result<Option<String>, ApiError> {
    let record = &file.record;
    match &app.settings.offload {
        Offload::None => Ok(None),
        Offload::Cdn { base_url } => Ok(Some(format!("{base_url}{}", record.blob.key()))),
        Offload::Presigned { ttl, presigner } => {
            let ttl = ttl.as_secs().min(file.remaining).max(1);
            let disposition =
                file_headers::content_disposition(&record.content_type, path.file_name());
            let response_headers = [
                ("content-type", record.content_type.clone()),
                (
                    "content-disposition",
                    String::from_utf8_lossy(disposition.as_bytes()).into_owned(),
                ),
                ("cache-control", format!("private, max-age={ttl}")),
            ];
            let url = presigner
                .presign(&record.blob, Duration::from_secs(ttl), &response_headers)
                .await?;
            Ok(Some(url))
        }
    }
}

/// A `307 Temporary Redirect` to `location`, which must not be cached
/// (presigned URLs expire, files are deleted).
fn redirect(location: &str) -> Result<Response<Body>, ApiError> {
    let location = HeaderValue::from_str(location).map_err(|_| {
        tracing::error!("the offload URL is not a valid Location header");
        ApiError::Internal
    })?;
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// RFC 9110 §13.2.2: `If-None-Match` decides if present (weak comparison),
/// otherwise `If-Modified-Since`.
fn not_modified(headers: &HeaderMap, etag: &str, last_modified: i64) -> bool {
    if let Some(value) = headers.get(header::IF_NONE_MATCH) {
        let Ok(list) = value.to_str() else {
            return false;
        };
        return list
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag);
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
        .is_some_and(|since| last_modified <= since)
}

/// RFC 9110 §13.1.5: a range is honoured if there is no `If-Range`, or it
/// names the current entity tag (strongly) or exactly the last-modified date.
fn if_range_holds(headers: &HeaderMap, etag: &str, last_modified: i64) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') {
        value == etag
    } else if value.starts_with("W/") {
        false
    } else {
        parse_http_date(value) == Some(last_modified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const TIME: i64 = 784_111_777;

    #[test]
    fn conditionals() {
        let tag = "\"abc\"";
        assert!(not_modified(
            &headers(&[(header::IF_NONE_MATCH, "\"x\", \"abc\"")]),
            tag,
            TIME
        ));
        assert!(not_modified(
            &headers(&[(header::IF_NONE_MATCH, "W/\"abc\"")]),
            tag,
            TIME
        ));
        assert!(not_modified(
            &headers(&[(header::IF_NONE_MATCH, "*")]),
            tag,
            TIME
        ));
        assert!(!not_modified(
            &headers(&[(header::IF_NONE_MATCH, "\"x\"")]),
            tag,
            TIME
        ));
        // If-None-Match wins over If-Modified-Since.
        assert!(!not_modified(
            &headers(&[
                (header::IF_NONE_MATCH, "\"x\""),
                (header::IF_MODIFIED_SINCE, DATE)
            ]),
            tag,
            TIME
        ));
        assert!(not_modified(
            &headers(&[(header::IF_MODIFIED_SINCE, DATE)]),
            tag,
            TIME
        ));
        assert!(!not_modified(
            &headers(&[(header::IF_MODIFIED_SINCE, DATE)]),
            tag,
            TIME + 1
        ));
        assert!(!not_modified(
            &headers(&[(header::IF_MODIFIED_SINCE, "junk")]),
            tag,
            TIME
        ));
        assert!(!not_modified(&HeaderMap::new(), tag, TIME));
    }

    #[test]
    fn redirects_and_the_url_that_cannot_be_one() {
        let response = redirect("https://cdn.example.org/2026-11-21/4f1c").unwrap();
        assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        // A 500 with its code, logged as an error: never a bare status.
        assert!(matches!(
            redirect("https://cdn.example.org/a\nb"),
            Err(ApiError::Internal)
        ));
    }

    #[test]
    fn if_range() {
        let tag = "\"abc\"";
        assert!(if_range_holds(&HeaderMap::new(), tag, TIME));
        assert!(if_range_holds(
            &headers(&[(header::IF_RANGE, tag)]),
            tag,
            TIME
        ));
        assert!(!if_range_holds(
            &headers(&[(header::IF_RANGE, "\"old\"")]),
            tag,
            TIME
        ));
        assert!(!if_range_holds(
            &headers(&[(header::IF_RANGE, "W/\"abc\"")]),
            tag,
            TIME
        ));
        assert!(if_range_holds(
            &headers(&[(header::IF_RANGE, DATE)]),
            tag,
            TIME
        ));
        assert!(!if_range_holds(
            &headers(&[(header::IF_RANGE, DATE)]),
            tag,
            TIME + 5
        ));
    }
}
