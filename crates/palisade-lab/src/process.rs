//! The processes the lab starts, recorded so that `lab down` signals them and only them: a PID alone
//! may belong to another process by the time the lab is taken down (after a crash or a reboot), so
//! each is recorded with its start time and the boot it started in, and re-verified before every
//! signal, through a pidfd that pins the process between the check and the signal.

use nix::errno::Errno;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long `stop` waits after SIGTERM before it sends SIGKILL.
const GRACE: Duration = Duration::from_secs(1);

/// A process the lab started, identified beyond its PID: a process that later gets the same PID
/// has another start time, and one from before a reboot another boot id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabProcess {
    pub pid: u32,
    /// When it started, in clock ticks since boot (field 22 of `/proc/PID/stat`).
    pub start_time: u64,
    /// `/proc/sys/kernel/random/boot_id` when it was recorded.
    pub boot_id: String,
}

/// An entry of [`crate::Lab::processes`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecordedProcess {
    Identified(LabProcess),
    /// A bare PID from a state file written before identities were recorded: what holds that PID
    /// now cannot be told apart from what the lab started, so it is never signalled.
    BarePid(u32),
}

/// What a recorded process is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessStatus {
    Running,
    /// Exited (a zombie counts as exited), or started in an earlier boot.
    Gone,
    /// Exited, and another process holds its PID now.
    PidReused,
    /// Recorded as a bare PID: its identity cannot be verified.
    Unverifiable,
}

/// What [`stop`] did with a recorded process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Exited after SIGTERM.
    Terminated,
    /// Still running after the grace period: SIGKILLed.
    Killed,
    /// Not signalled, because it is not (or cannot be shown to be) the process the lab started.
    Skipped(ProcessStatus),
    /// The kernel refused: `call` (`pidfd_open`, or the signal sent) failed with `errno`.
    Failed { call: &'static str, errno: Errno },
}

impl std::fmt::Display for ProcessStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProcessStatus::Running => "running",
            ProcessStatus::Gone => "gone",
            ProcessStatus::PidReused => "pid reused by another process",
            ProcessStatus::Unverifiable => {
                "unverifiable (recorded as a bare PID by an older palisade; never signalled)"
            }
        })
    }
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::Terminated => f.write_str("stopped by SIGTERM"),
            Stopped::Killed => write!(f, "killed: still running {GRACE:?} after SIGTERM"),
            Stopped::Skipped(ProcessStatus::Gone) => f.write_str("already gone"),
            Stopped::Skipped(ProcessStatus::Unverifiable) => f.write_str(
                "not signalled: recorded as a bare PID by an older palisade, its identity cannot be verified",
            ),
            Stopped::Skipped(status) => write!(f, "not signalled: {status}"),
            Stopped::Failed { call, errno } => write!(f, "cannot be signalled: {call}: {errno}"),
        }
    }
}

impl LabProcess {
    /// The identity of running process `pid`. Call it while `pid` cannot be reused: for a child
    /// not yet waited for, right after it was spawned.
    pub fn of(pid: u32) -> std::io::Result<LabProcess> {
        let stat = read_stat(pid)?;
        Ok(LabProcess {
            pid,
            start_time: stat.start_time,
            boot_id: boot_id()?,
        })
    }

    pub fn status(&self) -> ProcessStatus {
        if boot_id().ok().as_deref() != Some(self.boot_id.as_str()) {
            return ProcessStatus::Gone;
        }
        match read_stat(self.pid) {
            Err(_) => ProcessStatus::Gone,
            Ok(stat) if stat.start_time != self.start_time => ProcessStatus::PidReused,
            Ok(stat) if matches!(stat.state, 'Z' | 'X' | 'x') => ProcessStatus::Gone,
            Ok(_) => ProcessStatus::Running,
        }
    }

    /// Sends `signal` if this is still the process the lab started. The pidfd is opened before the
    /// check: it then refers to the verified process even if that exits and its PID is reused
    /// before the signal, which the kernel then refuses instead of delivering elsewhere.
    fn send(&self, signal: Signal) -> Result<(), Stopped> {
        let gone = Stopped::Skipped(ProcessStatus::Gone);
        let pid = libc::pid_t::try_from(self.pid).map_err(|_| gone.clone())?;
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => Some(fd),
            // Before Linux 5.3: check, then signal by PID (a window of microseconds remains).
            Err(Errno::ENOSYS) => None,
            // No such process, or the PID is now a thread of another one.
            Err(e) => {
                return Err(match self.status() {
                    ProcessStatus::Running => Stopped::Failed {
                        call: "pidfd_open",
                        errno: e,
                    },
                    status => Stopped::Skipped(status),
                })
            }
        };
        match self.status() {
            ProcessStatus::Running => {}
            status => return Err(Stopped::Skipped(status)),
        }
        let sent = match &pidfd {
            Some(fd) => pidfd_send_signal(fd, signal),
            None => nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal),
        };
        match sent {
            Ok(()) => Ok(()),
            Err(Errno::ESRCH) => Err(gone),
            Err(errno) => Err(Stopped::Failed {
                call: signal.as_str(),
                errno,
            }),
        }
    }
}

impl RecordedProcess {
    pub fn pid(&self) -> u32 {
        match self {
            RecordedProcess::Identified(p) => p.pid,
            RecordedProcess::BarePid(pid) => *pid,
        }
    }

    pub fn status(&self) -> ProcessStatus {
        match self {
            RecordedProcess::Identified(p) => p.status(),
            RecordedProcess::BarePid(_) => ProcessStatus::Unverifiable,
        }
    }

    fn send(&self, signal: Signal) -> Result<(), Stopped> {
        match self {
            RecordedProcess::Identified(p) => p.send(signal),
            RecordedProcess::BarePid(_) => Err(Stopped::Skipped(ProcessStatus::Unverifiable)),
        }
    }
}

/// Sends SIGTERM to each process that is still the one the lab started, then SIGKILL to those
/// still running after a grace period; the identity is verified again before each signal. Returns
/// what happened to each, in order.
pub fn stop(processes: &[RecordedProcess]) -> Vec<Stopped> {
    let termed: Vec<Result<(), Stopped>> =
        processes.iter().map(|p| p.send(Signal::SIGTERM)).collect();
    let running = || {
        processes
            .iter()
            .zip(&termed)
            .any(|(p, t)| t.is_ok() && p.status() == ProcessStatus::Running)
    };
    let deadline = Instant::now() + GRACE;
    while running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    processes
        .iter()
        .zip(termed)
        .map(|(p, termed)| match termed {
            Err(outcome) => outcome,
            Ok(()) => match p.send(Signal::SIGKILL) {
                Ok(()) => Stopped::Killed,
                Err(Stopped::Skipped(_)) => Stopped::Terminated,
                Err(failed) => failed,
            },
        })
        .collect()
}

/// The fields of `/proc/PID/stat` the lab needs.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    state: char,
    start_time: u64,
}

fn read_stat(pid: u32) -> std::io::Result<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat: unexpected format"),
        )
    })
}

/// Parses `pid (comm) state ppid ...`. The command name may hold spaces and parentheses, so the
/// fields are those after the last `)`: the state is field 3, the start time field 22.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let mut chars = state.chars();
    let state = chars.next().filter(|_| chars.next().is_none())?;
    let start_time = fields.nth(22 - 4)?.parse().ok()?;
    Some(Stat { state, start_time })
}

fn boot_id() -> std::io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_string())
}

fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a PID and flags, and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = Errno::result(fd)?;
    // SAFETY: the descriptor is new and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

fn pidfd_send_signal(pidfd: &OwnedFd, signal: Signal) -> Result<(), Errno> {
    // SAFETY: a valid pidfd, a signal number, no siginfo (as kill(2) would send) and no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stat line with `comm` and start time `start`, as the kernel writes it.
    fn stat_line(comm: &str, state: char, start: u64) -> String {
        let middle: Vec<String> = (4..22).map(|i| i.to_string()).collect();
        format!(
            "4242 ({comm}) {state} {} {start} 23 24 25\n",
            middle.join(" ")
        )
    }

    #[test]
    fn the_stat_fields_follow_the_last_parenthesis_of_the_command_name() {
        for comm in ["sleep", "a b", "x) S 1 2 3 (y", ") )", "(", ""] {
            assert_eq!(
                parse_stat(&stat_line(comm, 'S', 987_654_321)),
                Some(Stat {
                    state: 'S',
                    start_time: 987_654_321
                }),
                "{comm:?}"
            );
        }
        assert_eq!(parse_stat(&stat_line("z", 'Z', 7)).unwrap().state, 'Z');
    }

    #[test]
    fn a_malformed_stat_line_is_rejected() {
        let good = stat_line("sleep", 'S', 5);
        let short = good.split(" 5 23").next().unwrap().to_string();
        for bad in [
            "",
            "4242 sleep S 1 2 3",
            &short, // ends before the start time
            &good.replace(" 5 23", " 5x 23"),
            &good.replace(") S ", ") SR "),
            &good.replace(" 5 23", " -5 23"),
        ] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn this_process_is_running_and_a_changed_identity_is_not() {
        let me = LabProcess::of(std::process::id()).unwrap();
        assert_eq!(me.status(), ProcessStatus::Running);
        let reused = LabProcess {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert_eq!(reused.status(), ProcessStatus::PidReused);
        let other_boot = LabProcess {
            boot_id: "00000000-0000-0000-0000-000000000000".into(),
            ..me
        };
        assert_eq!(other_boot.status(), ProcessStatus::Gone);
    }

    /// A child killed and reaped when dropped, whatever the test did.
    struct Reaped(std::process::Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn stop_signals_only_the_process_it_recorded_and_kills_it_after_the_grace() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let mut sleep = std::process::Command::new("sleep");
        sleep.arg("30");
        // SAFETY: one async-signal-safe call between fork and exec; the disposition survives exec.
        unsafe {
            sleep.pre_exec(|| {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                Ok(())
            });
        }
        let mut child = Reaped(sleep.spawn().unwrap());
        let real = LabProcess::of(child.0.id()).unwrap();
        let impostors = [
            RecordedProcess::Identified(LabProcess {
                start_time: real.start_time - 1,
                ..real.clone()
            }),
            RecordedProcess::Identified(LabProcess {
                boot_id: "00000000-0000-0000-0000-000000000000".into(),
                ..real.clone()
            }),
            RecordedProcess::BarePid(real.pid),
        ];
        assert_eq!(
            stop(&impostors),
            [
                Stopped::Skipped(ProcessStatus::PidReused),
                Stopped::Skipped(ProcessStatus::Gone),
                Stopped::Skipped(ProcessStatus::Unverifiable),
            ]
        );
        assert!(child.0.try_wait().unwrap().is_none(), "signalled");

        let started = Instant::now();
        assert_eq!(
            stop(&[RecordedProcess::Identified(real)]),
            [Stopped::Killed]
        );
        assert!(started.elapsed() >= GRACE);
        assert_eq!(child.0.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_process_that_exits_on_sigterm_is_not_waited_for_nor_killed() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = Reaped(
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap(),
        );
        let p = RecordedProcess::Identified(LabProcess::of(child.0.id()).unwrap());
        let started = Instant::now();
        // Not reaped yet, the child is a zombie after SIGTERM: that counts as exited.
        assert_eq!(stop(&[p]), [Stopped::Terminated]);
        assert!(started.elapsed() < GRACE);
        assert_eq!(child.0.wait().unwrap().signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn a_refused_signal_says_which_call_failed_and_why() {
        let refused = Stopped::Failed {
            call: Signal::SIGTERM.as_str(),
            errno: Errno::EPERM,
        };
        assert_eq!(
            refused.to_string(),
            "cannot be signalled: SIGTERM: EPERM: Operation not permitted"
        );
    }

    #[test]
    fn an_old_state_files_bare_pids_load_as_unverifiable() {
        let old: Vec<RecordedProcess> = serde_json::from_str("[123, 456]").unwrap();
        assert_eq!(
            old,
            [RecordedProcess::BarePid(123), RecordedProcess::BarePid(456)]
        );
        assert_eq!(old[0].status(), ProcessStatus::Unverifiable);
        let new = RecordedProcess::Identified(LabProcess {
            pid: 7,
            start_time: 8,
            boot_id: "b".into(),
        });
        let json = serde_json::to_string(&new).unwrap();
        assert_eq!(json, r#"{"pid":7,"start_time":8,"boot_id":"b"}"#);
        assert_eq!(serde_json::from_str::<RecordedProcess>(&json).unwrap(), new);
    }
}
