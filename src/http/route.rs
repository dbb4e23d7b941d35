//! Turns a request's method and path into a typed [`Route`] before anything
//! else looks at it.

use http::Method;

use super::error::ApiError;
use crate::auth::SlotPath;

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
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// A GET of something that cannot be a slot path simply finds nothing
/// (`/`, `/favicon.ico`, `/robots.txt`); too-long paths keep their 414.
fn not_found_for_reads(error: ApiError) -> ApiError {
    match error {
        ApiError::BadPath(crate::auth::PathError::TooLong) => error,
        _ => ApiError::NotFound,
    }
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
            Err(ApiError::MethodNotAllowed)
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
}
