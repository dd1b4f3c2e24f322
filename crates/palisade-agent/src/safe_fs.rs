//! Creating the agent's files and folders safely. The agent runs as root and writes where other users
//! may have planted links, so: the last path component is never followed (`O_NOFOLLOW`), only a
//! regular file the agent owns, with no other hard link, is appended to, modes are set explicitly
//! after creation (the umask neither widens nor narrows them), and a folder is written in only when
//! no other user can rename entries in it — logrotate's and systemd-tmpfiles' rules, in short.

use nix::libc;
use std::fmt::Display;
use std::fs::{self, DirBuilder, File, Metadata, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the policy action log files: the agent writes, its group reads.
pub const LOG_MODE: u32 = 0o640;
/// Mode of the observe socket: the agent's group may connect.
pub const SOCKET_MODE: u32 = 0o660;
/// Mode of the folders the agent creates: its group may enter them.
pub const DIR_MODE: u32 = 0o750;

/// The group `spec` names: a group name, or a numeric GID (which need not have a name, as with
/// `chown`).
pub fn group_id(spec: &str) -> Result<u32, String> {
    if let Ok(gid) = spec.parse::<u32>() {
        // (gid_t)-1 means "leave the group unchanged" to chown.
        return (gid != u32::MAX)
            .then_some(gid)
            .ok_or_else(|| format!("{gid} is not a valid GID"));
    }
    match nix::unistd::Group::from_name(spec) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(format!(
            "unknown group {spec:?}; give a group name from /etc/group or a numeric GID"
        )),
        Err(e) => Err(format!("looking up group {spec:?}: {e}")),
    }
}

/// An error about `path`: `<path>: <why>`.
pub(crate) fn refused(path: &Path, why: impl Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: {why}", path.display()),
    )
}

/// Prefixes an I/O error with the path it is about.
pub(crate) fn at(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// What kind of file `meta` describes, for error messages.
pub(crate) fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "a regular file"
    }
}

/// The agent's effective user id: the owner its own files must have.
pub(crate) fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The folder `path` is in (`.` for a bare file name).
pub(crate) fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes `path`'s folder ready to hold one of the agent's files and returns it. A missing folder
/// (and its missing parents) is created with [`DIR_MODE`] and `group`. An existing one is refused
/// when it is a symbolic link, not a folder, writable by every user without the sticky bit, or owned
/// by a user other than root and the agent: whoever can rename entries in it could swap the agent's
/// file for something else between two operations.
pub fn prepare_parent(path: &Path, group: Option<u32>) -> io::Result<PathBuf> {
    let dir = parent(path);
    match fs::symlink_metadata(&dir) {
        Ok(meta) => check_dir(&dir, &meta)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => create_dir(&dir, group)?,
        Err(e) => return Err(at(&dir)(e)),
    }
    Ok(dir)
}

/// Replaces `path` whole: `write` fills a new file beside it (in a folder [`prepare_parent`]
/// accepts), which is synced and renamed into place, so that a reader sees the old content or the
/// new, never a part. The bytes written.
pub fn replace(
    path: &Path,
    write: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
) -> io::Result<u64> {
    let dir = prepare_parent(path, None)?;
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy());
    let mut staged = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempfile_in(&dir)
        .map_err(at(&dir))?;
    let mut out = io::BufWriter::new(staged.as_file_mut());
    write(&mut out)?;
    io::Write::flush(&mut out)?;
    drop(out);
    staged.as_file().sync_all()?;
    let bytes = staged.as_file().metadata()?.len();
    staged.persist(path).map_err(|e| at(path)(e.error))?;
    Ok(bytes)
}

fn check_dir(dir: &Path, meta: &Metadata) -> io::Result<()> {
    let mode = meta.mode();
    if meta.file_type().is_symlink() {
        return Err(refused(
            dir,
            "is a symbolic link; give the real folder (the agent follows no link where it creates files)",
        ));
    }
    if !meta.is_dir() {
        return Err(refused(dir, format!("is {}, not a folder", kind(meta))));
    }
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(refused(
            dir,
            "is writable by every user and not sticky: anyone could replace the agent's files in \
             it; use a folder only root can write to (or make it sticky: chmod +t)",
        ));
    }
    let (owner, me) = (meta.uid(), euid());
    if owner != 0 && owner != me {
        return Err(refused(
            dir,
            format!(
                "is owned by uid {owner}, who could replace the agent's files in it; use a folder \
                 owned by root or uid {me}"
            ),
        ));
    }
    Ok(())
}

/// Creates `dir` and its missing parents with [`DIR_MODE`] and `group`.
fn create_dir(dir: &Path, group: Option<u32>) -> io::Result<()> {
    if let Some(up) = dir.parent().filter(|d| !d.as_os_str().is_empty()) {
        if fs::symlink_metadata(up).is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
            create_dir(up, group)?;
        }
    }
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {}
        // Created by someone else meanwhile: used only if it passes the checks.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(dir).map_err(at(dir))?;
            return check_dir(dir, &meta);
        }
        Err(e) => return Err(at(dir)(e)),
    }
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
        .open(dir)
        .map_err(at(dir))?;
    set_group_and_mode(&handle, group, DIR_MODE).map_err(at(dir))
}

/// Gives an open file `group` (when set) and then exactly `mode` (a chown may clear mode bits).
fn set_group_and_mode(file: &File, group: Option<u32>, mode: u32) -> io::Result<()> {
    if let Some(gid) = group {
        std::os::unix::fs::fchown(file, None, Some(gid))?;
    }
    file.set_permissions(Permissions::from_mode(mode))
}

/// Opens `path` for appending, creating it if needed, as a file with [`LOG_MODE`] and `group`
/// (also when it existed with another mode). Refused: a symbolic link, anything but a regular
/// file (a FIFO does not block the open), a file with other hard links or owned by another user.
/// The folder is not checked here: see [`prepare_parent`].
pub fn open_append(path: &Path, group: Option<u32>) -> io::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(LOG_MODE)
        // O_NONBLOCK: opening a FIFO for writing would wait for a reader; it does nothing to
        // regular files, the only kind kept.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refused(
                path,
                "is a symbolic link; the agent follows no link to the files it writes",
            ),
            Some(libc::ENXIO) => refused(path, "is not a regular file (a FIFO or socket)"),
            _ => at(path)(e),
        })?;
    let meta = file.metadata().map_err(at(path))?;
    check_own_file(path, &meta)?;
    set_group_and_mode(&file, group, LOG_MODE).map_err(at(path))?;
    Ok(file)
}

fn check_own_file(path: &Path, meta: &Metadata) -> io::Result<()> {
    if !meta.is_file() {
        return Err(refused(
            path,
            format!("is {}, not a regular file; the log must be one", kind(meta)),
        ));
    }
    if meta.nlink() > 1 {
        return Err(refused(
            path,
            format!(
                "has {} hard links; the agent writes no file that is also elsewhere",
                meta.nlink()
            ),
        ));
    }
    let (owner, me) = (meta.uid(), euid());
    if owner != me {
        return Err(refused(
            path,
            format!("is owned by uid {owner}, not by the agent (uid {me}); remove it or chown it"),
        ));
    }
    Ok(())
}

/// True for a regular file (not followed through a link) the agent owns: what it may delete.
pub fn is_own_regular_file(meta: &Metadata) -> bool {
    meta.is_file() && meta.uid() == euid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn groups_by_name_or_number() {
        assert_eq!(group_id("root"), Ok(0));
        assert_eq!(group_id("4242"), Ok(4242));
        assert!(group_id("4294967295").is_err());
        let unknown = group_id("no-such-group-palisade").unwrap_err();
        assert!(unknown.contains("unknown group"), "{unknown}");
    }

    #[test]
    fn a_symlink_is_never_followed_and_its_target_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("shadow");
        fs::write(&victim, "secret\n").unwrap();
        fs::set_permissions(&victim, Permissions::from_mode(0o600)).unwrap();
        let log = dir.path().join("policy_action.log");
        symlink(&victim, &log).unwrap();
        let e = open_append(&log, Some(4242)).unwrap_err().to_string();
        assert!(e.contains("policy_action.log: is a symbolic link"), "{e}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "secret\n");
        let meta = fs::metadata(&victim).unwrap();
        assert_eq!((meta.mode() & 0o777, meta.gid()), (0o600, 0));
        // A dangling link: the open must not create its target either.
        let elsewhere = dir.path().join("created-through-link");
        let dangling = dir.path().join("dangling.log");
        symlink(&elsewhere, &dangling).unwrap();
        assert!(open_append(&dangling, None).is_err());
        assert!(!elsewhere.exists());
    }

    #[test]
    fn only_a_regular_file_of_the_agent_with_one_link() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.log");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let e = open_append(&fifo, None).unwrap_err().to_string();
        assert!(e.contains("fifo.log: is not a regular file"), "{e}");
        let e = open_append(dir.path(), None).unwrap_err().to_string();
        assert!(e.contains("Is a directory"), "{e}");

        let victim = dir.path().join("victim");
        fs::write(&victim, "x").unwrap();
        let linked = dir.path().join("linked.log");
        fs::hard_link(&victim, &linked).unwrap();
        let e = open_append(&linked, None).unwrap_err().to_string();
        assert!(e.contains("linked.log: has 2 hard links"), "{e}");

        let theirs = dir.path().join("theirs.log");
        fs::write(&theirs, "").unwrap();
        std::os::unix::fs::chown(&theirs, Some(1234), None).unwrap();
        let e = open_append(&theirs, None).unwrap_err().to_string();
        assert!(e.contains("theirs.log: is owned by uid 1234"), "{e}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "x");
    }

    #[test]
    fn modes_and_group_are_set_whatever_the_file_had() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        fs::write(&log, "old\n").unwrap();
        fs::set_permissions(&log, Permissions::from_mode(0o666)).unwrap();
        open_append(&log, Some(4242)).unwrap();
        let meta = fs::metadata(&log).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.gid()), (LOG_MODE, 4242));
        assert_eq!(
            fs::read_to_string(&log).unwrap(),
            "old\n",
            "appended, not truncated"
        );
    }

    #[test]
    fn missing_folders_are_created_0750_with_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a/b/policy_action.log");
        assert_eq!(
            prepare_parent(&log, Some(4242)).unwrap(),
            dir.path().join("a/b")
        );
        for d in ["a", "a/b"] {
            let meta = fs::metadata(dir.path().join(d)).unwrap();
            assert_eq!((meta.mode() & 0o7777, meta.gid()), (DIR_MODE, 4242), "{d}");
        }
        assert_eq!(
            prepare_parent(Path::new("bare.log"), None).unwrap(),
            Path::new(".")
        );
    }

    #[test]
    fn unsafe_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        symlink(&real, &link).unwrap();
        let e = prepare_parent(&link.join("x.log"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("link: is a symbolic link"), "{e}");

        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        let e = prepare_parent(&file.join("x.log"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("file: is a regular file, not a folder"), "{e}");

        fs::set_permissions(&real, Permissions::from_mode(0o777)).unwrap();
        let e = prepare_parent(&real.join("x.log"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("writable by every user and not sticky"), "{e}");
        fs::set_permissions(&real, Permissions::from_mode(0o1777)).unwrap();
        prepare_parent(&real.join("x.log"), None).expect("sticky, like /tmp");

        fs::set_permissions(&real, Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&real, Some(1234), None).unwrap();
        let e = prepare_parent(&real.join("x.log"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is owned by uid 1234"), "{e}");
        assert_eq!(mode(&real), 0o755, "an existing folder keeps its mode");
    }
}
