//! The parsers of what the kernel sends, reachable by the fuzz targets (`fuzz/` at the repository
//! root) and their corpus replay. Not an API: they are private otherwise.

use crate::events::{events_in, VerdictEvent};
use crate::nft::batch::{Answer, Batch};
use std::io;

/// The verdict events [`crate::events::EventReader`] takes from one datagram of the NFLOG socket.
pub fn verdict_events(datagram: &[u8]) -> Vec<VerdictEvent> {
    events_in(datagram).collect()
}

/// The outcome of an nf_tables batch of `changes` changes (at most 256) that the kernel answers
/// with `datagrams`: `None` while the last change is unanswered.
pub fn batch_answer(changes: u16, datagrams: &[&[u8]]) -> Option<io::Result<()>> {
    let mut batch = Batch::default();
    for i in 0..changes.min(256) {
        batch.add_chain(&format!("c{i}"));
    }
    let mut answer = Answer::default();
    for data in datagrams {
        if batch.read_answer(data, &mut answer) {
            return Some(answer.first_error.map_or(Ok(()), Err));
        }
    }
    None
}
