//! The bearer token that guards an endpoint bound off loopback: read from a file that
//! only its owner can read, and compared in constant time.
use std::path::Path;

use crate::error::ControlError;

/// The longest token file read, in bytes.
pub const TOKEN_FILE_LEN_MAX: u64 = 4096;

/// A secret that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// Reads a token file: a regular file with no permission bits for group or others
    /// (mode & 0o077 == 0), holding a non-empty token (surrounding whitespace trimmed).
    pub fn read(path: &Path) -> Result<Token, ControlError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| ControlError::io_at("cannot read the token file", path, e))?;
        if !meta.is_file() {
            return Err(ControlError::Config(format!("the token file {} is not a regular file", path.display())));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ControlError::Config(format!(
                "the token file {} has mode {mode:04o}; it must be readable only by its owner (chmod 600 {})",
                path.display(),
                path.display()
            )));
        }
        if meta.len() > TOKEN_FILE_LEN_MAX {
            return Err(ControlError::Config(format!(
                "the token file {} is {} bytes, over the limit of {TOKEN_FILE_LEN_MAX}",
                path.display(),
                meta.len()
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| ControlError::io_at("cannot read the token file", path, e))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(ControlError::Config(format!("the token file {} is empty", path.display())));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ControlError::Config(format!(
                "the token in {} must be printable ASCII without spaces (it travels in an HTTP header)",
                path.display()
            )));
        }
        Ok(Token(token.to_owned()))
    }

    /// For tests and for a client given the token directly.
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`. The comparison
    /// takes the same time wherever the first difference is.
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let Some(given) = authorization.and_then(|v| v.strip_prefix("Bearer ")) else {
            return false;
        };
        let (a, b) = (self.0.as_bytes(), given.trim().as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }
}
