//! Where the hub listens and who may use it.
//!
//! An address is named after the primary's pid, so a worker finds it from
//! `process.ppid` alone, even when `setupPrimary()` ran after `cluster.fork()`.
//!
//! - On Linux it is a name in the abstract socket namespace,
//!   `@socket.io-cluster-rs-<uid>-<pid>`: no file, so nothing is left behind
//!   however the primary ends (SIGINT, SIGTERM, SIGKILL), and no directory
//!   another user could create first. Such names have no permissions, so both
//!   sides check the other's uid ([`peer_uid`]); a name another user took
//!   first is refused by both, and the cluster falls back to the IPC transport.
//! - Elsewhere it is a socket file in a per-user directory with mode 0700 (as
//!   tmux does). A directory that exists with another owner or looser
//!   permissions is refused: someone else could otherwise plant a socket there
//!   and read our traffic.
//!
//! Addresses are strings: a leading `@` means the abstract namespace.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::{Path, PathBuf};

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The hub address of the primary `pid`: an abstract name on Linux, else a
/// socket file under `base` (see [`socket_dir`]; with `create`, the directory is
/// created; in every case it must be private to us, or this fails).
pub fn hub_address(base: &Path, pid: u32, create: bool) -> io::Result<String> {
    if cfg!(target_os = "linux") {
        return Ok(format!("@socket.io-cluster-rs-{}-{pid}", euid()));
    }
    let dir = socket_dir(base);
    if create {
        ensure_private_dir(&dir)?;
    } else {
        verify_private_dir(&dir)?;
    }
    Ok(socket_path(&dir, pid).display().to_string())
}

/// True for an address in the abstract namespace.
pub fn is_abstract(address: &str) -> bool {
    address.starts_with('@')
}

/// The socket address of `address`.
pub fn socket_addr(address: &str) -> io::Result<SocketAddr> {
    match address.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        }
        #[cfg(not(target_os = "linux"))]
        Some(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "abstract socket names exist on Linux only",
        )),
        None => SocketAddr::from_pathname(address),
    }
}

/// The uid of the process at the other end of `stream` (for a connecting
/// side: of the one that listens).
pub fn peer_uid(stream: &impl AsRawFd) -> io::Result<u32> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `cred` and `len` are valid for writes and `len` holds the
        // size of `cred`, as SO_PEERCRED requires; the fd is open (borrowed
        // from `stream`).
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(cred.uid)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let mut uid: libc::uid_t = 0;
        let mut gid: libc::gid_t = 0;
        // SAFETY: both out-pointers are valid for writes; the fd is open
        // (borrowed from `stream`).
        let rc = unsafe { libc::getpeereid(stream.as_raw_fd(), &mut uid, &mut gid) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(uid)
    }
}

/// Connects to the hub at `address` and checks that it runs as our own user.
/// Blocks only while the hub's accept backlog is full.
pub fn connect_hub(address: &str) -> io::Result<UnixStream> {
    let stream = UnixStream::connect_addr(&socket_addr(address)?)?;
    let uid = peer_uid(&stream)?;
    if uid != euid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the hub address {address} belongs to uid {uid}, not to this user (uid {}); another user took it first",
                euid()
            ),
        ));
    }
    Ok(stream)
}

/// The address of the sticky balancer's handoff channel (`crate::sticky`)
/// next to the hub at `hub_address`.
pub fn sticky_address(hub_address: &str) -> String {
    match hub_address.strip_suffix(".sock") {
        Some(stem) => format!("{stem}.sticky.sock"),
        None => format!("{hub_address}-sticky"),
    }
}

/// Binds a listening socket at `address`. A socket file goes in a private
/// directory, replacing a stale one; an abstract name another process holds
/// is an error that says who holds it.
pub fn bind_listener(address: &str) -> io::Result<std::os::unix::net::UnixListener> {
    if !is_abstract(address) {
        let path = Path::new(address);
        if let Some(dir) = path.parent() {
            ensure_private_dir(dir)?;
        }
        remove_stale_socket(path)?;
    }
    let addr = socket_addr(address)?;
    match std::os::unix::net::UnixListener::bind_addr(&addr) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse && is_abstract(address) => {
            let holder = UnixStream::connect_addr(&addr)
                .and_then(|s| peer_uid(&s))
                .map_or_else(
                    |_| "another process".to_string(),
                    |uid| format!("uid {uid}"),
                );
            Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("the address {address} is already taken by {holder}"),
            ))
        }
        other => other,
    }
}

/// `<base>/socket.io-cluster-rs-<uid>`.
pub fn socket_dir(base: &Path) -> PathBuf {
    base.join(format!("socket.io-cluster-rs-{}", euid()))
}

/// `<dir>/<pid>.sock`.
pub fn socket_path(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("{pid}.sock"))
}

fn refuse(dir: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "socket.io-cluster-rs: refusing socket directory {}: {why}",
            dir.display()
        ),
    )
}

/// Checks that `dir` is a real directory (not a symlink), owned by us, and not
/// accessible to group or others.
pub fn verify_private_dir(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if !meta.file_type().is_dir() {
        return Err(refuse(dir, "not a directory"));
    }
    if meta.uid() != euid() {
        return Err(refuse(
            dir,
            &format!("owned by uid {} instead of {}", meta.uid(), euid()),
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(refuse(
            dir,
            &format!("mode {mode:o} lets other users in (expected 700)"),
        ));
    }
    Ok(())
}

/// Creates `dir` with mode 0700 if it is missing, then verifies it.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    verify_private_dir(dir)
}

/// Removes a leftover socket file at `path` (a crashed earlier primary with the
/// same pid). Anything that is not a socket is left alone and reported.
pub fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "socket.io-cluster-rs: {} exists and is not a socket",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "sioc-paths-{}-{}-{}",
            name,
            std::process::id(),
            euid()
        ));
        let _ = fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn creates_a_0700_directory() {
        let d = scratch("create");
        ensure_private_dir(&d).unwrap();
        let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        ensure_private_dir(&d).unwrap(); // idempotent
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_a_directory_open_to_others() {
        let d = scratch("loose");
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        let err = ensure_private_dir(&d).unwrap_err();
        assert!(err.to_string().contains("mode 755"), "{err}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_a_symlink() {
        let d = scratch("link");
        let target = scratch("target");
        ensure_private_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, &d).unwrap();
        let err = verify_private_dir(&d).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        fs::remove_file(&d).unwrap();
        fs::remove_dir_all(&target).unwrap();
    }

    #[test]
    fn stale_socket_is_removed_but_regular_files_are_not() {
        let d = scratch("stale");
        ensure_private_dir(&d).unwrap();
        let sock = socket_path(&d, 1);
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        assert!(sock.exists());
        remove_stale_socket(&sock).unwrap();
        assert!(!sock.exists());
        fs::write(&sock, b"x").unwrap();
        assert!(remove_stale_socket(&sock).is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_hub_address_names_the_primary_and_is_reached_with_its_owner_checked() {
        let base = scratch("addr");
        let address = hub_address(&base, 4242, true).unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(address, format!("@socket.io-cluster-rs-{}-4242", euid()));
            assert!(!base.exists(), "no directory on Linux");
        } else {
            assert!(address.ends_with("/4242.sock"), "{address}");
        }
        // A name unique to this test, then a round trip through it.
        let address = if is_abstract(&address) {
            format!("@sioc-paths-test-{}", std::process::id())
        } else {
            address
        };
        let listener =
            std::os::unix::net::UnixListener::bind_addr(&socket_addr(&address).unwrap()).unwrap();
        let stream = connect_hub(&address).unwrap();
        assert_eq!(peer_uid(&stream).unwrap(), euid());
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(peer_uid(&accepted).unwrap(), euid());
        drop(listener);
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn a_missing_socket_directory_is_not_found_elsewhere_than_linux() {
        let base = scratch("missing");
        match hub_address(&base, 1, false) {
            Ok(address) => assert!(is_abstract(&address)),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
        }
    }
}
