//! A real SMTP listener for the tests: speaks enough of RFC 5321 for lettre (EHLO, MAIL, RCPT,
//! DATA, RSET, NOOP, QUIT), keeps every message it accepts, and decodes them for reading.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One accepted message: its recipients and its text, transfer encoding undone.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: Vec<String>,
    pub text: String,
}

impl Received {
    /// The `token` of the first link to `page` in the message.
    pub fn token(&self, page: &str) -> String {
        self.link(page).split("token=").nth(1).unwrap().to_owned()
    }

    /// The first `…/{page}?token=…` address in the message.
    pub fn link(&self, page: &str) -> String {
        let marker = format!("/{page}?token=");
        let at = self.text.find(&marker).unwrap_or_else(|| panic!("no {page} link in {}", self.text));
        let start = self.text[..at].rfind("http").unwrap();
        let end = at
            + marker.len()
            + self.text[at + marker.len()..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .unwrap();
        self.text[start..end].to_owned()
    }

    pub fn subject(&self) -> &str {
        self.text.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap_or("")
    }
}

pub struct MailCatcher {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MailCatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MailCatcher {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let (store, signal) = (received.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, store.clone(), signal.clone()));
            }
        });
        Self { port, received, arrived, task }
    }

    /// A port nothing listens on, for a catcher started later.
    /// A port free now that no other test will take before it is bound again: outside the
    /// kernel's ephemeral range (32768–60999 on Linux), where every `bind(0)` and outgoing
    /// connection of the other tests lands, and different for each call.
    pub fn free_port() -> u16 {
        use std::sync::atomic::{AtomicU16, Ordering};
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let start = 20_000 + (std::process::id() % 1_000) as u16 * 10;
        loop {
            let port = start + NEXT.fetch_add(1, Ordering::Relaxed) % 10_000;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }

    pub fn url(port: u16) -> String {
        format!("smtp://127.0.0.1:{port}")
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` messages have arrived (at most 20 s) and answers all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        self.wait_until(&format!("{n} mails"), |all| (all.len() >= n).then(|| all.to_vec())).await
    }

    /// The `n`th message to `address`, waiting for it (at most 20 s).
    pub async fn nth_to(&self, address: &str, n: usize) -> Received {
        self.wait_until(&format!("mail {n} to {address}"), |all| {
            all.iter().filter(|m| m.to.iter().any(|t| t == address)).nth(n - 1).cloned()
        })
        .await
    }

    /// Checks `found` on everything received so far, again after each arrival, until it
    /// answers; panics naming `what` after 20 s.
    async fn wait_until<T>(&self, what: &str, found: impl Fn(&[Received]) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.arrived.notified();
            if let Some(answer) = found(&self.received()) {
                return answer;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("{what} never came; got {:#?}", self.received());
            }
        }
    }
}

async fn session(stream: TcpStream, store: Arc<Mutex<Vec<Received>>>, arrived: Arc<Notify>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let _ = write.write_all(b"220 catcher ESMTP\r\n").await;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") {
            b"250-catcher\r\n250 8BITMIME\r\n"
        } else if command.starts_with("RCPT TO:") {
            to.push(line.trim_end()[8..].trim().trim_matches(['<', '>']).to_owned());
            b"250 ok\r\n"
        } else if command == "DATA" {
            let _ = write.write_all(b"354 go on\r\n").await;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').filter(|_| line.starts_with("..")).unwrap_or(&line));
            }
            store.lock().unwrap().push(Received { to: std::mem::take(&mut to), text: decode_quoted_printable(&data) });
            arrived.notify_waiters();
            b"250 queued\r\n"
        } else if command == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else if command == "RSET" {
            to.clear();
            b"250 ok\r\n"
        } else {
            b"250 ok\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// Undoes quoted-printable (RFC 2045) over the whole message; other text passes unchanged.
fn decode_quoted_printable(data: &str) -> String {
    let joined = data.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
