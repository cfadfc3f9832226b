//! Which operations are rate limited per client, and how many requests a minute each allows.
//!
//! These are the operations that cost a password hash, a write or a mail, and that anyone may
//! call without a token: each is a route of its own, limited apart from the others.

use std::net::IpAddr;

/// An operation limited per client network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitedRoute {
    Register,
    Login,
    Refresh,
    Forgot,
    Resend,
    Verify,
    Reset,
}

impl LimitedRoute {
    pub const ALL: [Self; 7] =
        [Self::Register, Self::Login, Self::Refresh, Self::Forgot, Self::Resend, Self::Verify, Self::Reset];

    /// The name settings and buckets use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
            Self::Refresh => "refresh",
            Self::Forgot => "forgot",
            Self::Resend => "resend",
            Self::Verify => "verify",
            Self::Reset => "reset",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|route| route.name() == name)
    }
}

/// Requests per minute per client network: one figure for every route, with overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteLimits {
    pub default: u32,
    pub overrides: Vec<(LimitedRoute, u32)>,
}

impl RouteLimits {
    /// The limit of `route`; 0 is none.
    pub fn per_minute(&self, route: LimitedRoute) -> u32 {
        self.overrides.iter().find(|(r, _)| *r == route).map_or(self.default, |(_, n)| *n)
    }

    /// `login=10,refresh=120`: route names with their own limits (0 turns a route's off).
    pub fn parse_overrides(text: &str) -> Result<Vec<(LimitedRoute, u32)>, String> {
        let names = || LimitedRoute::ALL.map(LimitedRoute::name).join(", ");
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                let (name, count) =
                    item.split_once('=').ok_or_else(|| format!("expected route=count, got {item:?}"))?;
                let route = LimitedRoute::parse(name.trim())
                    .ok_or_else(|| format!("unknown route {:?}; known: {}", name.trim(), names()))?;
                let count = count.trim().parse::<u32>().map_err(|_| format!("{item:?}: the count must be a number"))?;
                Ok((route, count))
            })
            .collect()
    }
}

/// The network a client is limited as: its IPv4 address, or the /64 its IPv6 address is in
/// (one subscriber usually holds a whole /64, so single addresses would be free to rotate).
pub fn client_network(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_name_routes() {
        let parsed = RouteLimits::parse_overrides("login=10, refresh=0").unwrap();
        assert_eq!(parsed, vec![(LimitedRoute::Login, 10), (LimitedRoute::Refresh, 0)]);
        let limits = RouteLimits { default: 30, overrides: parsed };
        assert_eq!(limits.per_minute(LimitedRoute::Login), 10);
        assert_eq!(limits.per_minute(LimitedRoute::Refresh), 0);
        assert_eq!(limits.per_minute(LimitedRoute::Register), 30);
        assert!(RouteLimits::parse_overrides("logon=3").unwrap_err().contains("known: register"));
        assert!(RouteLimits::parse_overrides("login").is_err());
        assert!(RouteLimits::parse_overrides("login=-1").is_err());
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        assert_eq!(client_network("203.0.113.9".parse().unwrap()), "203.0.113.9");
        assert_eq!(client_network("::ffff:203.0.113.9".parse().unwrap()), "203.0.113.9");
        assert_eq!(client_network("2001:db8:1:2:aaaa::1".parse().unwrap()), "2001:db8:1:2::/64");
    }
}
