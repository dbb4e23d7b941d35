//! The response body type: empty, a small in-memory text, or a blob stream.

use bytes::Bytes;
use futures_util::StreamExt;
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};

use crate::storage::BlobStream;

/// Every response body upslot sends.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// No body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A short in-memory body (error messages, health reports).
pub fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A streamed blob.
pub fn stream(blob: BlobStream) -> Body {
    StreamBody::new(blob.map(|chunk| chunk.map(Frame::data))).boxed_unsync()
}
