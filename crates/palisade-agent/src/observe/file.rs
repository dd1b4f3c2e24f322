//! Reading and following `policy_action.log` and flow log files for `observe --file` (and
//! `matrix --observed`).

use super::Observable;
use crate::record::Record;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One line of a log: a record, or why it is not one (`file:line: reason`).
pub type Line<T = Record> = Result<T, String>;

fn parse<T: Observable>(path: &Path, number: usize, text: &str) -> Line<T> {
    serde_json::from_str(text)
        .map_err(|e| format!("{}:{number}: not a {}: {e}", path.display(), T::WHAT))
}

/// Longest line read as a record; a longer one is skipped, and said.
pub const MAX_LINE: usize = 1 << 20;

/// Reads every line of `path` in order, a record or why it is not one, into `each`, holding one
/// line (of at most [`MAX_LINE`] bytes) at a time; an unfinished last line is read too.
pub fn read_all<T: Observable>(path: &Path, each: impl FnMut(Line<T>)) -> io::Result<()> {
    Tail::open(path)?.each_available(true, each)
}

/// Follows a log file as it grows, from its start; after rotation (the path now names another file,
/// or the file shrank) it continues at the start of the new file.
pub struct Tail {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    inode: u64,
    offset: u64,
    line: usize,
    /// Inside a line longer than [`MAX_LINE`], said already: read to its end, unparsed.
    skipping: bool,
}

impl Tail {
    /// Opens `path`; a missing file is an error.
    pub fn open(path: &Path) -> io::Result<Tail> {
        let mut tail = Tail {
            path: path.to_path_buf(),
            reader: None,
            inode: 0,
            offset: 0,
            line: 0,
            skipping: false,
        };
        tail.reopen()?;
        Ok(tail)
    }

    fn reopen(&mut self) -> io::Result<()> {
        let file = File::open(&self.path)?;
        self.inode = file.metadata()?.ino();
        self.reader = Some(BufReader::new(file));
        (self.offset, self.line, self.skipping) = (0, 0, false);
        Ok(())
    }

    /// Every complete line appended since the last call, read as `T`s.
    pub fn read_new<T: Observable>(&mut self) -> io::Result<Vec<Line<T>>> {
        if let Ok(meta) = std::fs::metadata(&self.path) {
            if meta.ino() != self.inode || meta.len() < self.offset {
                // Drain what the old file still holds before switching.
                let mut out = self.read_available()?;
                self.reopen()?;
                out.extend(self.read_available()?);
                return Ok(out);
            }
        }
        self.read_available()
    }

    /// The complete lines from the offset on.
    fn read_available<T: Observable>(&mut self) -> io::Result<Vec<Line<T>>> {
        let mut out = Vec::new();
        self.each_available(false, |line| out.push(line))?;
        Ok(out)
    }

    /// The lines from the offset on into `each`, holding at most [`MAX_LINE`] bytes of one (a
    /// longer one is said and skipped; bytes that are not UTF-8 are read as U+FFFD). An unfinished
    /// last line is read when `to_end` (a file read whole); otherwise it is read again, whole,
    /// next time.
    fn each_available<T: Observable>(
        &mut self,
        to_end: bool,
        mut each: impl FnMut(Line<T>),
    ) -> io::Result<()> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(());
        };
        reader.seek(SeekFrom::Start(self.offset))?;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut *reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)?;
            let overlong = line.len() > MAX_LINE;
            let complete = line.ends_with(b"\n") || (to_end && !overlong);
            if n == 0 || (!complete && !overlong && !self.skipping) {
                return Ok(());
            }
            self.offset += n as u64;
            if self.skipping {
                self.skipping = !line.ends_with(b"\n");
                continue;
            }
            self.line += 1;
            if overlong {
                self.skipping = !line.ends_with(b"\n");
                let at = self.path.display();
                let what = T::WHAT;
                each(Err(format!(
                    "{at}:{}: not a {what}: longer than {MAX_LINE} bytes",
                    self.line
                )));
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            if !text.trim().is_empty() {
                each(parse(&self.path, self.line, text.trim_end()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const RECORD: &str = r#"{"connection":{"src_ip":"10.0.0.1","dest_ip":"10.0.0.2","dest_port":80,"protocol":"tcp","direction":"ingress"},"disposition":"deny","src":{"instance":"10.0.0.1"},"dest":{"instance":"10.0.0.2"},"count":2,"node_name":"n","timestamp":"2026-11-22T10:00:00.000000001Z"}"#;

    #[test]
    fn read_all_says_where_bad_and_overlong_lines_are_and_reads_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy_action.log");
        let long = "x".repeat(MAX_LINE + 10);
        std::fs::write(&path, format!("{RECORD}\n{{\n\n{long}\n{RECORD}")).unwrap();
        let mut lines: Vec<Line> = Vec::new();
        read_all(&path, |l| lines.push(l)).unwrap();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[0].is_ok() && lines[3].is_ok(), "{lines:?}");
        let e = lines[1].as_ref().unwrap_err();
        assert!(
            e.contains("policy_action.log:2: not a policy action record"),
            "{e}"
        );
        let e = lines[2].as_ref().unwrap_err();
        assert!(e.contains("policy_action.log:4: not a policy action record: longer than"));
    }

    /// A follower holds at most one line's bytes: an overlong line is said once and skipped, even
    /// while it is still being written; bytes that are not UTF-8 make a bad line, not an error.
    #[test]
    fn a_follower_skips_overlong_and_binary_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy_action.log");
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![b'x'; MAX_LINE + 10]).unwrap();
        let mut tail = Tail::open(&path).unwrap();
        let lines = tail.read_new::<Record>().unwrap();
        assert_eq!(lines.len(), 1, "said while still being written");
        assert!(lines[0]
            .as_ref()
            .unwrap_err()
            .contains(":1: not a policy action record: longer than"));
        f.write_all(&vec![b'x'; MAX_LINE]).unwrap();
        assert!(
            tail.read_new::<Record>().unwrap().is_empty(),
            "still the same line"
        );
        f.write_all(b"\n\xff\xfe\n").unwrap();
        writeln!(f, "{RECORD}").unwrap();
        let lines = tail.read_new::<Record>().unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0]
            .as_ref()
            .unwrap_err()
            .contains(":2: not a policy action record"));
        assert_eq!(lines[1].as_ref().unwrap().count, 2);
    }

    #[test]
    fn follows_appends_partial_lines_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy_action.log");
        let mut f = File::create(&path).unwrap();
        writeln!(f, "{RECORD}\nnot json").unwrap();
        let mut tail = Tail::open(&path).unwrap();
        let lines = tail.read_new::<Record>().unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].as_ref().unwrap().count, 2);
        assert!(lines[1]
            .as_ref()
            .unwrap_err()
            .contains("policy_action.log:2: not a policy action record"));
        // Half a line, then the rest.
        write!(f, "{}", &RECORD[..40]).unwrap();
        assert!(tail.read_new::<Record>().unwrap().is_empty());
        writeln!(f, "{}", &RECORD[40..]).unwrap();
        assert_eq!(tail.read_new::<Record>().unwrap().len(), 1);
        // Rotation: the file is renamed away and a new one starts.
        std::fs::rename(&path, dir.path().join("policy_action-1.log")).unwrap();
        writeln!(f, "{RECORD}").unwrap(); // late write to the old file
        let mut g = File::create(&path).unwrap();
        writeln!(g, "{RECORD}").unwrap();
        assert_eq!(
            tail.read_new::<Record>().unwrap().len(),
            2,
            "old file's tail, then the new file"
        );
        assert!(tail.read_new::<Record>().unwrap().is_empty());
    }
}
