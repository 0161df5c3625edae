//! What an app's environment variable may be, so that the control plane refuses at store time
//! exactly what the worker could not pass to the container. Values reach the container through
//! a Podman env file (`KEY=VALUE` a line, never the environment of a host process), whose reader
//! ends a value at a newline, drops a trailing carriage return and stops at 64 KiB a line.

/// The longest `KEY=VALUE` line Podman's env-file reader takes (Go's `bufio.Scanner` default).
pub const MAX_LINE: usize = 64 * 1024 - 1;

/// Why a variable cannot be passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    #[error(
        "the name must be a POSIX name: a letter or _, then letters, digits or _ (at most 255)"
    )]
    Name,
    #[error("the value cannot contain a line break or a NUL byte (store multi-line values base64-encoded)")]
    LineBreak,
    #[error("the value cannot end with a carriage return")]
    TrailingCarriageReturn,
    #[error("the name and value together must stay under 64 KiB")]
    TooLong,
}

/// Checks a variable name (POSIX: a letter or `_`, then letters, digits, `_`; at most 255).
pub fn check_name(key: &str) -> Result<(), EnvError> {
    let mut bytes = key.bytes();
    let ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && key.len() <= 255;
    if ok {
        Ok(())
    } else {
        Err(EnvError::Name)
    }
}

/// Checks a whole variable.
pub fn check(key: &str, value: &str) -> Result<(), EnvError> {
    check_name(key)?;
    if value.contains(['\n', '\0']) {
        return Err(EnvError::LineBreak);
    }
    if value.ends_with('\r') {
        return Err(EnvError::TrailingCarriageReturn);
    }
    if key.len() + 1 + value.len() > MAX_LINE {
        return Err(EnvError::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_an_env_file_can_carry() {
        assert_eq!(check("PATH", "/nowhere"), Ok(()));
        assert_eq!(check("_X1", " spaces = and quotes \"' kept\t"), Ok(()));
        assert_eq!(check("1X", "v"), Err(EnvError::Name));
        assert_eq!(check("A-B", "v"), Err(EnvError::Name));
        assert_eq!(check("", "v"), Err(EnvError::Name));
        assert_eq!(check("K", "a\nB=evil"), Err(EnvError::LineBreak));
        assert_eq!(check("K", "a\0"), Err(EnvError::LineBreak));
        assert_eq!(check("K", "a\r"), Err(EnvError::TrailingCarriageReturn));
        assert_eq!(check("K", "a\rb"), Ok(()));
        assert_eq!(check("K", &"v".repeat(MAX_LINE - 2)), Ok(()));
        assert_eq!(check("K", &"v".repeat(MAX_LINE - 1)), Err(EnvError::TooLong));
    }
}
