//! Where `wh` keeps its sign-in: `credentials.json` (mode 0600) in `$WH_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/wh`, else `~/.config/wh`. `WH_API_URL` and `WH_TOKEN` override the file.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::client::Api;
use crate::error::CliError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub api_url: String,
    pub token: String,
}

/// The configuration directory.
pub fn dir() -> Result<PathBuf, CliError> {
    if let Some(d) = std::env::var_os("WH_CONFIG_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(d).join("wh"));
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".config/wh"))
        .ok_or_else(|| CliError::Local("neither WH_CONFIG_DIR nor HOME is set".into()))
}

fn path() -> Result<PathBuf, CliError> {
    Ok(dir()?.join("credentials.json"))
}

/// Saves `c` (replacing the file atomically, 0600).
pub fn save(c: &Credentials) -> Result<PathBuf, CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = path()?;
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".credentials.json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(serde_json::to_string_pretty(c).expect("serialisable").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// The signed-in API client.
pub fn api() -> Result<Api, CliError> {
    let saved: Option<Credentials> = path()
        .ok()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let url =
        std::env::var("WH_API_URL").ok().or_else(|| saved.as_ref().map(|c| c.api_url.clone()));
    let token = std::env::var("WH_TOKEN").ok().or_else(|| saved.map(|c| c.token));
    match (url, token) {
        (Some(url), Some(token)) => Api::new(&url, Some(token)),
        _ => Err(CliError::Auth(
            "not signed in: run `wh login` (or `wh dev`, which signs this machine in)".into(),
        )),
    }
}
