//! An append-only log file rotated by size: when the next line would take it past the limit, the file
//! is renamed to `<stem>-<UTC time>.<ext>` (`policy_action-2026-11-22T10-00-00.123.log`, the naming of
//! the lumberjack writer GKE's agent uses, which sorts by time) and only the newest rotated files are
//! kept.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

const ROTATED: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]-[minute]-[second].[subsecond digits:3]");

/// A size-rotated log file.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    /// Opens (creating the folder and file if needed) `path` for appending; rotates at `max_bytes`
    /// and keeps `keep` rotated files.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        let mut f = RotatingFile {
            path: path.to_path_buf(),
            max_bytes,
            keep,
            file: None,
            size: 0,
        };
        f.reopen()?;
        Ok(f)
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reopen(&mut self) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
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
            .unwrap_or_else(|_| "0000-00-00T00-00-00.000".into());
        let mut name = format!("{stem}-{stamp}{ext}");
        // Two rotations within one millisecond: a suffix keeps names unique and still sorted.
        let mut n = 1;
        while self.path.with_file_name(&name).exists() {
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

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let (stem, ext) = self.parts();
        let target = self.rotated_name(&stem, &ext, SystemTime::now());
        std::fs::rename(&self.path, target)?;
        self.reopen()?;
        let mut old = self.rotated_files()?;
        while old.len() > self.keep {
            std::fs::remove_file(old.remove(0))?;
        }
        Ok(())
    }

    /// The rotated files beside the live one, oldest first.
    pub fn rotated_files(&self) -> io::Result<Vec<PathBuf>> {
        let (stem, ext) = self.parts();
        let prefix = format!("{stem}-");
        let dir = match self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => d.to_path_buf(),
            None => PathBuf::from("."),
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(&ext))
            })
            .collect();
        files.sort();
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_the_size_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/policy_action.log");
        let mut f = RotatingFile::open(&path, 100, 5).unwrap();
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
        let mut again = RotatingFile::open(&path, 100, 5).unwrap();
        again.write_line(&line).unwrap();
        assert_eq!(f.rotated_files().unwrap().len(), 5);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), line);
    }
}
