//! The node's key files: the identity key (`--key`), created when missing, and the
//! network key (`--network-key`, `--new-network-key`). Both hold 64 hex digits and an
//! optional newline, and both are refused when group or others may read or write them,
//! as OpenSSH refuses such a private key. The shell's business: the core gets the bytes.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::config::Secret;
use crate::driver;
use crate::wire::text::{self, describe_io_error};

/// Which key a file holds, for error messages.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Identity,
    Network,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Identity => "key file",
            Kind::Network => "network key file",
        }
    }
}

/// The identity key in `path`, made (with its directory, mode 0700) when missing.
pub fn identity(path: &Path) -> io::Result<Secret> {
    match read(path, Kind::Identity) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|err| failed(format_args!("cannot create {}", dir.display()), &err))?;
            }
            let key = Secret(driver::random_bytes()?);
            write_new(path, &key, Kind::Identity)?;
            log::info!("created a new node key in {}", path.display());
            Ok(key)
        }
        other => other,
    }
}

/// The network key in `path`, which must exist.
pub fn network_key(path: &Path) -> io::Result<Secret> {
    read(path, Kind::Network)
}

/// Writes a fresh network key to `path`; an existing file is left alone.
pub fn new_network_key(path: &Path) -> io::Result<()> {
    write_new(path, &Secret(driver::random_bytes()?), Kind::Network)
}

/// The IRC clients' password: the first line of `path`, a file of the same rule as a
/// key file (only its owner may read or write it).
pub fn password(path: &Path) -> io::Result<String> {
    let what = "IRC password file";
    let text = read_private(path, what)?;
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(password) if !password.is_empty() && !password.contains(' ') => Ok(password.to_owned()),
        _ => Err(io::Error::other(format!(
            "{what} {}: expected a first line of UTF-8 without spaces",
            path.display()
        ))),
    }
}

fn read(path: &Path, kind: Kind) -> io::Result<Secret> {
    let what = kind.name();
    let text = read_private(path, what)?;
    parse(&text).ok_or_else(|| {
        io::Error::other(format!(
            "{what} {}: expected 64 hex digits and an optional newline",
            path.display()
        ))
    })
}

/// The first bytes of a file only its owner may read or write.
fn read_private(path: &Path, what: &str) -> io::Result<Vec<u8>> {
    let cannot =
        |err: &io::Error| failed(format_args!("cannot read {what} {}", path.display()), err);
    // Non-blocking, so that a FIFO put in the key's place cannot hang the start.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| {
            // Kept as NotFound, so that a missing identity key is created.
            io::Error::new(err.kind(), cannot(&err).to_string())
        })?;
    let metadata = file.metadata().map_err(|err| cannot(&err))?;
    if !metadata.is_file() {
        return Err(io::Error::other(format!(
            "{what} {} is not a regular file",
            path.display()
        )));
    }
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(io::Error::other(format!(
            "{what} {} has mode {:04o}: group or others may read or write it (chmod 600 it)",
            path.display(),
            mode & 0o7777
        )));
    }
    // A key file is tiny: read a little more than a key to tell a wrong file (and a
    // password no longer than that).
    let mut text = Vec::new();
    (&mut file)
        .take(128)
        .read_to_end(&mut text)
        .map_err(|err| cannot(&err))?;
    Ok(text)
}

fn parse(text: &[u8]) -> Option<Secret> {
    let digits = text.strip_suffix(b"\n").unwrap_or(text);
    if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut key = [0; 32];
    for (byte, pair) in key.iter_mut().zip(digits.chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(Secret(key))
}

fn write_new(path: &Path, key: &Secret, kind: Kind) -> io::Result<()> {
    let cannot = |err: &io::Error| {
        failed(
            format_args!("cannot write {} {}", kind.name(), path.display()),
            err,
        )
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| cannot(&err))?;
    file.write_all(format!("{}\n", text::hex(&key.0)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|err| {
            let _ = fs::remove_file(path);
            cannot(&err)
        })
}

fn failed(what: std::fmt::Arguments<'_>, err: &io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {}", describe_io_error(err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/p2pchat/key");
        let made = identity(&path).unwrap();
        assert_eq!(identity(&path).unwrap(), made);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[test]
    fn a_key_others_may_read_is_refused_naming_file_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        identity(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = identity(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("mode 0644"), "{err}");
    }

    #[test]
    fn network_keys_are_hex_with_an_optional_newline() {
        assert!(parse(&[b'a'; 64]).is_some());
        let mut line = vec![b'0'; 64];
        line.push(b'\n');
        assert_eq!(parse(&line), Some(Secret([0; 32])));
        assert!(parse(&[b'a'; 63]).is_none());
        assert!(parse(&[b'g'; 64]).is_none());
        assert!(parse(&[b'+', b'1'].repeat(32)).is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nk");
        new_network_key(&path).unwrap();
        assert!(network_key(&path).is_ok());
        assert!(new_network_key(&path).is_err(), "an existing file is kept");
        assert!(network_key(&dir.path().join("missing")).is_err());
    }
}
