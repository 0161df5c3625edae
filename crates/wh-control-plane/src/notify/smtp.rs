//! E-mail: `smtp://[user:password@]host[:port]/?from=a@example.com&to=b@example.com,c@example.com[&fromname=…&subject=…&encryption=none]`
//! (Shoutrrr's format, <https://shoutrrr.nickfedor.com/services/email/smtp/>). Port 465 speaks
//! TLS from the first byte (RFC 8314); any other port (25 by default, 587) must offer STARTTLS
//! (RFC 3207) — a server that does not is refused, unless the URL says `encryption=none` and
//! the operator allows plain-text calls. AUTH PLAIN or LOGIN (RFC 4954) when a user is given.
//! The connection goes to the address the SSRF guard checked; the whole exchange has one
//! deadline.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use url::Url;

use super::{bad, query, userinfo, Message, Outcome, UrlError};
use crate::outbound::{self, guard::Guard, guard::Use};

/// The most lines of one reply, and the longest line, read from a server.
const MAX_REPLY_LINES: usize = 64;
const MAX_LINE: usize = 2048;

/// Why an SMTP delivery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpError {
    #[error("{0}")]
    Connect(#[from] outbound::OutboundError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {}s", outbound::EXCHANGE_TIMEOUT.as_secs())]
    Timeout,
    #[error("the server does not offer STARTTLS")]
    NoStartTls,
    #[error("the server answered {code} to {step}: {text}")]
    Refused { step: &'static str, code: u16, text: String },
    #[error("a malformed reply")]
    Malformed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Implicit,
    StartTls,
    None,
}

#[derive(Debug)]
pub struct Smtp {
    host: String,
    port: u16,
    user: String,
    password: String,
    from: String,
    from_name: Option<String>,
    to: Vec<String>,
    subject: Option<String>,
    security: Security,
}

fn address(service: &str, a: &str) -> Result<String, UrlError> {
    let a = a.trim();
    let ok = a.len() <= 254
        && a.split_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && !a.chars().any(|c| c.is_control() || c.is_whitespace() || "<>,;\"".contains(c));
    if ok {
        Ok(a.to_owned())
    } else {
        Err(bad(service, format!("`{a}` is not an e-mail address")))
    }
}

impl Smtp {
    pub fn parse(url: &Url) -> Result<Smtp, UrlError> {
        let host =
            url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("smtp", "no host"))?;
        let port = url.port().unwrap_or(25);
        Guard::check_port(port, Use::Smtp).map_err(|e| bad("smtp", e.to_string()))?;
        let q = query(url);
        let from = address("smtp", q.get("from").ok_or_else(|| bad("smtp", "no from= address"))?)?;
        let to = q
            .get("to")
            .ok_or_else(|| bad("smtp", "no to= address"))?
            .split(',')
            .map(|a| address("smtp", a))
            .collect::<Result<Vec<_>, _>>()?;
        if to.len() > 50 {
            return Err(bad("smtp", "at most 50 recipients"));
        }
        let security = match (port, q.get("encryption").map(String::as_str)) {
            (_, Some("none")) => Security::None,
            (465, _) | (_, Some("implicittls" | "implicit")) => Security::Implicit,
            (_, None | Some("auto" | "explicittls" | "starttls")) => Security::StartTls,
            (_, Some(other)) => {
                return Err(bad(
                    "smtp",
                    format!("unknown encryption `{other}` (auto, implicittls, explicittls, none)"),
                ))
            }
        };
        let text = |k: &str| -> Result<Option<String>, UrlError> {
            match q.get(k) {
                Some(v) if v.chars().any(char::is_control) => {
                    Err(bad("smtp", format!("{k} may not contain line breaks")))
                }
                v => Ok(v.cloned()),
            }
        };
        let (user, password) = userinfo(url);
        Ok(Smtp {
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
            user,
            password,
            from,
            from_name: text("fromname")?,
            to,
            subject: text("subject")?,
            security,
        })
    }

    pub(crate) async fn send(
        &self,
        client: &outbound::Client,
        guard: &Guard,
        msg: &Message,
    ) -> Result<Outcome, SmtpError> {
        tokio::time::timeout(outbound::EXCHANGE_TIMEOUT, self.exchange(client, guard, msg))
            .await
            .map_err(|_| SmtpError::Timeout)?
    }

    async fn exchange(
        &self,
        client: &outbound::Client,
        guard: &Guard,
        msg: &Message,
    ) -> Result<Outcome, SmtpError> {
        if self.security == Security::None {
            guard.check_scheme(false).map_err(outbound::OutboundError::from)?;
        }
        let tcp =
            guard.connect(&self.host, self.port, Use::Smtp, outbound::CONNECT_TIMEOUT).await?;
        let (config, wait) = (client.tls(), outbound::CONNECT_TIMEOUT);
        let mut conn: Box<dyn wh_http::client::Io> = match self.security {
            Security::Implicit => wh_http::client::tls_over(tcp, config, &self.host, wait)
                .await
                .map_err(outbound::OutboundError::from)?,
            _ => Box::new(tcp),
        };
        let mut s = Session::new(conn);
        s.expect("greeting", 220).await?;
        let mut ehlo = s.command("EHLO", "EHLO wisehosting", 250).await?;
        if self.security == Security::StartTls {
            if !ehlo.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS")) {
                return Err(SmtpError::NoStartTls);
            }
            s.command("STARTTLS", "STARTTLS", 220).await?;
            conn = wh_http::client::tls_over(s.into_inner(), config, &self.host, wait)
                .await
                .map_err(outbound::OutboundError::from)?;
            s = Session::new(conn);
            ehlo = s.command("EHLO", "EHLO wisehosting", 250).await?;
        }
        if !self.user.is_empty() {
            let auth = ehlo
                .iter()
                .find_map(|l| l.strip_prefix("AUTH ").or(l.strip_prefix("auth ")))
                .unwrap_or("");
            if auth.split_whitespace().any(|m| m.eq_ignore_ascii_case("PLAIN")) || auth.is_empty() {
                let token = STANDARD.encode(format!("\0{}\0{}", self.user, self.password));
                s.command("AUTH", &format!("AUTH PLAIN {token}"), 235).await?;
            } else {
                s.command("AUTH", "AUTH LOGIN", 334).await?;
                s.command("AUTH", &STANDARD.encode(&self.user), 334).await?;
                s.command("AUTH", &STANDARD.encode(&self.password), 235).await?;
            }
        }
        s.command("MAIL FROM", &format!("MAIL FROM:<{}>", self.from), 250).await?;
        for to in &self.to {
            s.command("RCPT TO", &format!("RCPT TO:<{to}>"), 250).await?;
        }
        s.command("DATA", "DATA", 354).await?;
        let mail = self.mail(msg);
        s.write(&mail).await?;
        let done = s.expect("the message", 250).await?;
        let _ = s.command("QUIT", "QUIT", 221).await;
        Ok(Outcome { ok: true, status: 250, body: done.join("\n").into(), retry_after: None })
    }

    /// The message, headers and dot-stuffed body, ending with `CRLF.CRLF`.
    fn mail(&self, msg: &Message) -> String {
        let subject = self.subject.clone().unwrap_or_else(|| msg.title.clone());
        let from = match &self.from_name {
            Some(n) => format!("{} <{}>", encode_word(n), self.from),
            None => self.from.clone(),
        };
        let date = sqlx::types::chrono::Utc::now().to_rfc2822();
        let domain = self.from.rsplit('@').next().unwrap_or("wisehosting");
        let id = if msg.id.is_empty() { crate::now_ms().to_string() } else { msg.id.clone() };
        let mut out = format!(
            "From: {from}\r\nTo: {}\r\nSubject: {}\r\nDate: {date}\r\nMessage-ID: <{id}@{domain}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
            self.to.join(", "),
            encode_word(&subject),
        );
        // Text from tenants (a build's error) must not end the message early or smuggle SMTP:
        // lines split on any CR or LF, other control characters dropped, dots stuffed.
        let detail = msg.detail();
        for line in detail.split(['\r', '\n']).filter(|l| !l.is_empty()) {
            let line: String = line.chars().filter(|c| !c.is_control() || *c == '\t').collect();
            if line.starts_with('.') {
                out.push('.');
            }
            out.push_str(&line);
            out.push_str("\r\n");
        }
        out.push_str(".\r\n");
        out
    }
}

/// An RFC 2047 encoded word when `text` is not plain ASCII (control characters dropped).
fn encode_word(text: &str) -> String {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    let text = text.as_str();
    if text.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        text.to_owned()
    } else {
        format!("=?utf-8?b?{}?=", STANDARD.encode(text))
    }
}

struct Session {
    io: BufReader<Box<dyn wh_http::client::Io>>,
}

impl Session {
    fn new(io: Box<dyn wh_http::client::Io>) -> Session {
        Session { io: BufReader::new(io) }
    }

    fn into_inner(self) -> Box<dyn wh_http::client::Io> {
        self.io.into_inner()
    }

    async fn write(&mut self, text: &str) -> Result<(), SmtpError> {
        let io: &mut (dyn AsyncWrite + Unpin + Send) = self.io.get_mut();
        io.write_all(text.as_bytes()).await?;
        io.flush().await?;
        Ok(())
    }

    async fn command(
        &mut self,
        step: &'static str,
        line: &str,
        want: u16,
    ) -> Result<Vec<String>, SmtpError> {
        self.write(&format!("{line}\r\n")).await?;
        self.expect(step, want).await
    }

    /// Reads one reply; its lines' texts when its code is `want`.
    async fn expect(&mut self, step: &'static str, want: u16) -> Result<Vec<String>, SmtpError> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = (&mut self.io).take(MAX_LINE as u64).read_until(b'\n', &mut line).await?;
            if n == 0 || !line.ends_with(b"\n") || line.len() < 4 || lines.len() >= MAX_REPLY_LINES
            {
                return Err(SmtpError::Malformed);
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            let code: u16 =
                text.get(..3).and_then(|c| c.parse().ok()).ok_or(SmtpError::Malformed)?;
            let last = text.as_bytes().get(3) != Some(&b'-');
            lines.push(text.get(4..).unwrap_or("").to_owned());
            if last {
                if code != want {
                    return Err(SmtpError::Refused { step, code, text: lines.join(" ") });
                }
                return Ok(lines);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_security_and_refuse_bad_addresses() {
        let p = |u: &str| Smtp::parse(&Url::parse(u).unwrap());
        let s =
            p("smtp://me:pw@mail.example.com:465/?from=a@example.com&to=b@example.com").unwrap();
        assert_eq!((s.security, s.port), (Security::Implicit, 465));
        let s = p("smtp://mail.example.com:587/?from=a@example.com&to=b@example.com,c@example.com")
            .unwrap();
        assert_eq!((s.security, s.to.len()), (Security::StartTls, 2));
        assert!(p("smtp://mail.example.com/?from=a@example.com&to=<x>@y").is_err());
        assert!(p("smtp://mail.example.com/?to=b@example.com").unwrap_err().why.contains("from"));
        assert!(p("smtp://mail.example.com:22/?from=a@example.com&to=b@example.com").is_err());
        assert!(p(
            "smtp://m.example.com/?from=a@example.com&to=b@example.com&subject=a%0d%0aBcc:x"
        )
        .is_err());
    }

    #[test]
    fn tenant_text_cannot_end_the_message_or_smuggle_commands() {
        let url = Url::parse("smtp://m.example.com/?from=a@example.com&to=b@example.com").unwrap();
        let s = Smtp::parse(&url).unwrap();
        let msg = Message {
            id: "1".into(),
            title: "Deploy failed: x\r\nBcc: evil@example.com".into(),
            body: "line\r\n.\r\nMAIL FROM:<evil@example.com>\rbare\n.hidden\u{7}".into(),
            app: None,
            link: None,
            severity: crate::notify::message::Severity::Error,
        };
        let mail = s.mail(&msg);
        let (head, body) = mail.split_once("\r\n\r\n").unwrap();
        assert!(!head.contains("\r\nBcc"), "{head}");
        assert!(head.contains("Subject: Deploy failed: xBcc: evil@example.com"), "{head}");
        // The lone dot is stuffed, the bare CR is a line end, the bell is gone.
        assert_eq!(body, "line\r\n..\r\nMAIL FROM:<evil@example.com>\r\nbare\r\n..hidden\r\n.\r\n");
    }
}
