//! Requests to the API server with bounded reads: kube-rs reads a response body whole (a list
//! page, an error) and a watch stream line by line without a limit, so a faulty or hostile server
//! could make the agent hold any amount of memory. Here a page is read up to a byte limit, an error
//! body up to [`MAX_ERROR`], the answer to a write up to [`MAX_WRITTEN`], and a watch line up to
//! [`MAX_LINE`] — past them, the request fails with a clear error and what was read is dropped.

use http_body_util::BodyExt;
use kube::client::Body;
use kube::core::{Status, WatchEvent};
use kube::Client;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;

/// The longest watch event line: an object (etcd refuses one over 1.5 MiB) with its envelope.
pub(crate) const MAX_LINE: usize = 16 << 20;
/// The most of an error body read (a `Status`, or a proxy's page).
const MAX_ERROR: usize = 64 << 10;
/// The most of the answer to a write read: the object as written (a Lease with its status
/// annotation, at most 256 KiB, and its managed fields; an Event), of which only the status code
/// is used.
pub(crate) const MAX_WRITTEN: usize = 1 << 20;

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The API server answered with an error (a `Status`, or one made from another answer).
    Api(Box<Status>),
    /// The request could not be made, or its answer not read or understood.
    Other(String),
    /// A watch line that cannot be taken (past [`MAX_LINE`], or no event): resuming would bring it
    /// again, so the kind is to be listed afresh.
    Line(String),
    /// The answer is larger than the bound it was read within (in bytes).
    TooLarge(usize),
}

impl Fault {
    /// The HTTP status code of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            Fault::Api(status) => Some(status.code),
            Fault::Other(_) | Fault::Line(_) | Fault::TooLarge(_) => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Api(status) if status.message.is_empty() => {
                write!(f, "{} {}", status.code, status.reason)
            }
            Fault::Api(status) => write!(f, "{} {}", status.code, status.message),
            Fault::Other(why) | Fault::Line(why) => f.write_str(why),
            Fault::TooLarge(max) => write!(f, "the answer is larger than {}", size(*max)),
        }
    }
}

/// Sends `request`; an error status comes back as [`Fault::Api`] (its body read up to
/// [`MAX_ERROR`]).
async fn send(
    client: &Client,
    request: http::Request<Vec<u8>>,
) -> Result<http::Response<Body>, Fault> {
    let mut request = request.map(Body::from);
    // Compressed watch streams lose events in kube-rs's decoder (kube-rs asks the same).
    request.headers_mut().insert(
        http::header::ACCEPT_ENCODING,
        http::HeaderValue::from_static("identity"),
    );
    let response = (client.send(request).await).map_err(|e| Fault::Other(e.to_string()))?;
    let code = response.status();
    if !(code.is_client_error() || code.is_server_error()) {
        return Ok(response);
    }
    let body = read(response.into_body(), MAX_ERROR, true).await?;
    let text = String::from_utf8_lossy(&body);
    let mut status = status(&body).unwrap_or_else(|| {
        Status::failure(text.trim(), "the answer is not a Status").with_code(code.as_u16())
    });
    if status.code == 0 {
        status.code = code.as_u16();
    }
    Err(Fault::Api(Box::new(status)))
}

/// `bytes` as a `Status`, if they are one (`kind: Status`: any JSON object would read as one, its
/// fields all having defaults).
fn status(bytes: &[u8]) -> Option<Status> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    if value.get("kind").and_then(Value::as_str) != Some("Status") {
        return None;
    }
    serde_json::from_value(value).ok()
}

/// `bytes` as people read a size.
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// Up to `max` bytes of `body`: more is an error, unless `cut` (then the rest is not read).
async fn read(mut body: Body, max: usize, cut: bool) -> Result<Vec<u8>, Fault> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Fault::Other(format!("reading the answer: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if bytes.len() + data.len() > max {
            if cut {
                bytes.extend_from_slice(&data[..max - bytes.len()]);
                break;
            }
            return Err(Fault::TooLarge(max));
        }
        bytes.extend_from_slice(&data);
    }
    Ok(bytes)
}

/// The answer to `request` as JSON, read up to `max` bytes.
pub(crate) async fn get<T: DeserializeOwned>(
    client: &Client,
    request: http::Request<Vec<u8>>,
    max: usize,
) -> Result<T, Fault> {
    let response = send(client, request).await?;
    let body = read(response.into_body(), max, false).await?;
    serde_json::from_slice(&body).map_err(|e| Fault::Other(format!("the answer is not JSON: {e}")))
}

/// Makes the write `request` (a create, a patch); its answer is read up to [`MAX_WRITTEN`] and
/// dropped.
pub(crate) async fn write(client: &Client, request: http::Request<Vec<u8>>) -> Result<(), Fault> {
    let response = send(client, request).await?;
    read(response.into_body(), MAX_WRITTEN, false)
        .await
        .map(drop)
}

/// A watch stream, its events read line by line, each line at most [`MAX_LINE`] bytes.
pub(crate) struct Events {
    body: Body,
    buffer: Vec<u8>,
    /// Where the lines not yet handed out start in `buffer` (compacted once per frame, not per
    /// line: many short lines would otherwise cost a move of the buffer each).
    start: usize,
    /// How much of `buffer` past `start` is known to hold no line end.
    searched: usize,
    ended: bool,
}

impl Events {
    /// Starts the watch `request`.
    pub async fn start(client: &Client, request: http::Request<Vec<u8>>) -> Result<Events, Fault> {
        let response = send(client, request).await?;
        Ok(Events::of(response.into_body()))
    }

    fn of(body: Body) -> Events {
        Events {
            body,
            buffer: Vec::new(),
            start: 0,
            searched: 0,
            ended: false,
        }
    }

    /// The next event; `None` when the server ended the watch, or the connection was cut short
    /// (resumed the same way). A `Status` line is a [`Fault::Api`]; a line that is no event, or past
    /// [`MAX_LINE`], a [`Fault::Line`]; a connection that failed otherwise, a [`Fault::Other`] and
    /// the end.
    pub async fn next(&mut self) -> Option<Result<WatchEvent<Value>, Fault>> {
        loop {
            let from = self.start + self.searched;
            if let Some(at) = self.buffer[from..].iter().position(|&b| b == b'\n') {
                let line = self.start..from + at;
                self.start = from + at + 1;
                self.searched = 0;
                if line.len() > MAX_LINE {
                    return Some(Err(self.oversized()));
                }
                let line = &self.buffer[line];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(event(line));
            }
            self.searched = self.buffer.len() - self.start;
            if self.searched > MAX_LINE {
                return Some(Err(self.oversized()));
            }
            if self.ended {
                // A last line the stream ended without a line end after.
                let rest = std::mem::take(&mut self.buffer).split_off(self.start);
                (self.start, self.searched) = (0, 0);
                let blank = rest.iter().all(u8::is_ascii_whitespace);
                return (!blank).then(|| event(&rest));
            }
            match self.body.frame().await {
                None => self.ended = true,
                Some(Err(e)) => {
                    self.ended = true;
                    self.buffer.clear();
                    (self.start, self.searched) = (0, 0);
                    // Cut short (what a long watch often meets): resumed; else a failure.
                    if !cut_short(&e) {
                        return Some(Err(Fault::Other(format!("the watch failed: {e}"))));
                    }
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.drain(..self.start);
                        self.start = 0;
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// A line past [`MAX_LINE`]: the stream ends here, its memory given back.
    fn oversized(&mut self) -> Fault {
        self.buffer = Vec::new();
        (self.start, self.searched, self.ended) = (0, 0, true);
        Fault::Line(format!("a watch event is larger than {}", size(MAX_LINE)))
    }
}

/// Whether `error` is a connection cut short (an unexpected end of the stream), which ends a watch
/// to be resumed, rather than a failure.
fn cut_short(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        let eof = (e.downcast_ref::<std::io::Error>())
            .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof);
        if eof || e.to_string().contains("unexpected EOF") {
            return true;
        }
        cause = e.source();
    }
    false
}

/// One watch line: an event, or a `Status` (an error the server sent in the stream).
fn event(line: &[u8]) -> Result<WatchEvent<Value>, Fault> {
    match serde_json::from_slice::<WatchEvent<Value>>(line) {
        Ok(event) => Ok(event),
        Err(e) => match status(line) {
            Some(status) => Err(Fault::Api(Box::new(status))),
            None => Err(Fault::Line(format!(
                "a watch event that does not read: {e}"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as the API server writes them: events, blank lines skipped, a `Status` line as an
    /// error, a last line without its line end still read, then the end.
    #[test]
    fn a_watch_stream_is_framed_into_events() {
        let added = r#"{"type":"ADDED","object":{"metadata":{"name":"a"}}}"#;
        let gone = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old","reason":"Expired","code":410}"#;
        let bookmark = r#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"9"}}}"#;
        let text = format!("{added}\n\n{gone}\n{bookmark}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut events = Events::of(Body::from(text.into_bytes()));
            assert!(matches!(
                events.next().await,
                Some(Ok(WatchEvent::Added(_)))
            ));
            match events.next().await {
                Some(Err(Fault::Api(status))) => assert_eq!(status.code, 410),
                other => panic!("{other:?}"),
            }
            assert!(matches!(
                events.next().await,
                Some(Ok(WatchEvent::Bookmark(_)))
            ));
            assert!(events.next().await.is_none());
        });
    }

    /// A line past the bound is an error, and the stream ends there — also when its line end
    /// came in the same frame (the bound is not one frame late).
    #[test]
    fn a_line_past_the_bound_is_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            for ended in [false, true] {
                let mut bytes = vec![b'x'; MAX_LINE + 1];
                if ended {
                    bytes.push(b'\n');
                }
                let mut events = Events::of(Body::from(bytes));
                match events.next().await {
                    Some(Err(Fault::Line(why))) => {
                        assert!(why.contains("larger than 16 MiB"), "{why}")
                    }
                    other => panic!("{other:?}"),
                }
                assert!(events.next().await.is_none());
            }
        });
    }
}
