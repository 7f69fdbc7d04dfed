//! Where the gateway's listening sockets come from: bound from the `--web.listen-address`
//! values, or, with `--web.systemd-socket`, inherited from systemd (socket activation).
//!
//! Invariants: every listener handed out is a listening TCP socket (IPv4 or IPv6), so that TLS,
//! the web config and everything else apply to it exactly as to any other; the sockets systemd
//! passes are validated while only borrowed and owned only once all of them passed, so a wrong
//! `LISTEN_FDS` can never make this process close a descriptor it does not own; and they are
//! taken at most once per process.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::ops::Range;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// Set once the sockets systemd passed have been taken: owning a descriptor twice would close
/// it twice.
static ACTIVATION_FDS_TAKEN: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("invalid --web.listen-address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error(
        "invalid --web.listen-address {address:?}: vsock (AF_VSOCK) listen addresses are not supported by this gateway; listen on TCP and forward vsock to it (for example `socat VSOCK-LISTEN:9091,fork TCP:127.0.0.1:9091`)"
    )]
    Vsock { address: String },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    /// Upstream's message, with the reason added.
    #[error("no socket activation file descriptors found: {0}")]
    NoActivationFds(String),
    #[error("socket activation file descriptor {fd}: {reason}")]
    ActivationFd { fd: RawFd, reason: String },
}

/// Binds one `--web.listen-address` value the way Go's `net.Listen("tcp", ...)` reads it:
/// `:port` is every address, IPv4 and IPv6; a host name binds its first address, IPv4 first.
/// `vsock://` addresses, which upstream serves over AF_VSOCK, are refused with a message.
pub fn bind(address: &str) -> Result<TcpListener, ListenError> {
    if address.starts_with("vsock://") {
        return Err(ListenError::Vsock {
            address: address.to_string(),
        });
    }
    let invalid = |reason: &str| ListenError::Address {
        address: address.to_string(),
        reason: reason.to_string(),
    };
    let (host, port) = host_and_port(address)?;
    let bind_error = |source| ListenError::Bind {
        address: address.to_string(),
        source,
    };
    if host.is_empty() {
        // Dual-stack where IPv6 exists, IPv4 only where it does not.
        let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
        return listen(any6, true)
            .or_else(|_| listen(SocketAddr::from(([0, 0, 0, 0], port)), false))
            .map_err(bind_error);
    }
    let mut candidates: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| invalid(&e.to_string()))?
        .collect();
    candidates.sort_by_key(|a| a.is_ipv6());
    let first = candidates
        .first()
        .ok_or_else(|| invalid("host has no address"))?;
    listen(*first, false).map_err(bind_error)
}

/// Splits a `--web.listen-address` value as Go's `net.SplitHostPort` does: the host without
/// the brackets of an IPv6 literal (empty for every address) and the port.
pub fn host_and_port(address: &str) -> Result<(&str, u16), ListenError> {
    let invalid = |reason: &str| ListenError::Address {
        address: address.to_string(),
        reason: reason.to_string(),
    };
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| invalid("missing port"))?;
    let port: u16 = port.parse().map_err(|_| invalid("invalid port"))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

fn listen(address: SocketAddr, dual_stack: bool) -> std::io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The listening sockets systemd passed to this process (`sd_listen_fds(3)`): descriptors 3 to
/// 3 + `LISTEN_FDS` - 1, provided `LISTEN_PID` names this process. Like upstream, at least one
/// is required; unlike upstream, each must be a listening TCP socket (a Unix, datagram or
/// `Accept=yes` socket is refused with a message instead of failing later).
pub fn systemd_listeners() -> Result<Vec<TcpListener>, ListenError> {
    let fds = activation_fds(
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::process::id(),
    )?;
    for fd in fds.clone() {
        check_listener(fd)?;
    }
    if ACTIVATION_FDS_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(ListenError::NoActivationFds(
            "they were already taken by this process".to_string(),
        ));
    }
    let mut listeners = Vec::new();
    for fd in fds {
        // SAFETY: `check_listener` found `fd` open and a listening socket. systemd passed it
        // to this process (LISTEN_PID is ours), nothing else in the process owns it, and the
        // flag above makes this the only place that ever takes ownership of it.
        let socket = Socket::from(unsafe { OwnedFd::from_raw_fd(fd) });
        // Not for the children we never start, but so no descriptor leaks into one if we did.
        socket
            .set_cloexec(true)
            .map_err(|err| activation_fd_error(fd, err))?;
        listeners.push(socket.into());
    }
    Ok(listeners)
}

/// Which descriptors the environment says systemd passed, as `sd_listen_fds(3)` reads it.
fn activation_fds(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    own_pid: u32,
) -> Result<Range<RawFd>, ListenError> {
    let none = |reason: String| Err(ListenError::NoActivationFds(reason));
    let Some(listen_pid) = listen_pid else {
        return none("LISTEN_PID is not set (start the gateway from a systemd socket unit)".into());
    };
    if listen_pid.parse::<u32>().ok() != Some(own_pid) {
        return none(format!(
            "LISTEN_PID={listen_pid} is not this process ({own_pid}); the sockets were meant for another"
        ));
    }
    let count = match listen_fds.map(str::parse::<RawFd>) {
        Some(Ok(count)) if count > 0 => count,
        _ => {
            return none(format!(
                "LISTEN_FDS={} does not name any",
                listen_fds.unwrap_or("(not set)")
            ));
        }
    };
    let end = LISTEN_FDS_START
        .checked_add(count)
        .ok_or_else(|| ListenError::NoActivationFds(format!("LISTEN_FDS={count} is too large")))?;
    Ok(LISTEN_FDS_START..end)
}

/// Whether `fd` is an open, listening TCP stream socket, checked without owning it.
fn check_listener(fd: RawFd) -> Result<(), ListenError> {
    let refuse = |reason: &str| ListenError::ActivationFd {
        fd,
        reason: reason.to_string(),
    };
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails with EBADF if `fd` is not open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(activation_fd_error(fd, std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is open (checked above), and the borrow ends within this function, before
    // anything could close it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = SockRef::from(&borrowed);
    let kind = socket.r#type().map_err(|err| {
        if err.raw_os_error() == Some(libc::ENOTSOCK) {
            refuse("not a socket")
        } else {
            activation_fd_error(fd, err)
        }
    })?;
    if kind != Type::STREAM {
        return Err(refuse(
            "not a stream socket (HTTP needs ListenStream= in the socket unit)",
        ));
    }
    let local = socket
        .local_addr()
        .map_err(|err| activation_fd_error(fd, err))?;
    if local.as_socket().is_none() {
        return Err(refuse(
            "not a TCP socket; only TCP sockets (ListenStream=<port> or <address>:<port>) are supported",
        ));
    }
    if !socket
        .is_listener()
        .map_err(|err| activation_fd_error(fd, err))?
    {
        return Err(refuse(
            "not listening (a socket unit with Accept=yes passes connections; use Accept=no)",
        ));
    }
    Ok(())
}

fn activation_fd_error(fd: RawFd, err: std::io::Error) -> ListenError {
    ListenError::ActivationFd {
        fd,
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert!(bind("127.0.0.1:0").is_ok());
        assert!(bind("[::1]:0").is_ok() || bind("localhost:0").is_ok());
        assert!(matches!(bind("9091"), Err(ListenError::Address { .. })));
        assert!(matches!(
            bind("127.0.0.1:x"),
            Err(ListenError::Address { .. })
        ));
        let taken = bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        assert!(matches!(
            bind(&format!("127.0.0.1:{port}")),
            Err(ListenError::Bind { .. })
        ));
    }

    #[test]
    fn vsock_addresses_are_refused_with_a_reason() {
        for address in ["vsock://:9091", "vsock://3:9091"] {
            let err = bind(address).unwrap_err();
            assert!(matches!(err, ListenError::Vsock { .. }), "{err:?}");
            assert!(err.to_string().contains("not supported"), "{err}");
        }
    }

    #[test]
    fn activation_environment() {
        assert_eq!(activation_fds(Some("42"), Some("2"), 42).unwrap(), 3..5);
        assert_eq!(activation_fds(Some("42"), Some("1"), 42).unwrap(), 3..4);
        for (pid, fds, reason) in [
            (None, Some("1"), "LISTEN_PID is not set"),
            (
                Some("41"),
                Some("1"),
                "LISTEN_PID=41 is not this process (42)",
            ),
            (Some("x"), Some("1"), "LISTEN_PID=x is not this process"),
            (Some("42"), None, "LISTEN_FDS=(not set)"),
            (Some("42"), Some("0"), "LISTEN_FDS=0"),
            (Some("42"), Some("-1"), "LISTEN_FDS=-1"),
            (Some("42"), Some("many"), "LISTEN_FDS=many"),
            (Some("42"), Some("2147483647"), "too large"),
        ] {
            let err = activation_fds(pid, fds, 42).unwrap_err().to_string();
            assert!(
                err.starts_with("no socket activation file descriptors found: ")
                    && err.contains(reason),
                "{pid:?} {fds:?}: {err}"
            );
        }
    }

    #[test]
    fn inherited_descriptors_are_checked() {
        use std::os::fd::AsRawFd;
        let listener = bind("127.0.0.1:0").unwrap();
        assert!(check_listener(listener.as_raw_fd()).is_ok());

        let unbound = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        unbound
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let err = check_listener(unbound.as_raw_fd()).unwrap_err().to_string();
        assert!(err.contains("not listening"), "{err}");

        let datagram = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = check_listener(datagram.as_raw_fd())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a stream socket"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let unix = std::os::unix::net::UnixListener::bind(dir.path().join("s")).unwrap();
        let err = check_listener(unix.as_raw_fd()).unwrap_err().to_string();
        assert!(err.contains("not a TCP socket"), "{err}");

        let file = std::fs::File::open("/dev/null").unwrap();
        let err = check_listener(file.as_raw_fd()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "socket activation file descriptor {}: ",
                file.as_raw_fd()
            )),
            "{err}"
        );
    }
}
