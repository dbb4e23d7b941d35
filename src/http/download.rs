//! `GET` and `HEAD`: look the file up, answer conditionals, serve one range
//! or the whole file as a stream.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use super::body::{self, Body};
use super::error::ApiError;
use super::file_headers;
use super::range::{self, RangeRequest};
use crate::app::{App, Offload};
use crate::auth::SlotPath;
use crate::index::FileRecord;
use crate::storage::StorageError;
use crate::time::parse_http_date;

/// Handles a GET (or HEAD, `head`) of `path` at Unix time `now`.
pub(super) async fn get(
    app: &Arc<App>,
    parts: &Parts,
    path: &SlotPath,
    head: bool,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    let key = app.index_key.slot(path);
    let retention = &app.settings.retention;
    let record = app.lookup(key).await?.ok_or(ApiError::NotFound)?;
    // Seconds the file is still served; an expired file is never served.
    let remaining = retention.expiry_of(&record) - now;
    if remaining <= 0 {
        return Err(ApiError::NotFound);
    }
    let etag = file_headers::etag(&record);

    let mut response = Response::new(body::empty());
    file_headers::apply(response.headers_mut(), &record, path.file_name(), remaining);
    if not_modified(&parts.headers, &etag, record.created) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(response);
    }

    if !head && let Some(location) = offload(app, &record, path, remaining).await? {
        return Ok(redirect(location));
    }

    let range_header = parts
        .headers
        .get(header::RANGE)
        .filter(|_| if_range_holds(&parts.headers, &etag, record.created))
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
        let stream = match app.blobs.read(&record.blob, bytes).await {
            Ok(stream) => stream,
            Err(StorageError::NotFound) => {
                tracing::warn!("index entry without a blob; answering 404");
                return Err(ApiError::NotFound);
            }
            Err(other) => return Err(other.into()),
        };
        *response.body_mut() = body::stream(stream);
    }
    Ok(response)
}

/// Where the bytes of `record` (served for `remaining` more seconds) can be
/// fetched instead of from upslot, if downloads are offloaded. A presigned URL never outlives the file, and
/// carries the type, disposition and caching upslot would have sent.
async fn offload(
    app: &App,
    record: &FileRecord,
    path: &SlotPath,
    remaining: i64,
) -> Result<Option<String>, ApiError> {
    match &app.settings.offload {
        Offload::None => Ok(None),
        Offload::Cdn { base_url } => Ok(Some(format!("{base_url}{}", record.blob.key()))),
        Offload::Presigned { ttl } => {
            let ttl = ttl
                .as_secs()
                .min(u64::try_from(remaining).unwrap_or(0))
                .max(1);
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
            let url = app
                .blobs
                .presign(&record.blob, Duration::from_secs(ttl), &response_headers)
                .await?;
            Ok(url)
        }
    }
}

/// A `307 Temporary Redirect` to `location`, which must not be cached
/// (presigned URLs expire, files are deleted).
fn redirect(location: String) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
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
