//! The request-body deadline: every request's body must have arrived whole within
//! `[server] body_timeout_ms` of its complete head, whoever reads it.

use std::error::Error;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::connection::{CloseReason, Connection};

/// The error a request body yields once its deadline has passed. Code reading a body finds it
/// in the source chain of whatever error wraps it: see [`is_body_deadline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDeadlineExceeded {
    /// The deadline that passed (`[server] body_timeout_ms`).
    pub timeout: Duration,
}

impl fmt::Display for BodyDeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} ms",
            self.timeout.as_millis()
        )
    }
}

impl Error for BodyDeadlineExceeded {}

/// Whether `error`, or an error in its source chain, is [`BodyDeadlineExceeded`]: axum's
/// body rejections (`BytesRejection`, ...) carry it that way.
pub fn is_body_deadline(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<BodyDeadlineExceeded>() {
            return true;
        }
        next = error.source();
    }
    false
}

/// A request body bounded by a deadline. When the deadline passes before the body's end, it
/// yields [`BodyDeadlineExceeded`] and asks its connection to close once the answer is out.
/// The timer is armed only when the body has to wait for the client, so a body already
/// received costs no timer.
pub(crate) struct DeadlineBody<B> {
    inner: B,
    deadline: Instant,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    connection: Option<Arc<Connection>>,
}

impl<B> DeadlineBody<B> {
    /// `inner` must end within `timeout` from now; `connection` is closed if it does not.
    pub(crate) fn new(inner: B, timeout: Duration, connection: Option<Arc<Connection>>) -> Self {
        DeadlineBody {
            inner,
            deadline: Instant::now() + timeout,
            timeout,
            sleep: None,
            connection,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        if let Some(connection) = this.connection.take() {
            connection.request_close(CloseReason::BodyTimeout);
        }
        Poll::Ready(Some(Err(Box::new(BodyDeadlineExceeded {
            timeout: this.timeout,
        }))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::extract::{FromRequest, Request};
    use http_body_util::StreamBody;

    /// A body that sends one byte and then nothing, as a stalled client does.
    fn stalled() -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        let first = futures_util::stream::iter([Ok::<_, std::io::Error>(Frame::data(
            Bytes::from_static(b"{"),
        ))]);
        StreamBody::new(futures_util::StreamExt::chain(
            first,
            futures_util::stream::pending(),
        ))
    }

    #[tokio::test]
    async fn a_stalled_body_fails_with_an_error_axum_rejections_carry() {
        let body = DeadlineBody::new(stalled(), Duration::from_millis(50), None);
        let request = Request::new(axum::body::Body::new(body));
        let started = std::time::Instant::now();
        let rejection = Bytes::from_request(request, &()).await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(is_body_deadline(&rejection), "{rejection:?}");
        assert!(!is_body_deadline(&std::io::Error::other("x")));
    }

    #[tokio::test]
    async fn a_body_in_time_is_untouched() {
        let body = DeadlineBody::new(
            http_body_util::Full::new(Bytes::from_static(b"{}")),
            Duration::from_millis(1),
            None,
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        let request = Request::new(axum::body::Body::new(body));
        let bytes = Bytes::from_request(request, &()).await.unwrap();
        assert_eq!(&bytes[..], b"{}");
    }
}
