//! Where the hub socket lives and who may use it.
//!
//! The socket sits in a per-user directory with mode 0700 (as tmux does), named
//! after the primary's pid, so a worker finds it from `process.ppid` alone. A
//! directory that exists with another owner or looser permissions is refused:
//! someone else could otherwise plant a socket there and read our traffic.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
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
}
