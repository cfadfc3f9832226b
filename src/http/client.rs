//! Who the client is. The peer's address, unless the peer is a trusted proxy: then the
//! right-most address in `X-Forwarded-For` that is not itself a trusted proxy, since every proxy
//! appends the address it saw and only the entries added by proxies we trust can be believed.
//! That address is what sessions, the audit trail and limits record.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::{Extensions, HeaderMap};
use ipnet::IpNet;

/// The client's address, as resolved for this request, when it is not the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClientAddr(IpAddr);

/// Resolves the client's address once per request and keeps it in the extensions when it is
/// not the peer's own (a trusted proxy's request), so that the usual request stores nothing.
pub fn resolve(request: &mut Request, trusted: &[IpNet]) {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let address = client_address(peer.ip(), request.headers(), trusted);
        if address != peer.ip() {
            request.extensions_mut().insert(ClientAddr(address));
        }
    }
}

/// The address [`resolve`] found for the request these extensions belong to.
pub fn of(extensions: &Extensions) -> Option<IpAddr> {
    let peer = || extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
    extensions.get::<ClientAddr>().map(|ClientAddr(address)| *address).or_else(peer)
}

/// The client behind `peer`: `peer` itself unless it is trusted, else the right-most untrusted
/// `X-Forwarded-For` entry (the left-most if all are trusted). An unreadable entry ends the
/// walk at the last address vouched for.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|network| network.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    // Read as bytes: a line with an unreadable byte must end the walk at that entry, not
    // vanish and let an earlier, client-written line speak instead.
    let lines: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect();
    let entries: Vec<&str> = lines.iter().flat_map(|line| line.split(',')).map(str::trim).collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(address) = parse_entry(entry) else { break };
        client = address;
        if !is_trusted(&address) {
            break;
        }
    }
    client
}

/// An address as proxies write it: `203.0.113.9`, `2001:db8::1`, `[2001:db8::1]:443` or
/// `203.0.113.9:443`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = ip("10.0.0.2");
        let headers = forwarded(&["198.51.100.7, 203.0.113.9", "10.1.2.3"]);
        assert_eq!(client_address(peer, &headers, &trusted), ip("203.0.113.9"), "the spoofable left part is ignored");
        assert_eq!(
            client_address(ip("192.0.2.1"), &headers, &trusted),
            ip("192.0.2.1"),
            "an untrusted peer is the client"
        );
        assert_eq!(
            client_address(peer, &forwarded(&["10.9.9.9"]), &trusted),
            ip("10.9.9.9"),
            "all trusted: the left-most"
        );
        assert_eq!(client_address(peer, &HeaderMap::new(), &trusted), peer, "no header: the peer");
        let garbled = forwarded(&["203.0.113.9, not-an-address, 10.1.2.3"]);
        assert_eq!(client_address(peer, &garbled, &trusted), ip("10.1.2.3"), "the walk stops at garbage");
        assert_eq!(client_address(peer, &forwarded(&["[2001:db8::1]:443"]), &trusted), ip("2001:db8::1"));
        assert_eq!(
            client_address(peer, &forwarded(&["203.0.113.9"]), &[]),
            peer,
            "no proxies trusted: the header is ignored"
        );
        let mut appended = forwarded(&["198.51.100.7"]);
        appended.append("x-forwarded-for", axum::http::HeaderValue::from_bytes(b"203.0.113.9\xff, 10.1.2.3").unwrap());
        assert_eq!(client_address(peer, &appended, &trusted), ip("10.1.2.3"), "an unreadable line ends the walk");
    }
}
