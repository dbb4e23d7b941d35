//! CORS: `Access-Control-Allow-Origin` on every response, and preflights.
//! Web clients (Converse.js, Movim) upload with `Authorization` and
//! `Content-Type`, so they preflight every PUT.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use super::body::{self, Body};
use super::route::PUBLIC_METHODS;

/// Methods a browser may use (Metronome's DELETE is server to server).
const CORS_METHODS: &str = "GET, HEAD, PUT, OPTIONS";
/// Request headers a browser may send.
const ALLOW_HEADERS: &str = "Authorization, Content-Type";
/// Response headers scripts may read.
const EXPOSE_HEADERS: &str = "Content-Length, Content-Range, Content-Disposition, ETag, Last-Modified, Retry-After, Upslot-Error, X-Request-Id";
/// How long browsers may cache a preflight (one day).
const MAX_AGE: &str = "86400";

/// The configured origin policy.
#[derive(Debug, Clone)]
pub struct Cors {
    any: bool,
    origins: Vec<HeaderValue>,
}

impl Cors {
    /// `origins` from `server.cors_origins`; `"*"` anywhere allows any origin.
    pub fn new(origins: &[String]) -> Cors {
        Cors {
            any: origins.iter().any(|o| o == "*"),
            origins: origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
                .collect(),
        }
    }

    /// Adds the CORS response headers for a request from `origin`.
    pub fn apply(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        if self.any {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        } else {
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
            match origin {
                Some(origin) if self.origins.contains(origin) => {
                    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                }
                _ => return,
            }
        }
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }

    /// The answer to `OPTIONS`: 204 with what the listener serves (`Allow`)
    /// and what browsers may do.
    pub fn preflight(&self) -> Response<Body> {
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        headers.insert(header::ALLOW, HeaderValue::from_static(PUBLIC_METHODS));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(CORS_METHODS),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_origin() {
        let mut headers = HeaderMap::new();
        Cors::new(&["*".into()]).apply(None, &mut headers);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }

    #[test]
    fn listed_origins_are_echoed_others_not() {
        let cors = Cors::new(&["https://chat.example.org/".into()]);
        let mut headers = HeaderMap::new();
        cors.apply(
            Some(&HeaderValue::from_static("https://chat.example.org")),
            &mut headers,
        );
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://chat.example.org"
        );
        assert_eq!(headers[header::VARY], "Origin");
        let mut headers = HeaderMap::new();
        cors.apply(
            Some(&HeaderValue::from_static("https://evil.example")),
            &mut headers,
        );
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[test]
    fn preflight_allows_what_clients_need() {
        let response = Cors::new(&["*".into()]).preflight();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let headers = response.headers();
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_METHODS],
            "GET, HEAD, PUT, OPTIONS"
        );
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "Authorization, Content-Type"
        );
        assert!(headers.contains_key(header::ACCESS_CONTROL_MAX_AGE));
        assert_eq!(headers[header::ALLOW], PUBLIC_METHODS);
    }
}
