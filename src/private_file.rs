//! Files that hold a credential (a blob whose session id admits a join, a control
//! token): written readable and writable by the owner only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of a private file: owner read and write (`0600`).
pub const PRIVATE_MODE: u32 = 0o600;

/// Writes `contents` to `path` with mode `0600`, replacing what was there. An existing
/// file is narrowed to `0600` before anything is written to it.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_MODE)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_MODE))?;
    file.write_all(contents)?;
    file.sync_all()
}
