//! Traffic between two lab pods, shared by the benchmarks that measure what the dataplane costs:
//! an echo server and the short-connection rate.

use palisade_dataplane::netns::in_netns;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The median of `v` (NaN-free samples).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Makes the close send a reset: no TIME_WAIT, so the client's ports can be reused at once (otherwise
/// a few seconds of connections exhaust the ephemeral range).
pub fn abort(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a valid socket with a correctly sized value.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
}

/// Short connections per second from `client`'s namespace to `server` over `seconds`: connect,
/// one byte each way, close with a reset.
pub fn conn_rate(client: &str, server: SocketAddr, seconds: f64) -> f64 {
    in_netns(client, move || {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed().as_secs_f64() < seconds {
            // A short request/response connection: connect, one byte each way, close.
            let mut s = match TcpStream::connect_timeout(&server, Duration::from_secs(1)) {
                Ok(s) => s,
                Err(e) => panic!("connect #{n} after {:?}: {e}", start.elapsed()),
            };
            let mut byte = [0u8; 1];
            s.write_all(b"x")
                .and_then(|_| s.read_exact(&mut byte))
                .expect("echo");
            abort(&s);
            drop(s);
            n += 1;
        }
        n as f64 / start.elapsed().as_secs_f64()
    })
    .join()
    .unwrap()
    .unwrap()
}

/// The server pod: echoes what each connection sends (reading in 64 KiB chunks, so bulk senders are
/// limited by the network path, not by the echo).
pub fn serve_echo(netns: &str, port: u16) {
    in_netns(netns, move || {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = stream;
                    let mut buf = vec![0u8; 1 << 16];
                    // Echo the first chunk (the short-connection byte), discard the rest.
                    if let Ok(n) = s.read(&mut buf) {
                        if n > 0 && s.write_all(&buf[..1]).is_ok() {
                            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                        }
                    }
                });
            }
        });
    })
    .join()
    .unwrap()
    .unwrap();
}
