//! Turns a request's method and path into a typed [`Route`] (public
//! listener) or [`AdminRoute`] (admin listener) before anything else looks
//! at it. The methods each path allows are listed here, once.

use http::Method;

use super::error::ApiError;
use crate::auth::{PathError, SlotPath};
use crate::policy::Format;

/// The methods the public listener serves, for `Allow`.
pub const PUBLIC_METHODS: &str = "GET, HEAD, PUT, DELETE, OPTIONS";

/// What a request on the public listener asks for.
#[derive(Debug)]
pub enum Route {
    /// `GET` or `HEAD` of a file.
    Download {
        /// The file's slot path.
        path: SlotPath,
        /// `HEAD`: headers only.
        head: bool,
    },
    /// `PUT` of a file.
    Upload(SlotPath),
    /// Metronome's signed `DELETE`.
    Delete(SlotPath),
    /// A CORS preflight (or plain `OPTIONS`).
    Preflight,
}

/// Routes `method` on the raw (still percent-encoded) `path` below
/// `base_path` (which starts and ends with `/`).
pub fn route(method: &Method, path: &str, base_path: &str) -> Result<Route, ApiError> {
    if *method == Method::OPTIONS {
        return Ok(Route::Preflight);
    }
    let Some(wire) = path.strip_prefix(base_path) else {
        return Err(ApiError::NotFound);
    };
    let slot_path = |wire: &str| SlotPath::from_wire(wire).map_err(ApiError::from);
    match *method {
        Method::GET => Ok(Route::Download {
            path: slot_path(wire).map_err(not_found_for_reads)?,
            head: false,
        }),
        Method::HEAD => Ok(Route::Download {
            path: slot_path(wire).map_err(not_found_for_reads)?,
            head: true,
        }),
        Method::PUT => Ok(Route::Upload(slot_path(wire)?)),
        Method::DELETE => Ok(Route::Delete(slot_path(wire)?)),
        _ => Err(ApiError::MethodNotAllowed {
            allow: PUBLIC_METHODS,
        }),
    }
}

/// A GET of something that cannot be a slot path simply finds nothing
/// (`/`, `/favicon.ico`, `/robots.txt`); too-long paths keep their 414.
fn not_found_for_reads(error: ApiError) -> ApiError {
    match error {
        ApiError::BadPath(PathError::TooLong) => error,
        _ => ApiError::NotFound,
    }
}

/// What a request on the admin listener asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum AdminRoute {
    /// `GET /health` (or `HEAD`): storage and index reachability.
    Health,
    /// `GET /live` (or `HEAD`): the process answers HTTP, whatever storage
    /// and the index do (a liveness probe that restarts nothing during an
    /// outage a restart cannot fix).
    Live,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `GET /stats`: counts, bytes and an age histogram.
    Stats,
    /// `GET /sweep`: what a pass would delete now.
    SweepPreview,
    /// `POST /sweep`: run a pass now.
    Sweep,
    /// `GET /policy` (Markdown) or `GET /policy/providers` (JSON): the
    /// privacy-policy sentences this server can truthfully publish.
    Policy(Format),
    /// `DELETE /owners/{jid}`: erase every file of an account.
    Erase {
        /// The JID as sent (percent-decoded, resource and all): the text
        /// the request is signed over.
        jid: String,
    },
    /// `GET /owners/{jid}`: what is held for an account (right of access).
    Access {
        /// The JID as sent (percent-decoded, resource and all): the text
        /// the request is signed over.
        jid: String,
    },
}

/// The methods `/owners/{jid}` takes, for `Allow`.
pub const OWNER_METHODS: &str = "GET, DELETE";

/// Routes `method` on `path` of the admin listener.
pub fn route_admin(method: &Method, path: &str) -> Result<AdminRoute, ApiError> {
    if let Some(wire) = path.strip_prefix("/owners/") {
        return match *method {
            Method::DELETE => Ok(AdminRoute::Erase {
                jid: decode_jid(wire)?,
            }),
            Method::GET => Ok(AdminRoute::Access {
                jid: decode_jid(wire)?,
            }),
            _ => Err(ApiError::MethodNotAllowed {
                allow: OWNER_METHODS,
            }),
        };
    }
    let (allow, route) = match path {
        "/health" => ("GET, HEAD", AdminRoute::Health),
        "/live" => ("GET, HEAD", AdminRoute::Live),
        "/metrics" => ("GET", AdminRoute::Metrics),
        "/stats" => ("GET", AdminRoute::Stats),
        "/sweep" if *method == Method::POST => return Ok(AdminRoute::Sweep),
        "/sweep" => ("GET, POST", AdminRoute::SweepPreview),
        "/policy" => ("GET", AdminRoute::Policy(Format::Markdown)),
        "/policy/providers" => ("GET", AdminRoute::Policy(Format::Providers)),
        _ => return Err(ApiError::NotFound),
    };
    let head_allowed =
        matches!(route, AdminRoute::Health | AdminRoute::Live) && *method == Method::HEAD;
    if *method == Method::GET || head_allowed {
        Ok(route)
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}

/// The JID of `/owners/{jid}`: percent-decoded once, UTF-8, with a
/// non-empty bare part and no control characters. A resource (`/…`, raw or
/// as `%2F`) is allowed: it is signed with the rest and ignored afterwards.
fn decode_jid(wire: &str) -> Result<String, ApiError> {
    let jid = percent_encoding::percent_decode_str(wire)
        .decode_utf8()
        .map_err(|_| ApiError::BadPath(PathError::BadEscape))?;
    if jid.chars().any(char::is_control) {
        return Err(ApiError::BadPath(PathError::Control));
    }
    if jid.split('/').next().is_none_or(str::is_empty) {
        return Err(ApiError::BadPath(PathError::Shape));
    }
    Ok(jid.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(
            route(&Method::GET, "/abc/photo%201.jpg", "/"),
            Ok(Route::Download { head: false, .. })
        ));
        assert!(matches!(
            route(&Method::HEAD, "/up/abc/x", "/up/"),
            Ok(Route::Download { head: true, .. })
        ));
        assert!(matches!(
            route(&Method::PUT, "/abc/x", "/"),
            Ok(Route::Upload(_))
        ));
        assert!(matches!(
            route(&Method::DELETE, "/abc/x", "/"),
            Ok(Route::Delete(_))
        ));
        assert!(matches!(
            route(&Method::OPTIONS, "/anything", "/"),
            Ok(Route::Preflight)
        ));
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            route(&Method::GET, "/abc/x", "/up/"),
            Err(ApiError::NotFound)
        ));
        assert!(matches!(
            route(&Method::GET, "/", "/"),
            Err(ApiError::NotFound)
        ));
        assert!(matches!(
            route(&Method::GET, "/favicon.ico", "/"),
            Err(ApiError::NotFound)
        ));
        assert!(matches!(
            route(&Method::PUT, "/only", "/"),
            Err(ApiError::BadPath(_))
        ));
        assert!(matches!(
            route(&Method::POST, "/abc/x", "/"),
            Err(ApiError::MethodNotAllowed {
                allow: PUBLIC_METHODS
            })
        ));
        let long = format!("/a/{}", "x".repeat(5000));
        assert_eq!(
            route(&Method::GET, &long, "/")
                .unwrap_err()
                .status()
                .as_u16(),
            414
        );
    }

    #[test]
    fn admin_routes() {
        let admin = |method: Method, path: &str| route_admin(&method, path);
        assert_eq!(admin(Method::GET, "/health").unwrap(), AdminRoute::Health);
        assert_eq!(admin(Method::HEAD, "/health").unwrap(), AdminRoute::Health);
        assert_eq!(admin(Method::GET, "/live").unwrap(), AdminRoute::Live);
        assert_eq!(admin(Method::HEAD, "/live").unwrap(), AdminRoute::Live);
        assert!(admin(Method::POST, "/live").is_err());
        assert_eq!(admin(Method::GET, "/metrics").unwrap(), AdminRoute::Metrics);
        assert_eq!(admin(Method::GET, "/stats").unwrap(), AdminRoute::Stats);
        assert_eq!(
            admin(Method::GET, "/sweep").unwrap(),
            AdminRoute::SweepPreview
        );
        assert_eq!(admin(Method::POST, "/sweep").unwrap(), AdminRoute::Sweep);
        assert_eq!(
            admin(Method::GET, "/policy").unwrap(),
            AdminRoute::Policy(Format::Markdown)
        );
        assert_eq!(
            admin(Method::GET, "/policy/providers").unwrap(),
            AdminRoute::Policy(Format::Providers)
        );
        assert!(matches!(
            admin(Method::POST, "/policy"),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        ));
        assert!(matches!(
            admin(Method::GET, "/policy/html"),
            Err(ApiError::NotFound)
        ));
        assert_eq!(
            admin(Method::DELETE, "/owners/alice%40example.org%2Fphone").unwrap(),
            AdminRoute::Erase {
                jid: "alice@example.org/phone".into()
            }
        );
        assert_eq!(
            admin(Method::DELETE, "/owners/alice@example.org/phone").unwrap(),
            AdminRoute::Erase {
                jid: "alice@example.org/phone".into()
            }
        );
        assert!(matches!(
            admin(Method::GET, "/nothing"),
            Err(ApiError::NotFound)
        ));
        // Each path says which methods it takes.
        assert!(matches!(
            admin(Method::DELETE, "/metrics"),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        ));
        assert!(matches!(
            admin(Method::PUT, "/sweep"),
            Err(ApiError::MethodNotAllowed { allow: "GET, POST" })
        ));
        assert_eq!(
            admin(Method::GET, "/owners/alice%40example.org%2Fphone").unwrap(),
            AdminRoute::Access {
                jid: "alice@example.org/phone".into()
            }
        );
        assert_eq!(
            admin(Method::GET, "/owners/alice@example.org").unwrap(),
            AdminRoute::Access {
                jid: "alice@example.org".into()
            }
        );
        for method in [Method::HEAD, Method::POST, Method::PUT] {
            assert!(
                matches!(
                    admin(method.clone(), "/owners/a@b"),
                    Err(ApiError::MethodNotAllowed {
                        allow: "GET, DELETE"
                    })
                ),
                "{method}"
            );
        }
        for bad in [
            "/owners/",
            "/owners/%2Fphone",
            "/owners/a%00b",
            "/owners/%ff",
        ] {
            for method in [Method::DELETE, Method::GET] {
                assert!(
                    matches!(admin(method.clone(), bad), Err(ApiError::BadPath(_))),
                    "{method} {bad}"
                );
            }
        }
    }
}
