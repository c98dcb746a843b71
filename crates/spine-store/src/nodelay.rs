//! TCP_NODELAY on the database connections, which sqlx 0.9.0 no longer sets
//! (transact-rs/sqlx#4335; fixed upstream by #4336, not released when this was written).
//!
//! Without it, Nagle's algorithm holds a small write that follows a large one until the server
//! acknowledges the large one, and the server delays that acknowledgement (up to 40 ms on
//! Linux). sqlx writes and flushes each COPY message separately, so every COPY statement ended
//! with such a stall: staging the 1,000,000-row benchmark file over TCP took 14.5 s, against
//! 8.3 s over a Unix socket (bench/README.md, session 9).
//!
//! sqlx gives no access to its socket, so [`PgPoolOptionsExt::tcp_nodelay`] sets the option,
//! after each new connection, on every TCP socket of this process whose peer is the database's
//! port (reading `/proc/self/fd`; elsewhere it does nothing). Setting it on a socket that already
//! has it, or on another client's socket to the same port, is harmless. Remove this once a sqlx
//! release sets TCP_NODELAY itself.

use std::os::unix::ffi::OsStrExt;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub trait PgPoolOptionsExt {
    /// Sets TCP_NODELAY on every connection the pool opens to `options`' server over TCP.
    fn tcp_nodelay(self, options: &PgConnectOptions) -> Self;
}

impl PgPoolOptionsExt for PgPoolOptions {
    fn tcp_nodelay(self, options: &PgConnectOptions) -> Self {
        if options.get_socket().is_some() || options.get_host().starts_with('/') {
            return self;
        }
        let port = options.get_port();
        self.after_connect(move |_, _| {
            Box::pin(async move {
                set_tcp_nodelay_to_port(port);
                Ok(())
            })
        })
    }
}

/// Sets TCP_NODELAY on this process's TCP sockets connected to `port`; returns how many.
pub fn set_tcp_nodelay_to_port(port: u16) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut set = 0;
    for entry in dir.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let is_socket =
            std::fs::read_link(entry.path()).is_ok_and(|t| t.as_os_str().as_bytes().starts_with(b"socket:"));
        if is_socket && peer_port(fd) == Some(port) && set_nodelay(fd) {
            set += 1;
        }
    }
    set
}

#[allow(unsafe_code)]
fn peer_port(fd: i32) -> Option<u16> {
    // SAFETY: getpeername writes at most `len` bytes into the zeroed storage; a closed or
    // reused descriptor makes it fail or answer for that socket, which is checked below.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    if unsafe { libc::getpeername(fd, (&raw mut addr).cast(), &mut len) } != 0 {
        return None;
    }
    match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: libc::sockaddr_in = unsafe { std::ptr::read((&raw const addr).cast()) };
            Some(u16::from_be(a.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: libc::sockaddr_in6 = unsafe { std::ptr::read((&raw const addr).cast()) };
            Some(u16::from_be(a.sin6_port))
        }
        _ => None,
    }
}

#[allow(unsafe_code)]
fn set_nodelay(fd: i32) -> bool {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads one c_int from a valid pointer.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn sockets_to_the_port_get_nodelay_and_others_do_not() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let to_server = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let to_other = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!to_server.nodelay().unwrap() && !to_other.nodelay().unwrap());
        assert!(set_tcp_nodelay_to_port(server.local_addr().unwrap().port()) >= 1);
        assert!(to_server.nodelay().unwrap(), "the socket to the port has TCP_NODELAY");
        assert!(!to_other.nodelay().unwrap(), "a socket to another port is left alone");
    }
}
