//! A TCP proxy in front of a database server, for outage tests.

/// A TCP proxy in front of a database server that a test can cut, to simulate an outage (the
/// server stopping, as the service sees it), and heal again.
pub struct Proxy {
    /// The database URL through the proxy.
    pub url: String,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(database_url: &str) -> Self {
        let authority_start = database_url.find("://").unwrap() + 3;
        let rest = &database_url[authority_start..];
        let host_end = rest.find('/').unwrap_or(rest.len());
        let host_port = rest[..host_end].rsplit('@').next().unwrap().to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = database_url.replacen(&host_port, &format!("127.0.0.1:{port}"), 1);
        let (cut, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            // Ends with the proxy (its sender gone).
            while let Ok((mut client, _)) = listener.accept().await {
                if *watch.borrow() {
                    continue; // Cut: the connection is closed at once, as by a stopped server.
                }
                let target = host_port.clone();
                let mut cut = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = cut.wait_for(|cut| *cut) => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        Self { url, cut }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send(true).ok();
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.cut.send(false).ok();
    }
}
