//! An append-only log file rotated by size: when the next line would take it past the limit, the file
//! is renamed to `<stem>-<UTC time>.<ext>` (`policy_action-2026-11-22T10-00-00.123.log`, the naming of
//! the lumberjack writer GKE's agent uses, which sorts by time) and only the newest rotated files are
//! kept.

use crate::safe_fs;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

const ROTATED: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]-[minute]-[second].[subsecond digits:3]");
/// What [`ROTATED`] writes, with `0` for each digit.
const STAMP: &str = "0000-00-00T00-00-00.000";

/// A size-rotated log file, created and rotated as [`safe_fs`] says (mode 0640, no links
/// followed); only regular files of the agent named as it names them are ever pruned.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    group: Option<u32>,
    file: Option<File>,
    size: u64,
    /// The last write failed (said once per run of failures).
    failing: bool,
}

impl RotatingFile {
    /// Opens (creating the folder and file if needed) `path` for appending; rotates at `max_bytes`
    /// and keeps `keep` rotated files. The files (and a folder it creates) belong to `group` when
    /// set.
    pub fn open(path: &Path, max_bytes: u64, keep: usize, group: Option<u32>) -> io::Result<Self> {
        let mut f = RotatingFile {
            path: path.to_path_buf(),
            max_bytes,
            keep,
            group,
            file: None,
            size: 0,
            failing: false,
        };
        f.reopen()?;
        Ok(f)
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reopen(&mut self) -> io::Result<()> {
        safe_fs::prepare_parent(&self.path, self.group)?;
        let file = safe_fs::open_append(&self.path, self.group)?;
        self.size = file.metadata().map_err(safe_fs::at(&self.path))?.len();
        self.file = Some(file);
        Ok(())
    }

    /// Appends one line of `what` (with its newline) as [`RotatingFile::write_line`] does; false
    /// when it could not — the first failure of a run is logged, saying that `what` is dropped.
    pub fn append(&mut self, line: &str, what: &str) -> bool {
        match self.write_line(line) {
            Ok(()) => {
                self.failing = false;
                true
            }
            Err(e) => {
                if !self.failing {
                    tracing::error!("writing {}: {e}; {what} are dropped", self.path.display());
                }
                self.failing = true;
                false
            }
        }
    }

    /// Appends one line (with its newline) in a single write, rotating first if it would not fit.
    /// After an error the next call reopens the file.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        if self.file.is_none() {
            self.reopen()?;
        }
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let file = self.file.as_mut().expect("opened above");
        match file.write_all(line.as_bytes()) {
            Ok(()) => {
                self.size += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.file = None;
                Err(e)
            }
        }
    }

    fn rotated_name(&self, stem: &str, ext: &str, t: SystemTime) -> PathBuf {
        let stamp = OffsetDateTime::from(t)
            .format(ROTATED)
            .unwrap_or_else(|_| STAMP.into());
        let mut name = format!("{stem}-{stamp}{ext}");
        // Two rotations within one millisecond: a suffix keeps names unique and still sorted.
        let mut n = 1;
        while std::fs::symlink_metadata(self.path.with_file_name(&name)).is_ok() {
            name = format!("{stem}-{stamp}.{n:03}{ext}");
            n += 1;
        }
        self.path.with_file_name(name)
    }

    fn parts(&self) -> (String, String) {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = self
            .path
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        (stem, ext)
    }

    /// Renames the live file within its folder (a rename moves the entry itself, never what a link
    /// points to), opens a new one and prunes the oldest rotated files. A failed prune is logged:
    /// it must not cost the record being written.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let (stem, ext) = self.parts();
        let target = self.rotated_name(&stem, &ext, SystemTime::now());
        std::fs::rename(&self.path, target).map_err(safe_fs::at(&self.path))?;
        self.reopen()?;
        let mut old = self.rotated_files()?;
        while old.len() > self.keep {
            let oldest = old.remove(0);
            if let Err(e) = std::fs::remove_file(&oldest) {
                tracing::warn!("removing the rotated log {}: {e}", oldest.display());
            }
        }
        Ok(())
    }

    /// The rotated files beside the live one, oldest first: regular files of the agent (links are
    /// not followed) named `<stem>-<time>[.NNN]<ext>`. Anything else is left alone.
    pub fn rotated_files(&self) -> io::Result<Vec<PathBuf>> {
        let (stem, ext) = self.parts();
        let dir = safe_fs::parent(&self.path);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(safe_fs::at(&dir))?
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| is_rotated(n, &stem, &ext))
            })
            .map(|e| e.path())
            .filter(|p| {
                std::fs::symlink_metadata(p).is_ok_and(|m| safe_fs::is_own_regular_file(&m))
            })
            .collect();
        files.sort();
        Ok(files)
    }
}

/// True for `<stem>-<STAMP>[.NNN]<ext>`, the names [`RotatingFile::rotated_name`] gives.
fn is_rotated(name: &str, stem: &str, ext: &str) -> bool {
    let Some(middle) = name
        .strip_prefix(stem)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_suffix(ext))
    else {
        return false;
    };
    let Some((stamp, suffix)) = middle.split_at_checked(STAMP.len()) else {
        return false;
    };
    let stamp_ok = stamp.bytes().zip(STAMP.bytes()).all(|(c, t)| {
        if t == b'0' {
            c.is_ascii_digit()
        } else {
            c == t
        }
    });
    stamp_ok
        && (suffix.is_empty()
            || suffix
                .strip_prefix('.')
                .is_some_and(|n| n.len() >= 3 && n.bytes().all(|b| b.is_ascii_digit())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_the_size_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/policy_action.log");
        let mut f = RotatingFile::open(&path, 100, 5, None).unwrap();
        let line = format!("{}\n", "x".repeat(39)); // 40 bytes: two fit in 100
        for i in 0..20 {
            f.write_line(&line).unwrap();
            assert!(std::fs::metadata(&path).unwrap().len() <= 100, "write {i}");
        }
        // 20 lines, 2 per file: 9 rotations, of which the 5 newest remain.
        let rotated = f.rotated_files().unwrap();
        assert_eq!(rotated.len(), 5, "{rotated:?}");
        for r in &rotated {
            let name = r.file_name().unwrap().to_str().unwrap();
            assert!(
                name.starts_with("policy_action-") && name.ends_with(".log"),
                "{name}"
            );
            assert_eq!(std::fs::read_to_string(r).unwrap(), line.repeat(2));
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), line.repeat(2));
        // Reopening continues the existing file's size.
        let mut again = RotatingFile::open(&path, 100, 5, None).unwrap();
        again.write_line(&line).unwrap();
        assert_eq!(f.rotated_files().unwrap().len(), 5);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), line);
    }

    #[test]
    fn rotated_names_are_recognised_exactly() {
        let yes = |n| assert!(is_rotated(n, "policy_action", ".log"), "{n}");
        let no = |n| assert!(!is_rotated(n, "policy_action", ".log"), "{n}");
        yes("policy_action-2026-11-22T10-00-00.123.log");
        yes("policy_action-2026-11-22T10-00-00.123.001.log");
        yes("policy_action-2026-11-22T10-00-00.123.1000.log");
        no("policy_action.log");
        no("policy_action-notes.log");
        no("policy_action-2026-11-22T10-00-00.123.log.gz");
        no("policy_action-2026-11-22T10-00-00.12x.log");
        no("policy_action-2026-11-22T10-00-00.123.01.log");
        no("policy_action-2026-11-22T10-00-00.123-x.log");
        no("other-2026-11-22T10-00-00.123.log");
    }

    /// Planted entries a rotation could trip over: a link at the live path (moved aside by the
    /// rename, never written through), links and foreign files with rotated names (never pruned
    /// or counted), a name that merely starts like one.
    #[test]
    fn rotation_never_follows_or_prunes_what_it_did_not_write() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "secret\n").unwrap();
        let path = dir.path().join("policy_action.log");
        let planted_old = dir.path().join("policy_action-2000-01-01T00-00-00.000.log");
        symlink(&victim, &planted_old).unwrap();
        let foreign = dir.path().join("policy_action-2000-01-01T00-00-00.001.log");
        std::fs::write(&foreign, "theirs\n").unwrap();
        std::os::unix::fs::chown(&foreign, Some(1234), None).unwrap();
        let notes = dir.path().join("policy_action-notes.log");
        std::fs::write(&notes, "notes\n").unwrap();

        let line = format!("{}\n", "x".repeat(39));
        let mut f = RotatingFile::open(&path, 100, 2, None).unwrap();
        f.write_line(&line).unwrap();
        // Someone swaps the live file for a link while the agent holds it open.
        std::fs::remove_file(&path).unwrap();
        symlink(&victim, &path).unwrap();
        for _ in 0..10 {
            f.write_line(&line).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret\n");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert!(std::fs::symlink_metadata(&planted_old)
            .unwrap()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "theirs\n");
        assert_eq!(std::fs::read_to_string(&notes).unwrap(), "notes\n");
        let rotated = f.rotated_files().unwrap();
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        assert!(rotated
            .iter()
            .all(|r| std::fs::read_to_string(r).unwrap() == line.repeat(2)));
    }

    #[test]
    fn a_link_at_the_path_is_refused_when_opening() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "secret\n").unwrap();
        let path = dir.path().join("policy_action.log");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let e = RotatingFile::open(&path, 100, 2, None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret\n");
    }
}
