//! The kernel's connection tracking, spoken to over the same netfilter netlink socket as nf_tables
//! and NFLOG. The table accepts `established,related` first, so a policy change judges only new
//! connections; forgetting the tracked ones makes every flow's next packet new again.

use crate::netlink::Socket;
use crate::netns::within_netns;
use std::time::Duration;

/// Forgets every connection the kernel tracks in network namespace `netns` (a conntrack flush):
/// the next packet of any flow is judged as a new connection. Probing right after a policy change
/// then measures what the policy does to new connections, not flows that earlier probes left
/// established (a UDP probe's flow stays tracked for 30 s, and a later probe can reuse its port).
pub fn forget_connections(netns: &str) -> std::io::Result<()> {
    const NFNL_SUBSYS_CTNETLINK: u16 = 1;
    const IPCTNL_MSG_CT_DELETE: u16 = 2;
    within_netns(Some(netns), || {
        let mut socket = Socket::open()?;
        socket.set_receive_timeout(Duration::from_secs(5))?;
        let kind = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
        // No tuple: every entry; family AF_UNSPEC: IPv4 and IPv6.
        socket.request(kind, libc::AF_UNSPEC as u8, 0, &[], |_| {})
    })
}
