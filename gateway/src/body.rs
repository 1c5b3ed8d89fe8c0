//! The one response body type, and bounded, time-limited collection of incoming bodies.

use std::time::Duration;

use bytes::Bytes;
use http_body::Body as HttpBody;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full, Limited};

/// A boxed error from any body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body the gateway sends: buffered or streamed.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Why a body could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The body is longer than the limit.
    #[error("body exceeds {0} bytes")]
    TooLarge(usize),
    /// The sender took longer than the time limit.
    #[error("body not received within {0:?}")]
    Timeout(Duration),
    /// The connection failed while reading.
    #[error("body could not be read: {0}")]
    Io(BoxError),
}

/// Reads a whole body into memory, refusing more than `limit` bytes or more than `timeout` in total.
pub async fn collect<B>(body: B, limit: usize, timeout: Duration) -> Result<Bytes, CollectError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let limited = Limited::new(body, limit);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(CollectError::Timeout(timeout)),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) => {
            if e.is::<http_body_util::LengthLimitError>() {
                Err(CollectError::TooLarge(limit))
            } else {
                Err(CollectError::Io(e))
            }
        }
    }
}
