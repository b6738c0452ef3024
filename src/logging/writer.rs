//! Where log lines go: standard error, each formatted event through
//! [`redaction::redact`](super::redaction::redact) first. The formatter writes an event in
//! pieces; [`EventWriter`] gathers them and redacts the whole event once, when the formatter
//! is done with it (on drop), so that a credential split across two writes is still found.

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;

use super::redaction;

/// Hands the formatter one [`EventWriter`] per event.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter(Vec::new())
    }
}

/// One event's text, written to standard error redacted once it is complete.
#[derive(Debug)]
pub struct EventWriter(Vec<u8>);

impl Write for EventWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        let redacted = redaction::redact(&text);
        // A log that cannot be written has nowhere to report that.
        let _ = std::io::stderr().lock().write_all(redacted.as_bytes());
    }
}
