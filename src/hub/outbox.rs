//! A connection's bounded outbound queue, drained directly by the connection's socket writer.
//!
//! Publishers push without waiting; the connection's socket writer (`ws::outbound`) is woken
//! at most once per burst and takes every queued frame in one go, so a burst becomes one
//! write. The queue is bounded twice ([`OutboxLimits`]): in frames, always; and in bytes once
//! the client is behind, that is once its socket has refused bytes the writer then holds (it
//! reports them through [`OutboxWriter::record_unwritten`]). From then on the queued frames
//! plus those unwritten bytes may not exceed the byte bound. A burst into a socket that takes
//! everything (one trigger to many channels, a large presence roster) is bounded by the frame
//! count only, so it never closes a client that reads. When a bound is reached the
//! client is not keeping up: the frame is refused and the connection's task is told (through
//! [`OutboxSignals::end_requested`]) to close the client with a reconnectable code, so one slow
//! client never slows anybody else. The same signal carries a backend's request to terminate
//! the connection. Closing frames bypass the bounds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use bytestring::ByteString;
use tokio::sync::Notify;

/// One frame waiting to be written to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundFrame {
    /// A text message (every Pusher frame).
    Text(ByteString),
    /// The answer to a WebSocket-level ping, with its payload.
    Pong(Bytes),
    /// The closing handshake; nothing is written after it.
    Close(Option<CloseFrame>),
}

impl OutboundFrame {
    /// The payload bytes this frame holds.
    fn byte_len(&self) -> usize {
        match self {
            OutboundFrame::Text(text) => text.len(),
            OutboundFrame::Pong(payload) => payload.len(),
            OutboundFrame::Close(frame) => frame.as_ref().map_or(0, |frame| frame.reason.len()),
        }
    }
}

/// How much one outbox may hold before its client counts as not keeping up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Frames queued.
    pub frames: usize,
    /// Bytes queued plus bytes the socket has refused, once it has refused any.
    pub bytes: usize,
}

impl OutboxLimits {
    /// A bound in frames only (for tests that count frames).
    pub fn frames(frames: usize) -> Self {
        OutboxLimits {
            frames,
            bytes: usize::MAX,
        }
    }
}

/// The code and reason of a WebSocket close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// A WebSocket (1000–1015) or Pusher (4000–4999) close code.
    pub code: u16,
    /// A short human-readable reason.
    pub reason: String,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full; the connection has been told to close.
    Full,
    /// The connection is closing or its socket is gone.
    Closed,
}

/// The sending side: held by the hub for each subscription of a connection, and by the
/// connection itself for its replies.
#[derive(Debug, Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The connection task's handle: sends like an [`Outbox`], and closes the queue. Dropping it
/// ends the stream of frames, so the socket is closed even if the task ends abruptly.
#[derive(Debug)]
pub struct OutboxOwner {
    outbox: Outbox,
}

/// The socket writer's side: takes queued frames. Once it is dropped, pushes are refused.
#[derive(Debug)]
pub struct OutboxWriter {
    shared: Arc<Shared>,
}

/// Queue slots an emptied queue may keep for the next frames (a larger allocation, left by a
/// burst, is released).
const KEPT_SLOTS: usize = 8;

/// Why a connection's task is asked to close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndRequest {
    /// A push found the queue full: the client is not keeping up.
    Overflow,
    /// The backend terminated the connection's user.
    Terminated,
    /// Not an end: a configuration reload replaced or removed the connection's app, so its
    /// task takes the registry's app again (or ends when there is none); taken back with
    /// [`OutboxSignals::clear_app_changed`]. Either end above wins over it.
    AppChanged,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    limits: OutboxLimits,
    /// Bytes the socket has refused so far and the writer still holds; 0 while the socket
    /// takes everything (written by the writer, read by pushes under the queue's lock).
    unwritten: AtomicUsize,
    /// Woken when `Queue::end_request` is first set.
    end_requested: Notify,
}

#[derive(Debug)]
struct Queue {
    frames: VecDeque<OutboundFrame>,
    /// The payload bytes of `frames`.
    queued_bytes: usize,
    /// The writer to wake when the first frame of a burst arrives.
    writer: Option<Waker>,
    state: State,
    /// The first reason the connection was asked to end, if any.
    end_request: Option<EndRequest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Frames are accepted.
    Open,
    /// The last frames are queued; the writer ends once they are written.
    Closing,
    /// The writer is gone; frames are discarded.
    WriterGone,
}

/// A queue holding at most what `limits` allow (closing frames excepted).
pub fn outbox(limits: OutboxLimits) -> (OutboxOwner, OutboxWriter) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            frames: VecDeque::new(),
            queued_bytes: 0,
            writer: None,
            state: State::Open,
            end_request: None,
        }),
        limits,
        unwritten: AtomicUsize::new(0),
        end_requested: Notify::new(),
    });
    (
        OutboxOwner {
            outbox: Outbox {
                shared: shared.clone(),
            },
        },
        OutboxWriter { shared },
    )
}

impl Shared {
    /// The queue, even if a thread panicked while holding it (its data stays consistent: every
    /// critical section is a single push, drain or state change).
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Outbox {
    /// Queues a text frame; `false` when the connection is gone or its queue is full (in which
    /// case the connection is told to close).
    pub fn push(&self, frame: ByteString) -> bool {
        self.push_frame(OutboundFrame::Text(frame)).is_ok()
    }

    /// Asks the connection's task to close the connection. A termination wins over an
    /// overflow (so a terminated client is not told to reconnect); otherwise the first reason
    /// stands (an app change, which ends nothing, gives way to either).
    pub fn request_end(&self, reason: EndRequest) {
        let mut queue = self.shared.lock();
        let replace = match queue.end_request {
            None | Some(EndRequest::AppChanged) => true,
            Some(EndRequest::Overflow) => reason == EndRequest::Terminated,
            Some(EndRequest::Terminated) => false,
        };
        if replace {
            queue.end_request = Some(reason);
            drop(queue);
            self.shared.end_requested.notify_one();
        }
    }

    /// Queues any frame within the bound.
    pub fn push_frame(&self, frame: OutboundFrame) -> Result<(), Refused> {
        let mut queue = self.shared.lock();
        if queue.state != State::Open {
            return Err(Refused::Closed);
        }
        let size = frame.byte_len();
        let unwritten = self.shared.unwritten.load(Ordering::Relaxed);
        let behind = unwritten > 0;
        let held = queue.queued_bytes + unwritten + size;
        let limits = self.shared.limits;
        if queue.frames.len() >= limits.frames || (behind && held > limits.bytes) {
            drop(queue);
            self.request_end(EndRequest::Overflow);
            return Err(Refused::Full);
        }
        queue.queued_bytes += size;
        queue.frames.push_back(frame);
        let writer = queue.writer.take();
        drop(queue);
        if let Some(writer) = writer {
            writer.wake();
        }
        Ok(())
    }
}

impl OutboxOwner {
    /// A sending handle for the hub.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Queues the last frames (past the bound) and ends the stream after them. With
    /// `discard_pending`, frames still waiting are dropped first, so a client that cannot keep
    /// up learns at once why it is closed.
    pub fn close(&self, last: impl IntoIterator<Item = OutboundFrame>, discard_pending: bool) {
        let shared = &self.outbox.shared;
        let mut queue = shared.lock();
        if queue.state != State::Open {
            return;
        }
        queue.state = State::Closing;
        if discard_pending {
            queue.frames.clear();
            queue.queued_bytes = 0;
        }
        for frame in last {
            queue.queued_bytes += frame.byte_len();
            queue.frames.push_back(frame);
        }
        let writer = queue.writer.take();
        drop(queue);
        if let Some(writer) = writer {
            writer.wake();
        }
    }

    /// What the connection's task waits for besides its client.
    pub fn signals(&self) -> OutboxSignals {
        OutboxSignals {
            shared: self.outbox.shared.clone(),
        }
    }
}

/// The request that ends a queue's connection.
#[derive(Debug)]
pub struct OutboxSignals {
    shared: Arc<Shared>,
}

impl OutboxSignals {
    /// Resolves with the reason once the connection is asked to end (at once if it already
    /// was).
    pub async fn end_requested(&self) -> EndRequest {
        loop {
            if let Some(reason) = self.shared.lock().end_request {
                return reason;
            }
            self.shared.end_requested.notified().await;
        }
    }

    /// Takes back an [`EndRequest::AppChanged`] once the task has acted on it (a real end
    /// request stays).
    pub fn clear_app_changed(&self) {
        let mut queue = self.shared.lock();
        if queue.end_request == Some(EndRequest::AppChanged) {
            queue.end_request = None;
        }
    }
}

impl Drop for OutboxOwner {
    fn drop(&mut self) {
        self.close([], false);
    }
}

impl OutboxWriter {
    /// Hands every queued frame to `write`, in order. `Ready(true)` when frames were taken,
    /// `Ready(false)` when the stream has ended (the close frame, if any, was taken earlier),
    /// `Pending` when there is nothing yet (the writer is woken by the next push).
    pub fn poll_take(&self, cx: &mut Context<'_>, write: impl FnMut(OutboundFrame)) -> Poll<bool> {
        let mut queue = self.shared.lock();
        if queue.frames.is_empty() {
            if queue.state != State::Open {
                return Poll::Ready(false);
            }
            match &queue.writer {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => queue.writer = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        // The writer counts them as unwritten if the socket refuses them.
        queue.queued_bytes = 0;
        // A burst's worth of slots is not kept on an idle connection; a few are reused.
        if queue.frames.capacity() > KEPT_SLOTS {
            let frames = std::mem::take(&mut queue.frames);
            drop(queue);
            frames.into_iter().for_each(write);
        } else {
            queue.frames.drain(..).for_each(write);
        }
        Poll::Ready(true)
    }

    /// Tells the outbox how many encoded bytes the writer holds because the socket refused
    /// them (0 once it has taken everything); while there are any, the byte bound applies.
    pub fn record_unwritten(&self, bytes: usize) {
        self.shared.unwritten.store(bytes, Ordering::Relaxed);
    }
}

impl Drop for OutboxWriter {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.state = State::WriterGone;
        queue.frames = VecDeque::new();
        queue.queued_bytes = 0;
    }
}

/// Both ends of a queue, for tests elsewhere in the crate that watch what a subscriber gets.
#[cfg(test)]
pub(crate) struct TestOutbox {
    owner: OutboxOwner,
    writer: OutboxWriter,
}

#[cfg(test)]
impl TestOutbox {
    /// An open queue of `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        let (owner, writer) = outbox(OutboxLimits::frames(capacity));
        TestOutbox { owner, writer }
    }

    /// The handle a publisher delivers through.
    pub fn outbox(&self) -> &Outbox {
        self.owner.outbox()
    }

    /// Why the connection was asked to end, if it was.
    pub fn end_request(&self) -> Option<EndRequest> {
        self.writer.shared.lock().end_request
    }

    /// The oldest queued text frame, if any.
    pub fn next_text(&self) -> Option<ByteString> {
        let mut queue = self.writer.shared.lock();
        match queue.frames.pop_front()? {
            OutboundFrame::Text(text) => {
                queue.queued_bytes -= text.len();
                Some(text)
            }
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn text(s: &'static str) -> OutboundFrame {
        OutboundFrame::Text(ByteString::from_static(s))
    }

    fn take(writer: &OutboxWriter) -> Poll<Vec<OutboundFrame>> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut taken = Vec::new();
        writer
            .poll_take(&mut cx, |frame| taken.push(frame))
            .map(|_| taken)
    }

    #[tokio::test]
    async fn a_full_queue_signals_overflow_instead_of_waiting() {
        let (owner, _writer) = outbox(OutboxLimits::frames(1));
        assert!(owner.outbox().push(ByteString::from_static("a")));
        assert_eq!(owner.outbox().push_frame(text("b")), Err(Refused::Full));
        // The permit stored by notify_one makes this resolve at once.
        assert_eq!(owner.signals().end_requested().await, EndRequest::Overflow);
    }

    #[test]
    fn the_byte_bound_applies_once_the_socket_refuses_bytes() {
        let (owner, writer) = outbox(OutboxLimits {
            frames: 100,
            bytes: 10,
        });
        let outbox = owner.outbox();
        // The socket takes everything: a burst is bounded by frames only.
        for _ in 0..3 {
            outbox.push_frame(text("12345")).unwrap();
        }
        assert!(matches!(take(&writer), Poll::Ready(frames) if frames.len() == 3));
        // The socket refused 6 bytes: queued plus unwritten may reach 10, no more.
        writer.record_unwritten(6);
        outbox.push_frame(text("1234")).unwrap();
        assert_eq!(outbox.push_frame(text("1")), Err(Refused::Full));
        // Written out: the bound no longer applies.
        writer.record_unwritten(0);
        outbox.push_frame(text("1234567890")).unwrap();
    }

    #[test]
    fn the_writer_takes_a_burst_in_order() {
        let (owner, writer) = outbox(OutboxLimits::frames(8));
        assert_eq!(take(&writer), Poll::Pending);
        owner.outbox().push_frame(text("a")).unwrap();
        owner
            .outbox()
            .push_frame(OutboundFrame::Pong(Bytes::from_static(b"p")))
            .unwrap();
        owner.outbox().push_frame(text("b")).unwrap();
        assert_eq!(
            take(&writer),
            Poll::Ready(vec![
                text("a"),
                OutboundFrame::Pong(Bytes::from_static(b"p")),
                text("b")
            ])
        );
        assert_eq!(take(&writer), Poll::Pending);
    }

    #[test]
    fn closing_frames_bypass_the_bound_and_end_the_stream() {
        let (owner, writer) = outbox(OutboxLimits::frames(1));
        owner.outbox().push_frame(text("queued")).unwrap();
        let close = OutboundFrame::Close(Some(CloseFrame {
            code: 4100,
            reason: "Over capacity".into(),
        }));
        owner.close([text("error"), close.clone()], true);
        assert_eq!(
            owner.outbox().push_frame(text("late")),
            Err(Refused::Closed)
        );
        assert_eq!(take(&writer), Poll::Ready(vec![text("error"), close]));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(writer.poll_take(&mut cx, |_| {}), Poll::Ready(false));
    }

    #[test]
    fn dropping_the_owner_ends_the_stream_after_pending_frames() {
        let (owner, writer) = outbox(OutboxLimits::frames(4));
        owner.outbox().push_frame(text("a")).unwrap();
        drop(owner);
        assert_eq!(take(&writer), Poll::Ready(vec![text("a")]));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(writer.poll_take(&mut cx, |_| {}), Poll::Ready(false));
    }

    #[tokio::test]
    async fn a_termination_wins_over_an_overflow() {
        for first in [EndRequest::Terminated, EndRequest::Overflow] {
            let (owner, _writer) = outbox(OutboxLimits::frames(1));
            owner.outbox().request_end(first);
            let second = if first == EndRequest::Overflow {
                EndRequest::Terminated
            } else {
                EndRequest::Overflow
            };
            owner.outbox().request_end(second);
            assert_eq!(
                owner.signals().end_requested().await,
                EndRequest::Terminated
            );
        }
    }

    #[test]
    fn a_gone_writer_refuses_frames() {
        let (owner, writer) = outbox(OutboxLimits::frames(4));
        drop(writer);
        assert_eq!(owner.outbox().push_frame(text("a")), Err(Refused::Closed));
    }

    #[test]
    fn a_push_wakes_the_waiting_writer_once_per_burst() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;

        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let (owner, writer) = outbox(OutboxLimits::frames(8));
        assert_eq!(writer.poll_take(&mut cx, |_| {}), Poll::Pending);
        owner.outbox().push_frame(text("a")).unwrap();
        owner.outbox().push_frame(text("b")).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}
