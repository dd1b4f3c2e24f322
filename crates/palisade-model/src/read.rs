//! Reading manifest files as a root process should: bounded, regular files only inside a folder,
//! and no symlink leading out of it.
//!
//! The agent runs as root and re-reads its folder on every change, so whatever is placed there is
//! hostile until read: a FIFO would block a pass forever, `/dev/zero` would be read until memory
//! runs out, and a symlink to `/etc/shadow` would be read and its text echoed into a decode error.

use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What identifies a version of a file without reading it: which file (device and inode), its
/// length, and when its content and its inode last changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    device: u64,
    inode: u64,
    length: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

/// The stamp of a file's metadata.
pub(crate) fn stamp(meta: &Metadata) -> Stamp {
    Stamp {
        device: meta.dev(),
        inode: meta.ino(),
        length: meta.len(),
        modified: (meta.mtime(), meta.mtime_nsec()),
        changed: (meta.ctime(), meta.ctime_nsec()),
    }
}

impl Stamp {
    /// The file's length.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// The same file (device and inode), whatever its content.
    pub fn same_file(&self, other: &Stamp) -> bool {
        (self.device, self.inode) == (other.device, other.inode)
    }
}

/// Which symlinks inside a folder are followed to manifest files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Symlinks {
    /// Only those that lead to a file inside the folder (as a ConfigMap volume's links do).
    #[default]
    Inside,
    /// Any (for folders assembled from links to files elsewhere).
    Anywhere,
}

/// Why a file was not read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// It could not be opened or read.
    Io(io::Error),
    /// It is not something manifests are read from (a FIFO, a device, a socket).
    NotRegular(&'static str),
    /// A symlink that leads out of the folder.
    Outside(PathBuf),
    /// It is larger than the limit (of one file, or of `all` the files of a load).
    TooLarge { limit: u64, all: bool },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "cannot read: {e}"),
            ReadError::NotRegular(what) => {
                write!(f, "not read: {what}, not a regular file")
            }
            ReadError::Outside(target) => write!(
                f,
                "not read: a symlink leading out of the manifests folder (to {}); only links inside it are followed",
                target.display()
            ),
            ReadError::TooLarge { limit, all: false } => write!(
                f,
                "not read: larger than the limit of {limit} bytes (--max-file-size)"
            ),
            ReadError::TooLarge { limit, all: true } => write!(
                f,
                "not read: the files before it already hold the limit of {limit} bytes in all (--max-total-size)"
            ),
        }
    }
}

/// What kind of file `meta` describes, when it is not a regular file or a folder.
fn special(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        None
    }
}

/// Reads the regular file at `path` (not followed if it is a symlink: callers resolve links first),
/// at most `limit` bytes. Opened without blocking, so that a FIFO swapped in after its
/// entry was listed is refused rather than waited on.
pub(crate) fn regular_file(path: &Path, limit: u64) -> Result<(Vec<u8>, Stamp), ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => ReadError::NotRegular("a symlink"),
            _ => ReadError::Io(e),
        })?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if let Some(what) = special(&meta) {
        return Err(ReadError::NotRegular(what));
    }
    if meta.is_dir() {
        return Err(ReadError::NotRegular("a folder"));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge { limit, all: false });
    }
    Ok((bounded(file, limit)?, stamp(&meta)))
}

/// Reads a path the user named (a file, or a pipe such as `<(kubectl get ...)`), following links:
/// regular files and pipes, at most `limit` bytes; devices are refused.
pub(crate) fn named(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    match special(&meta) {
        None | Some("a FIFO") => bounded(file, limit),
        Some(what) => Err(ReadError::NotRegular(what)),
    }
}

/// Reads `source` to its end, failing (`FileTooLarge`) once it holds more than `limit` bytes:
/// what has no size to check beforehand (a pipe, standard input) may never end.
pub fn read_bounded(source: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    source
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("more than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

fn bounded(source: impl Read, limit: u64) -> Result<Vec<u8>, ReadError> {
    read_bounded(source, limit).map_err(|e| match e.kind() {
        io::ErrorKind::FileTooLarge => ReadError::TooLarge { limit, all: false },
        _ => ReadError::Io(e),
    })
}

/// True for a file name the loader reads in a folder: `*.yaml`, `*.yml` or `*.json`, not hidden
/// (editors' swap files and staged copies are not manifests).
pub fn is_manifest_name(name: &str) -> bool {
    !name.starts_with('.') && [".yaml", ".yml", ".json"].iter().any(|x| name.ends_with(x))
}

/// An entry of a manifests folder, as listing it found it.
pub(crate) enum Entry {
    /// A folder to descend into.
    Folder(PathBuf),
    /// A manifest file to read at `read_at` (the entry itself, or where its symlink leads), whose
    /// metadata gave `stamp`.
    File {
        path: PathBuf,
        read_at: PathBuf,
        stamp: Stamp,
    },
    /// A manifest entry that cannot be read.
    Refused(PathBuf, ReadError),
}

/// Lists `dir` (inside the folder whose canonical path is `root`) in name order: sub-folders and
/// `*.yaml`/`*.yml`/`*.json` entries, hidden ones skipped. Symlinked folders are never followed (a
/// link cycle must not recurse forever); symlinked files are followed as `symlinks` allows.
pub(crate) fn list(dir: &Path, root: &Path, symlinks: Symlinks) -> io::Result<Vec<Entry>> {
    let mut entries = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .collect::<Vec<_>>();
    entries.sort_by_key(|e| e.file_name());
    let mut out = Vec::new();
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let Ok(file_type) = e.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            out.push(Entry::Folder(path));
            continue;
        }
        if !is_manifest_name(&name) {
            continue;
        }
        let entry = if file_type.is_symlink() {
            match follow(&path, root, symlinks) {
                Ok(Some((read_at, stamp))) => Entry::File {
                    path,
                    read_at,
                    stamp,
                },
                Ok(None) => continue, // a link to a folder
                Err(e) => Entry::Refused(path, e),
            }
        } else {
            match e.metadata() {
                Ok(meta) => match special(&meta) {
                    Some(what) => Entry::Refused(path, ReadError::NotRegular(what)),
                    None => Entry::File {
                        read_at: path.clone(),
                        stamp: stamp(&meta),
                        path,
                    },
                },
                Err(e) => Entry::Refused(path, ReadError::Io(e)),
            }
        };
        out.push(entry);
    }
    Ok(out)
}

/// Where the symlink `path` leads and its target's stamp; `None` for a link to a folder.
fn follow(
    path: &Path,
    root: &Path,
    symlinks: Symlinks,
) -> Result<Option<(PathBuf, Stamp)>, ReadError> {
    let target = std::fs::canonicalize(path).map_err(ReadError::Io)?;
    if symlinks == Symlinks::Inside && !target.starts_with(root) {
        return Err(ReadError::Outside(target));
    }
    let meta = std::fs::metadata(&target).map_err(ReadError::Io)?;
    if meta.is_dir() {
        return Ok(None);
    }
    if let Some(what) = special(&meta) {
        return Err(ReadError::NotRegular(what));
    }
    Ok(Some((target, stamp(&meta))))
}

/// Reads a file whose entry was listed at `read_at`, checking that it is still the file listed;
/// its content and the stamp of what was read.
pub(crate) fn listed(
    read_at: &Path,
    listed: Stamp,
    limit: u64,
) -> Result<(Vec<u8>, Stamp), ReadError> {
    let (text, stamp) = regular_file(read_at, limit)?;
    // Replaced between listing and reading: read it again on the next pass.
    if !stamp.same_file(&listed) {
        return Err(ReadError::Io(io::Error::other(
            "replaced while being read; it is read again on the next pass",
        )));
    }
    Ok((text, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_reads_stop_at_the_limit() {
        assert_eq!(bounded(&b"abc"[..], 3).unwrap(), b"abc");
        assert!(matches!(
            bounded(&b"abcd"[..], 3),
            Err(ReadError::TooLarge { limit: 3, .. })
        ));
        // An endless source is read only up to the limit.
        let zero = std::io::repeat(0);
        assert!(matches!(
            bounded(zero, 1 << 20),
            Err(ReadError::TooLarge { .. })
        ));
    }

    #[test]
    fn devices_fifos_and_links_out_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let fifo = root.join("a.yaml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a path in our own temporary folder.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("b.yaml")).unwrap();
        std::os::unix::fs::symlink("c.yaml", root.join("link.yaml")).unwrap();
        std::fs::write(root.join("c.yaml"), "x: 1\n").unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("z.yaml")).unwrap();
        let entries = list(&root, &root, Symlinks::Inside).unwrap();
        let names: Vec<String> = entries
            .iter()
            .map(|e| match e {
                Entry::Folder(p) => format!("folder {}", p.display()),
                Entry::File { path, read_at, .. } => format!(
                    "file {} at {}",
                    path.file_name().unwrap().to_string_lossy(),
                    read_at.file_name().unwrap().to_string_lossy()
                ),
                Entry::Refused(p, e) => {
                    format!("refused {}: {e}", p.file_name().unwrap().to_string_lossy())
                }
            })
            .collect();
        assert_eq!(names.len(), 5, "{names:#?}");
        assert!(
            names[0].starts_with("refused a.yaml: not read: a FIFO"),
            "{names:#?}"
        );
        assert!(
            names[1].starts_with("refused b.yaml: not read: a symlink leading out"),
            "{names:#?}"
        );
        assert_eq!(names[2], "file c.yaml at c.yaml");
        assert_eq!(names[3], "file link.yaml at c.yaml");
        assert!(
            names[4].starts_with("refused z.yaml: not read: a symlink leading out"),
            "{names:#?}"
        );
        // Allowed anywhere, /dev/zero is still a device.
        let entries = list(&root, &root, Symlinks::Anywhere).unwrap();
        assert!(matches!(&entries[1], Entry::File { .. }));
        assert!(matches!(
            &entries[4],
            Entry::Refused(_, ReadError::NotRegular("a character device"))
        ));
        // Read directly, a FIFO is refused without blocking, and so is a symlink.
        assert!(matches!(
            regular_file(&fifo, 100),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            regular_file(&root.join("link.yaml"), 100),
            Err(ReadError::NotRegular("a symlink"))
        ));
        assert!(matches!(
            named(Path::new("/dev/zero"), 100),
            Err(ReadError::NotRegular("a character device"))
        ));
    }
}
