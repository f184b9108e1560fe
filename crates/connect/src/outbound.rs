//! Where ferry may send a store's token. A store URL comes from whoever registers the store,
//! so it is checked like hostile input: `https://` only (plain `http://` to a loopback host
//! when `allow_insecure` is set, for the simulated platform and tests), and no host that is or
//! resolves to a loopback, private, link-local, shared or unspecified address unless it is
//! listed in `allowed_hosts`. The check runs when a store is registered and again on every
//! call: the client's resolver drops refused addresses, so a name that changes its answer
//! after registration (DNS rebinding) still reaches nothing inside.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

/// 16 MiB: far above any page ferry asks for, far below what would hurt the process.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// Plain `http://` to loopback hosts (`ferry demo`, tests). Off in production.
    pub allow_insecure: bool,
    /// Host names (or IP literals) allowed to resolve to internal addresses: an egress proxy,
    /// a platform on the same network. Compared without case.
    pub allowed_hosts: Vec<String>,
    /// The most of one upstream answer read into memory.
    pub max_body_bytes: usize,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            allow_insecure: false,
            allowed_hosts: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Why a URL is refused, in words an operator can act on (the URL itself is not repeated: it
/// may carry a secret in its query).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Addresses no store lives at unless the operator says so.
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => internal_v4(v4),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                    || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                    || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed inside)
                    || (v6.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible ::a.b.c.d
                    || (first == 0x64 && v6.segments()[1] == 0xff9b) // NAT64 64:ff9b::/96
                    || first == 0x2002 // 6to4, embeds an IPv4 address
            }
        },
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v| v.is_loopback()),
    }
}

impl Outbound {
    /// For tests and `ferry demo`: plain http to loopback allowed.
    pub fn insecure() -> Outbound {
        Outbound {
            allow_insecure: true,
            ..Outbound::default()
        }
    }

    fn allowed(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allowed_hosts.iter().any(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(host)
        })
    }

    /// Whether `host` may be reached at `ip`.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        if self.allowed(host) || !internal(ip) {
            return Ok(());
        }
        if loopback(ip) && self.allow_insecure {
            return Ok(());
        }
        Err(Refused(format!(
            "{host} is or resolves to an internal address ({ip}); list the host in allowed_store_hosts if this store really lives there"
        )))
    }

    /// The checks that need no lookup: scheme, host, IP literals.
    pub fn check_url(&self, raw: &str) -> Result<Url, Refused> {
        let url = Url::parse(raw).map_err(|e| Refused(format!("not a URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused(
                "a store URL carries no credentials; give the token separately".into(),
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Refused("the URL has no host".into()))?
            .to_owned();
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        match url.scheme() {
            "https" => {}
            "http" => {
                let local = match literal {
                    Some(ip) => loopback(ip),
                    None => host.eq_ignore_ascii_case("localhost"),
                };
                if !(self.allow_insecure && local) {
                    return Err(Refused(
                        "a store URL must be https:// (plain http only to a loopback host, with allow_insecure_store_urls)".into(),
                    ));
                }
            }
            other => {
                return Err(Refused(format!(
                    "a store URL must be https://, not {other}://"
                )));
            }
        }
        if let Some(ip) = literal {
            self.check_ip(&host, ip)?;
        }
        Ok(url)
    }

    /// [`Outbound::check_url`] and the host's current addresses: what registering a store
    /// runs, so a refused URL is named at once rather than on the first job.
    pub async fn check_store_url(&self, raw: &str) -> Result<(), Refused> {
        let url = self.check_url(raw)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let lookup = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::lookup_host((host.trim_start_matches('[').trim_end_matches(']'), port)),
        )
        .await
        .map_err(|_| Refused(format!("looking up {host} took over 10 s")))?
        .map_err(|e| Refused(format!("{host} could not be resolved: {e}")))?;
        let mut any = false;
        for addr in lookup {
            any = true;
            self.check_ip(&host, addr.ip())?;
        }
        if !any {
            return Err(Refused(format!("{host} has no address")));
        }
        Ok(())
    }

    /// The resolver every outbound client uses: the system's answer without the refused
    /// addresses.
    pub fn resolver(&self) -> Arc<Resolver> {
        Arc::new(Resolver {
            policy: self.clone(),
        })
    }
}

/// See [`Outbound::resolver`].
#[derive(Debug)]
pub struct Resolver {
    policy: Outbound,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.check_ip(&host, a.ip()).is_ok())
                .collect();
            if kept.is_empty() {
                let why = match found.first() {
                    Some(a) => policy
                        .check_ip(&host, a.ip())
                        .err()
                        .map_or_else(|| format!("{host} has no address"), |r| r.0),
                    None => format!("{host} has no address"),
                };
                return Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A reqwest client for calls to stores and their token endpoints: no redirects (a platform
/// that moves an API is a configuration error, and a redirect would carry the token
/// elsewhere), no proxy from the environment (it would resolve names past the check), the
/// policy's resolver.
pub fn http_client(policy: &Outbound) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(policy.resolver())
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_refused_unless_listed() {
        let p = Outbound::default();
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "127.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            let ip: IpAddr = ip.parse().expect("an address");
            assert!(p.check_ip("h", ip).is_err(), "{ip} should be refused");
        }
        for ip in ["23.227.38.65", "2620:127:f00f:e::"] {
            let ip: IpAddr = ip.parse().expect("an address");
            assert!(p.check_ip("h", ip).is_ok(), "{ip} is public");
        }
        let listed = Outbound {
            allowed_hosts: vec!["Proxy.internal".into()],
            ..Outbound::default()
        };
        assert!(
            listed
                .check_ip("proxy.internal", "10.0.0.5".parse().expect("an address"))
                .is_ok()
        );
        assert!(
            listed
                .check_ip("other.internal", "10.0.0.5".parse().expect("an address"))
                .is_err()
        );
    }

    #[test]
    fn urls_are_https_unless_loopback_and_insecure_allowed() {
        let strict = Outbound::default();
        let demo = Outbound::insecure();
        assert!(
            strict
                .check_url("https://shop.myshopify.com/admin/api/2026-01/graphql.json")
                .is_ok()
        );
        assert!(strict.check_url("http://127.0.0.1:9/graphql").is_err());
        assert!(demo.check_url("http://127.0.0.1:9/graphql").is_ok());
        assert!(demo.check_url("http://localhost:9/graphql").is_ok());
        assert!(demo.check_url("http://[::1]:9/graphql").is_ok());
        // Insecure is for loopback only: not plain http elsewhere, not other internal hosts.
        assert!(demo.check_url("http://shop.example.com/graphql").is_err());
        assert!(demo.check_url("https://10.0.0.1/graphql").is_err());
        assert!(demo.check_url("https://169.254.169.254/latest").is_err());
        assert!(strict.check_url("https://127.0.0.1/graphql").is_err());
        assert!(strict.check_url("ftp://shop.example.com/").is_err());
        assert!(
            strict
                .check_url("https://user:pw@shop.example.com/")
                .is_err()
        );
        assert!(strict.check_url("not a url").is_err());
    }

    /// TLS is compiled in: an https call opens with a TLS ClientHello.
    #[tokio::test]
    async fn https_calls_speak_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let policy = Outbound {
            allowed_hosts: vec!["127.0.0.1".into()],
            ..Outbound::default()
        };
        let url = format!("https://127.0.0.1:{port}/graphql");
        policy.check_url(&url).expect("https to a listed host");
        let client = http_client(&policy);
        let call = tokio::spawn(async move { client.get(url).send().await });
        let (mut socket, _) = listener.accept().await.expect("a connection");
        let mut first = [0u8; 6];
        tokio::io::AsyncReadExt::read_exact(&mut socket, &mut first)
            .await
            .expect("the first bytes");
        assert_eq!(first[0], 0x16, "a TLS handshake record");
        assert_eq!(first[5], 0x01, "a ClientHello");
        drop(socket);
        assert!(call.await.expect("the task").is_err(), "no server answered");
    }

    /// A redirect is handed back, never followed: it would carry the token elsewhere.
    #[tokio::test]
    async fn redirects_are_not_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A port nobody listens on: following the redirect would fail the call.
        let target = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port")
            .local_addr()
            .expect("an address");
        let server = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let url = format!(
            "http://{}/oauth/token",
            server.local_addr().expect("an address")
        );
        tokio::spawn(async move {
            let (mut socket, _) = server.accept().await.expect("a connection");
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{target}/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            socket.write_all(answer.as_bytes()).await.expect("written");
        });
        let resp = http_client(&Outbound::insecure())
            .post(url)
            .bearer_auth("secret-token")
            .send()
            .await
            .expect("an answer");
        assert_eq!(
            resp.status().as_u16(),
            307,
            "the redirect itself, not followed"
        );
    }

    #[tokio::test]
    async fn names_are_checked_by_what_they_resolve_to() {
        let strict = Outbound::default();
        let e = strict
            .check_store_url("https://localhost:1/graphql")
            .await
            .expect_err("localhost is loopback");
        assert!(e.0.contains("internal address"), "{e}");
        let listed = Outbound {
            allowed_hosts: vec!["localhost".into()],
            ..Outbound::default()
        };
        listed
            .check_store_url("https://localhost:1/graphql")
            .await
            .expect("listed hosts may be internal");
    }
}
