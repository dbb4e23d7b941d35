//! Metronome's signed `DELETE`, authorised: the file goes at once, and its
//! URL stays used (a tombstone).

use http::{Response, StatusCode};

use super::app::App;
use super::body::{self, Body};
use super::error::ApiError;
use crate::auth::DeleteGrant;

/// Deletes the file `grant` names. Answers 204 whether or not a file was
/// there (DELETE is idempotent, and Metronome only needs to know it is
/// gone).
pub(super) async fn delete(
    app: &App,
    grant: DeleteGrant,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    if app.files.delete_one(&grant.path, now).await? {
        tracing::info!("file deleted on request of the XMPP server");
    }
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}
