//! Let's Encrypt's ACME test server (pebble) and its mock DNS (pebble-challtestsrv), on free ports.
//!
//! pebble's directory is served over TLS with a certificate generated here for `localhost` and
//! `127.0.0.1`; [`Pebble::directory_cert_pem`] is the only thing a client needs to trust to reach
//! it. Certificates pebble issues chain to a root it generates at start: [`Pebble::root_ca_pem`]
//! fetches it from the management API. pebble resolves names through challtestsrv, whose default
//! answer for A queries is 127.0.0.1, so HTTP-01 validations come back to this machine on
//! [`PebbleOptions::http01_port`]. Both processes are killed on drop and, should the test process
//! die first, by a [`reaper`](crate::reaper).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustls::pki_types::CertificateDer;

use crate::process::which;
use crate::{http, net, reaper, Error, Result};

/// How to start pebble.
#[derive(Debug, Clone)]
pub struct PebbleOptions {
    /// Port on 127.0.0.1 that pebble's validator connects to for HTTP-01 challenges.
    pub http01_port: u16,
    /// Port for TLS-ALPN-01 challenges (unused by wh-proxy, but pebble needs one).
    pub tlsalpn01_port: u16,
    /// Valid authorizations are reused for this many seconds (pebble's default: reuse off here).
    pub authz_reuse: u32,
}

impl Default for PebbleOptions {
    fn default() -> Self {
        Self { http01_port: net::free_port(), tlsalpn01_port: net::free_port(), authz_reuse: 0 }
    }
}

/// A running pebble + challtestsrv pair.
pub struct Pebble {
    pebble: Child,
    dns: Child,
    dir: tempfile::TempDir,
    acme_addr: SocketAddr,
    mgmt_addr: SocketAddr,
    dns_addr: SocketAddr,
    dns_mgmt_addr: SocketAddr,
    directory_cert_pem: String,
    options: PebbleOptions,
}

impl Pebble {
    /// Starts both processes and waits until they accept connections.
    pub async fn start(options: PebbleOptions) -> Result<Pebble> {
        tokio::task::spawn_blocking(move || Self::start_blocking(options))
            .await
            .map_err(|e| Error::Other(format!("pebble start panicked: {e}")))?
    }

    /// Ports are picked free and then handed to pebble, so another process can take one in
    /// between ("address already in use"): such a start is tried again with new ports.
    fn start_blocking(options: PebbleOptions) -> Result<Pebble> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(options.clone()) {
                Ok(p) => return Ok(p),
                Err(e) if e.to_string().contains("address already in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("three attempts were made"))
    }

    fn start_once(options: PebbleOptions) -> Result<Pebble> {
        for program in ["pebble", "pebble-challtestsrv"] {
            which(program).ok_or_else(|| Error::Missing {
                program: program.into(),
                hint: "apt-get install pebble".into(),
            })?;
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("wh-testkit-pebble-{}-", crate::run_tag()))
            .tempdir()?;
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .map_err(|e| Error::Other(format!("rcgen: {e}")))?;
        let cert_pem = cert.cert.pem();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, &cert_pem)?;
        std::fs::write(&key_path, cert.signing_key.serialize_pem())?;

        let lo = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let (acme_addr, mgmt_addr) = (lo(net::free_port()), lo(net::free_port()));
        let (dns_addr, dns_mgmt_addr) = (lo(net::free_port()), lo(net::free_port()));
        let config = serde_json::json!({"pebble": {
            "listenAddress": acme_addr.to_string(),
            "managementListenAddress": mgmt_addr.to_string(),
            "certificate": cert_path,
            "privateKey": key_path,
            "httpPort": options.http01_port,
            "tlsPort": options.tlsalpn01_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string())?;

        let log = |name: &str| -> Result<Stdio> {
            Ok(std::fs::File::create(dir.path().join(name))?.into())
        };
        // argv[0] carries the run tag, so a leftover check can find exactly this run's process.
        let dns = Command::new("pebble-challtestsrv")
            .arg0(format!("pebble-challtestsrv-{}", crate::run_tag()))
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-dns01", &dns_addr.to_string(), "-management", &dns_mgmt_addr.to_string()])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(log("challtestsrv.log")?)
            .stderr(Stdio::inherit())
            .spawn()?;
        reaper::after_exit(&format!("kill -9 {} 2>/dev/null", dns.id()))?;
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &dns_addr.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", options.authz_reuse.to_string())
            .stdin(Stdio::null())
            .stdout(log("pebble.log")?)
            .stderr(log("pebble.err")?)
            .spawn()?;
        reaper::after_exit(&format!("kill -9 {} 2>/dev/null", pebble.id()))?;
        let me = Pebble {
            pebble,
            dns,
            dir,
            acme_addr,
            mgmt_addr,
            dns_addr,
            dns_mgmt_addr,
            directory_cert_pem: cert_pem,
            options,
        };
        for (addr, what) in [
            (acme_addr, "pebble"),
            (mgmt_addr, "pebble management"),
            (dns_mgmt_addr, "challtestsrv"),
        ] {
            net::wait_for_port(addr, what, Duration::from_secs(20))
                .map_err(|e| Error::Other(format!("{e}; pebble log: {}", me.log())))?;
        }
        Ok(me)
    }

    /// The ACME directory URL (https, trust [`Self::directory_cert_pem`]).
    pub fn directory_url(&self) -> String {
        format!("https://localhost:{}/dir", self.acme_addr.port())
    }

    /// PEM of the certificate pebble serves its API with: the only root needed to reach it.
    pub fn directory_cert_pem(&self) -> &str {
        &self.directory_cert_pem
    }

    /// The same certificate, parsed.
    pub fn directory_roots(&self) -> Result<Vec<CertificateDer<'static>>> {
        http::certs_from_pem(self.directory_cert_pem.as_bytes())
    }

    /// Path of a file holding [`Self::directory_cert_pem`] (for `--acme-ca-bundle`).
    pub fn directory_cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The options pebble was started with (its HTTP-01 port among them).
    pub fn options(&self) -> &PebbleOptions {
        &self.options
    }

    /// The mock DNS server's address (UDP and TCP).
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns_addr
    }

    /// PEM of the root that certificates issued by this pebble chain to.
    pub async fn root_ca_pem(&self) -> Result<String> {
        let url = format!("https://localhost:{}/roots/0", self.mgmt_addr.port());
        let resp = http::get(&url, &self.directory_roots()?).await?;
        if resp.status != 200 {
            return Err(Error::Other(format!("GET {url}: {}", resp.status)));
        }
        Ok(resp.text())
    }

    /// Answers A queries for `host` with `addresses` in the mock DNS.
    pub async fn add_a(&self, host: &str, addresses: &[&str]) -> Result<()> {
        self.dns_call("add-a", serde_json::json!({"host": fqdn(host), "addresses": addresses}))
            .await
    }

    /// Sets the TXT record of `host` to `value` in the mock DNS.
    pub async fn set_txt(&self, host: &str, value: &str) -> Result<()> {
        self.dns_call("set-txt", serde_json::json!({"host": fqdn(host), "value": value})).await
    }

    /// Removes the TXT record of `host`.
    pub async fn clear_txt(&self, host: &str) -> Result<()> {
        self.dns_call("clear-txt", serde_json::json!({"host": fqdn(host)})).await
    }

    async fn dns_call(&self, path: &str, body: serde_json::Value) -> Result<()> {
        let url = format!("http://{}/{path}", self.dns_mgmt_addr);
        let resp = http::post_json(&url, &body, &[]).await?;
        if resp.status != 200 {
            return Err(Error::Other(format!(
                "challtestsrv {path}: {} {}",
                resp.status,
                resp.text()
            )));
        }
        Ok(())
    }

    /// pebble's log so far, for failure messages.
    pub fn log(&self) -> String {
        ["pebble.log", "pebble.err"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .collect()
    }
}

fn fqdn(host: &str) -> String {
    if host.ends_with('.') {
        host.to_owned()
    } else {
        format!("{host}.")
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
