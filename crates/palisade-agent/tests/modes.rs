//! The modes of what the agent creates do not depend on the umask. The umask is process-wide, so
//! the files are created by this test binary run again as a child with the umask set (the variable
//! below tells it where and which umask).

use palisade_agent::metrics::Metrics;
use palisade_agent::observe::{hub, Hub};
use palisade_agent::policy_log::rotate::RotatingFile;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const CHILD: &str = "PALISADE_TEST_MODES_CHILD";

/// In the child: the log (rotated once) and the socket, each in a folder to create.
fn create_under_umask(dir: &Path, umask: libc::mode_t) {
    // SAFETY: umask has no memory effects; the child runs this one test only.
    unsafe { libc::umask(umask) };
    let mut log = RotatingFile::open(&dir.join("log/policy_action.log"), 10, 5, None).unwrap();
    log.write_line("first line\n").unwrap();
    log.write_line("second line\n").unwrap();
    let hub = Arc::new(Hub::default());
    hub::serve(
        &dir.join("run/observe.sock"),
        hub,
        None,
        Arc::new(Metrics::new()),
    )
    .unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn log_socket_and_folders_have_their_modes_under_any_umask() {
    if let Ok(spec) = std::env::var(CHILD) {
        let (umask, dir) = spec.split_once(':').unwrap();
        return create_under_umask(Path::new(dir), u32::from_str_radix(umask, 8).unwrap());
    }
    for umask in ["000", "077", "022"] {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "log_socket_and_folders_have_their_modes_under_any_umask",
            ])
            .env(CHILD, format!("{umask}:{}", dir.path().display()))
            .output()
            .unwrap();
        assert!(
            child.status.success(),
            "umask {umask}: the child failed: {}{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        let log = dir.path().join("log");
        let rotated: Vec<_> = std::fs::read_dir(&log)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(rotated.len(), 2, "umask {umask}: {rotated:?}");
        for file in &rotated {
            assert_eq!(mode(file), 0o640, "umask {umask}: {}", file.display());
        }
        let sock = dir.path().join("run/observe.sock");
        assert_eq!(mode(&sock), 0o660, "umask {umask}");
        for folder in [&log, &dir.path().join("run")] {
            assert_eq!(mode(folder), 0o750, "umask {umask}: {}", folder.display());
        }
    }
}
