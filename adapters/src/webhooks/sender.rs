//! The HTTP sender of webhook deliveries and its address safety rule.
//!
//! A webhook URL is chosen by an institution's users, so Campus must not become a way to
//! reach its own network: a URL is refused unless it is `https`, carries no credentials,
//! and every address its host resolves to is public. The operator may allow host names or
//! address ranges (`CAMPUS_WEBHOOK_ALLOWED_HOSTS`: a local test receiver, a partner on the
//! private network); an allowed host may also use plain `http`.
//!
//! The rule is checked when a subscription is made and again before every delivery (DNS
//! answers change), and the request is sent to the very addresses that were checked, so a
//! second DNS answer cannot slip a private address in between (DNS rebinding). Redirects
//! are never followed, proxies from the environment are ignored, and at most
//! [`RESPONSE_EXCERPT`] bytes of a response body are read.

use campus_ports::{PortError, WebhookRequest, WebhookResponse, WebhookSender, RESPONSE_EXCERPT};
use ipnet::IpNet;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use url::{Host, Url};

/// The environment variable (and setting) listing the allowed hosts.
pub const ALLOWED_HOSTS_VAR: &str = "CAMPUS_WEBHOOK_ALLOWED_HOSTS";

/// What the operator allows besides public `https` receivers: host names (exact,
/// case-insensitive) and address ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    /// Lower-case host names, without a trailing dot (IDNs in their ASCII form).
    names: Vec<String>,
    nets: Vec<IpNet>,
}

impl AllowedHosts {
    /// Nothing allowed: only public `https` receivers.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses the `CAMPUS_WEBHOOK_ALLOWED_HOSTS` text: comma-separated host names
    /// (`localhost`, `hooks.internal.example`), CIDRs (`127.0.0.0/8`, `::1/128`) or bare
    /// addresses (taken as a /32 or /128). Blank text allows nothing.
    pub fn parse(text: &str) -> Result<AllowedHosts, String> {
        let mut allowed = AllowedHosts::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                allowed.nets.push(net.trunc());
                continue;
            }
            if let Ok(ip) = entry.parse::<IpAddr>() {
                allowed.nets.push(IpNet::from(ip));
                continue;
            }
            let invalid = || {
                format!(
                    "{ALLOWED_HOSTS_VAR}: `{entry}` is neither a host name nor an address or CIDR"
                )
            };
            match Host::parse(entry).map_err(|_| invalid())? {
                Host::Domain(name) => {
                    let name = name.trim_end_matches('.').to_ascii_lowercase();
                    if name.is_empty() {
                        return Err(invalid());
                    }
                    allowed.names.push(name);
                }
                // Forms the URL standard reads as an address (`0x7f.1`).
                Host::Ipv4(ip) => allowed.nets.push(IpNet::from(IpAddr::V4(ip))),
                Host::Ipv6(ip) => allowed.nets.push(IpNet::from(IpAddr::V6(ip))),
            }
        }
        Ok(allowed)
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.nets.is_empty()
    }

    /// Whether the host name is listed (case-insensitive, trailing dot ignored).
    pub fn allows_name(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.names
            .iter()
            .any(|name| name.eq_ignore_ascii_case(host))
    }

    /// Whether the address lies in an allowed range (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address too).
    pub fn allows_addr(&self, ip: IpAddr) -> bool {
        let canonical = canonical(ip);
        self.nets
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Why an address is not a public one (e.g. "a loopback address"), or `None` when it is.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let reason = if ip.is_unspecified() {
        "an unspecified address"
    } else if a == 0 {
        "a \"this network\" address (0.0.0.0/8)"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_private() {
        "a private address"
    } else if a == 100 && (b & 0xc0) == 64 {
        "a shared (carrier-grade NAT) address"
    } else if ip.is_link_local() {
        "a link-local address"
    } else if a == 192 && b == 0 && c == 0 {
        "an IETF protocol assignment address (192.0.0.0/24)"
    } else if ip.is_documentation() {
        "a documentation address"
    } else if a == 192 && b == 88 && c == 99 {
        "a 6to4 relay anycast address"
    } else if a == 198 && (b & 0xfe) == 18 {
        "a benchmarking address"
    } else if ip.is_broadcast() {
        "a broadcast address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if a >= 240 {
        "a reserved address"
    } else {
        return None;
    };
    Some(reason)
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_reason(v4);
    }
    let s = ip.segments();
    let reason = if ip.is_unspecified() {
        "an unspecified address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if s[..6] == [0; 6] {
        "an IPv4-compatible address (deprecated)"
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        // Well-known NAT64 prefix: the gateway connects to the embedded IPv4 address.
        let [hi, lo] = [s[6], s[7]];
        return v4_reason(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        "a local-use NAT64 address"
    } else if s[0] == 0x100 && s[1..4] == [0; 3] {
        "a discard-only address"
    } else if s[0] == 0x2001 && s[1] == 0 {
        "a Teredo address"
    } else if s[0] == 0x2001 && s[1] == 2 && s[2] == 0 {
        "a benchmarking address"
    } else if s[0] == 0x2001 && matches!(s[1] & 0xfff0, 0x10 | 0x20) {
        "an ORCHID address"
    } else if (s[0] == 0x2001 && s[1] == 0xdb8) || (s[0] == 0x3fff && s[1] < 0x1000) {
        "a documentation address"
    } else if s[0] == 0x2002 {
        "a 6to4 address"
    } else if (s[0] & 0xfe00) == 0xfc00 {
        "a unique-local address"
    } else if (s[0] & 0xffc0) == 0xfe80 {
        "a link-local address"
    } else if (s[0] & 0xffc0) == 0xfec0 {
        "a site-local address (deprecated)"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if (s[0] & 0xe000) != 0x2000 {
        // Only 2000::/3 is global unicast.
        "a reserved address"
    } else {
        return None;
    };
    Some(reason)
}

/// Parses a `Retry-After` value: delta-seconds, or an HTTP-date (a date already past gives
/// zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Why a URL cannot be sent to.
enum Refusal {
    /// The rule forbids it: retrying cannot help.
    Refused(String),
    /// The host name did not resolve (perhaps for now).
    Unresolved(String),
}

impl Refusal {
    /// At subscription time every refusal is the user's to fix.
    fn for_check(self) -> PortError {
        match self {
            Refusal::Refused(why) | Refusal::Unresolved(why) => PortError::Conflict(why),
        }
    }

    /// At delivery time a DNS failure may be transient.
    fn for_send(self) -> PortError {
        match self {
            Refusal::Refused(why) => PortError::Conflict(why),
            Refusal::Unresolved(why) => PortError::Unavailable(why),
        }
    }
}

/// A URL that passed the rule, with the addresses to connect to.
struct Vetted {
    url: Url,
    /// The host name and the checked addresses it must connect to (`None` for an address
    /// literal).
    pinned: Option<(String, Vec<SocketAddr>)>,
}

/// What a client is pinned to: the host name and its checked addresses (`None` for an
/// address literal).
type Pin = Option<(String, Vec<SocketAddr>)>;

/// Clients kept for reuse (their TLS setup and open connections), at most this many.
const CLIENTS_KEPT: usize = 256;

/// Sends webhook deliveries with reqwest (rustls), enforcing the address safety rule.
#[derive(Debug, Clone)]
pub struct HttpWebhookSender {
    timeout: Duration,
    allowed: AllowedHosts,
    /// One client per pin, reused while the host resolves to the same checked addresses
    /// (a changed answer is another pin, so a client never reaches an unchecked address).
    clients: Arc<std::sync::Mutex<HashMap<Pin, reqwest::Client>>>,
}

impl HttpWebhookSender {
    /// `timeout` bounds a whole delivery: resolving, connecting, sending and reading the
    /// response excerpt.
    pub fn new(timeout: Duration, allowed: AllowedHosts) -> Self {
        Self {
            timeout,
            allowed,
            clients: Arc::default(),
        }
    }

    /// The client pinned to `pin`, made on first use.
    fn client(&self, pin: &Pin) -> Result<reqwest::Client, PortError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(pin) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("Campus-Webhooks/", env!("CARGO_PKG_VERSION")));
        // Any name other than the checked one finds no address (it never should be asked).
        builder = builder.dns_resolver(Arc::new(NoFurtherDns));
        if let Some((name, addrs)) = pin {
            builder = builder.resolve_to_addrs(name, addrs);
        }
        let client = builder.build().map_err(|e| {
            PortError::Unavailable(format!("cannot build the HTTP client: {}", chain(&e)))
        })?;
        if clients.len() >= CLIENTS_KEPT {
            clients.clear();
        }
        clients.insert(pin.clone(), client.clone());
        Ok(client)
    }

    /// Applies the safety rule to `url`.
    async fn vet(&self, url: &str) -> Result<Vetted, Refusal> {
        let url =
            Url::parse(url).map_err(|e| Refusal::Refused(format!("the URL is not valid: {e}")))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(Refusal::Refused(format!(
                    "the URL's scheme must be https, not {other}"
                )))
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Refused(
                "the URL must not contain a user name or password".into(),
            ));
        }
        let host = url
            .host()
            .ok_or_else(|| Refusal::Refused("the URL has no host".into()))?
            .to_owned();
        let host_text = url.host_str().unwrap_or_default().to_owned();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Refusal::Refused("the URL has no port".into()))?;
        let http_refused = || {
            Refusal::Refused(format!(
                "the URL's scheme must be https (the host {host_text} is not in \
                 {ALLOWED_HOSTS_VAR}, which alone may use http)"
            ))
        };

        let name_allowed = matches!(&host, Host::Domain(name) if self.allowed.allows_name(name));
        if !https && !name_allowed && self.allowed.nets.is_empty() {
            return Err(http_refused());
        }

        let addrs: Vec<SocketAddr> = match &host {
            Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), port)],
            Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), port)],
            Host::Domain(name) => {
                let found = tokio::net::lookup_host((name.as_str(), port))
                    .await
                    .map_err(|e| {
                        Refusal::Unresolved(format!("the host {name} does not resolve: {e}"))
                    })?;
                let mut addrs: Vec<SocketAddr> = Vec::new();
                for addr in found {
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
                if addrs.is_empty() {
                    return Err(Refusal::Unresolved(format!(
                        "the host {name} resolves to no address"
                    )));
                }
                addrs
            }
        };

        if !name_allowed {
            for addr in &addrs {
                let ip = addr.ip();
                if self.allowed.allows_addr(ip) {
                    continue;
                }
                if let Some(reason) = non_public_reason(canonical(ip)) {
                    let which = match host {
                        Host::Domain(_) => format!(" ({ip})"),
                        _ => String::new(),
                    };
                    return Err(Refusal::Refused(format!(
                        "the host {host_text} resolves to {reason}{which}; set \
                         {ALLOWED_HOSTS_VAR} to allow it"
                    )));
                }
            }
            if !https && !addrs.iter().all(|a| self.allowed.allows_addr(a.ip())) {
                return Err(http_refused());
            }
        }

        let pinned = match host {
            Host::Domain(name) => Some((name, addrs)),
            Host::Ipv4(_) | Host::Ipv6(_) => None,
        };
        Ok(Vetted { url, pinned })
    }

    /// One delivery, without the overall timeout.
    async fn deliver(&self, request: &WebhookRequest) -> Result<WebhookResponse, PortError> {
        let vetted = self.vet(&request.url).await.map_err(Refusal::for_send)?;

        let mut headers = HeaderMap::with_capacity(request.headers.len());
        for (name, value) in &request.headers {
            let invalid = || PortError::Conflict(format!("the header {name} is not valid"));
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
            headers.append(header, value);
        }

        // The client of the addresses just checked: it connects to no other.
        let client = self.client(&vetted.pinned)?;

        let response = client
            .post(vetted.url)
            .headers(headers)
            .body(request.body.clone())
            .send()
            .await
            .map_err(|e| {
                let e = e.without_url();
                let what = if e.is_connect() {
                    "cannot connect to the receiver"
                } else {
                    "the request failed"
                };
                PortError::Unavailable(format!("{what}: {}", chain(&e)))
            })?;

        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body_excerpt = read_excerpt(response).await;
        Ok(WebhookResponse {
            status,
            retry_after,
            body_excerpt,
        })
    }
}

/// The client's resolver: the checked host is pinned to its checked addresses (reqwest
/// applies those overrides first), so a lookup reaching this resolver is refused rather
/// than answered by a DNS query that was never checked.
struct NoFurtherDns;

impl reqwest::dns::Resolve for NoFurtherDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let why = format!("{} was not among the checked hosts", name.as_str());
        Box::pin(std::future::ready(Err(why.into())))
    }
}

/// Reads at most [`RESPONSE_EXCERPT`] bytes of the body, then drops the response (the rest
/// is never read). A body that breaks off keeps what arrived.
async fn read_excerpt(mut response: reqwest::Response) -> String {
    let mut bytes: Vec<u8> = Vec::new();
    while bytes.len() < RESPONSE_EXCERPT {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(RESPONSE_EXCERPT - bytes.len());
                bytes.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    drop(response);
    // Drop a character cut in half at the end rather than showing a replacement for it.
    if let Err(e) = std::str::from_utf8(&bytes) {
        if e.error_len().is_none() {
            bytes.truncate(e.valid_up_to());
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An error and its sources, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait::async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn send(&self, request: &WebhookRequest) -> Result<WebhookResponse, PortError> {
        match tokio::time::timeout(self.timeout, self.deliver(request)).await {
            Ok(result) => result,
            Err(_) => Err(PortError::Unavailable(format!(
                "the receiver did not answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    async fn check_url(&self, url: &str) -> Result<(), PortError> {
        match tokio::time::timeout(self.timeout, self.vet(url)).await {
            Ok(result) => result.map(|_| ()).map_err(Refusal::for_check),
            Err(_) => Err(PortError::Unavailable(format!(
                "resolving the URL's host took more than {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_the_allowed_hosts() {
        assert!(AllowedHosts::parse("").unwrap().is_empty());
        assert!(AllowedHosts::parse(" , ").unwrap().is_empty());
        assert_eq!(AllowedHosts::none(), AllowedHosts::parse("").unwrap());

        let allowed = AllowedHosts::parse(
            "LocalHost, 127.0.0.0/8 ,::1/128, 10.1.2.3, fd00::1, hooks.example.",
        )
        .unwrap();
        assert!(allowed.allows_name("localhost"));
        assert!(allowed.allows_name("LOCALHOST."));
        assert!(allowed.allows_name("hooks.example"));
        assert!(!allowed.allows_name("sub.localhost"));
        assert!(!allowed.allows_name("example"));
        assert!(allowed.allows_addr(ip("127.4.5.6")));
        assert!(allowed.allows_addr(ip("::1")));
        assert!(allowed.allows_addr(ip("::ffff:127.0.0.1")));
        assert!(allowed.allows_addr(ip("10.1.2.3")));
        assert!(!allowed.allows_addr(ip("10.1.2.4")));
        assert!(allowed.allows_addr(ip("fd00::1")));
        assert!(!allowed.allows_addr(ip("fd00::2")));
        assert!(!allowed.allows_addr(ip("8.8.8.8")));

        // Host bits of a CIDR are ignored.
        assert!(AllowedHosts::parse("192.168.1.7/24")
            .unwrap()
            .allows_addr(ip("192.168.1.200")));

        for bad in [
            "localhost:8080",
            "http://localhost",
            "10.0.0.0/33",
            "a b",
            "exa mple.com",
        ] {
            let err = AllowedHosts::parse(bad).unwrap_err();
            assert!(err.contains(ALLOWED_HOSTS_VAR), "{err}");
        }
    }

    #[test]
    fn classifies_addresses() {
        let refused = [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "this network"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "carrier-grade"),
            ("100.127.255.255", "carrier-grade"),
            ("169.254.169.254", "link-local"),
            ("192.0.0.8", "IETF"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.1", "documentation"),
            ("203.0.113.1", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("64:ff9b::10.0.0.1", "private"),
            ("64:ff9b:1::1", "NAT64"),
            ("100::1", "discard"),
            ("2001::1", "Teredo"),
            ("2001:2::1", "benchmarking"),
            ("2001:10::1", "ORCHID"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("2002:a00:1::1", "6to4"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("4000::1", "reserved"),
        ];
        for (addr, why) in refused {
            let reason = non_public_reason(ip(addr));
            assert!(
                reason.is_some_and(|r| r.contains(why)),
                "{addr}: {reason:?}, expected {why}"
            );
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2001:4860:4860::8888",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "3fff:1000::1",
        ];
        for addr in public {
            assert_eq!(non_public_reason(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn parses_retry_after() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_767); // 1994-11-06 08:49:27Z
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(10))
        );
        // The obsolete forms of an HTTP-date.
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:37 1994", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:17 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    fn conflict(result: Result<(), PortError>) -> String {
        match result {
            Err(PortError::Conflict(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn refuses_urls_without_network() {
        let sender = HttpWebhookSender::new(Duration::from_secs(5), AllowedHosts::none());
        let why = conflict(sender.check_url("https://127.0.0.1/hook").await);
        assert_eq!(
            why,
            "the host 127.0.0.1 resolves to a loopback address; set \
             CAMPUS_WEBHOOK_ALLOWED_HOSTS to allow it"
        );
        for (url, why) in [
            ("not a url", "not valid"),
            ("ftp://example.com/", "https"),
            ("http://example.com/", "https"),
            ("https://user:pass@example.com/", "user name or password"),
            ("https://token@example.com/", "user name or password"),
            ("https://[::1]/", "loopback"),
            ("https://[::ffff:127.0.0.1]/", "loopback"),
            ("https://10.0.0.1/", "private"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://100.64.1.1/", "carrier-grade"),
            ("https://[fe80::1]/", "link-local"),
            ("https://[fd00::1]/", "unique-local"),
            ("https://224.0.0.1/", "multicast"),
            ("https://0.0.0.0/", "unspecified"),
            ("https://2130706433/", "loopback"),
        ] {
            let got = conflict(sender.check_url(url).await);
            assert!(got.contains(why), "{url}: {got}");
        }
        // The password never appears in the reason.
        let got = conflict(sender.check_url("https://user:hunter2@example.com/").await);
        assert!(!got.contains("hunter2"));

        // A public address literal passes (no DNS, no connection).
        sender
            .check_url("https://93.184.216.34/hook")
            .await
            .unwrap();
        // http only for allowed hosts, even when the address is public.
        let why = conflict(sender.check_url("http://93.184.216.34/hook").await);
        assert!(why.contains("https"), "{why}");
        let allowed = AllowedHosts::parse("93.184.216.0/24").unwrap();
        let sender = HttpWebhookSender::new(Duration::from_secs(5), allowed);
        sender.check_url("http://93.184.216.34/hook").await.unwrap();
    }

    /// A hand-written HTTP/1.1 receiver; each request's text goes to `seen`.
    async fn receiver() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen, requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(answer(socket, seen.clone()));
            }
        });
        (addr, requests)
    }

    async fn answer(mut socket: TcpStream, seen: mpsc::UnboundedSender<String>) {
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        // The head, then as much body as Content-Length says.
        let head_end = loop {
            if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while request.len() < head_end + length {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&request).into_owned();
        let path = text.split(' ').nth(1).unwrap_or_default().to_owned();
        let _ = seen.send(text);
        let reply = |status: &str, extra: &str, body: &str| {
            format!(
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let response = match path.as_str() {
            "/ok" => reply("200 OK", "", "ok"),
            "/redirect" => reply("302 Found", "Location: /ok\r\n", ""),
            "/busy" => reply("503 Service Unavailable", "Retry-After: 7\r\n", "busy"),
            "/big" => reply("200 OK", "", &"é".repeat(512 * 1024)),
            "/hang" => {
                // Never answer; wait for the sender to give up and close.
                while socket.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                return;
            }
            _ => reply("404 Not Found", "", ""),
        };
        // The sender may hang up early (the big body): ignore write errors.
        let _ = socket.write_all(response.as_bytes()).await;
        let _ = socket.shutdown().await;
    }

    fn request(url: String) -> WebhookRequest {
        WebhookRequest {
            url,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("webhook-id".into(), "msg_1".into()),
            ],
            body: r#"{"type":"ping"}"#.into(),
        }
    }

    #[tokio::test]
    async fn sends_to_a_local_receiver_only_when_allowed() {
        let (addr, mut seen) = receiver().await;
        let url = |path: &str| format!("http://{addr}{path}");

        // Refused without the allow-list, at check time and at send time; nothing is sent.
        let closed = HttpWebhookSender::new(Duration::from_secs(5), AllowedHosts::none());
        let why = conflict(closed.check_url(&url("/ok")).await);
        assert!(why.contains("https"), "{why}");
        let https = format!("https://{addr}/ok");
        let why = conflict(closed.check_url(&https).await);
        assert!(
            why.contains("loopback") && why.contains(ALLOWED_HOSTS_VAR),
            "{why}"
        );
        match closed.send(&request(https)).await {
            Err(PortError::Conflict(why)) => assert!(why.contains("loopback"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(seen.try_recv().is_err());

        // A generous timeout (the machine may be busy), but a short one for the silent
        // receiver below.
        let allowed = AllowedHosts::parse("127.0.0.0/8").unwrap();
        let sender = HttpWebhookSender::new(Duration::from_secs(20), allowed.clone());
        sender.check_url(&url("/ok")).await.unwrap();

        // Sent, with its headers and body.
        let response = sender.send(&request(url("/ok"))).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body_excerpt, "ok");
        assert_eq!(response.retry_after, None);
        let received = seen.recv().await.unwrap().to_ascii_lowercase();
        assert!(received.starts_with("post /ok http/1.1\r\n"), "{received}");
        assert!(received.contains("\r\nwebhook-id: msg_1\r\n"), "{received}");
        assert!(received.ends_with(r#"{"type":"ping"}"#), "{received}");

        // A redirect is the answer, not followed.
        let response = sender.send(&request(url("/redirect"))).await.unwrap();
        assert_eq!(response.status, 302);
        assert!(seen.recv().await.unwrap().starts_with("POST /redirect "));
        assert!(seen.try_recv().is_err(), "the redirect was followed");

        // Retry-After in seconds.
        let response = sender.send(&request(url("/busy"))).await.unwrap();
        assert_eq!(response.status, 503);
        assert_eq!(response.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(response.body_excerpt, "busy");

        // A big body is cut to the excerpt (2-byte characters: 4096 bytes are 2048 of them).
        let response = sender.send(&request(url("/big"))).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body_excerpt.len(), RESPONSE_EXCERPT);
        assert!(response.body_excerpt.chars().all(|c| c == 'é'));

        // A receiver that never answers: Unavailable once the timeout has passed.
        let timeout = Duration::from_millis(300);
        let impatient = HttpWebhookSender::new(timeout, allowed);
        let started = Instant::now();
        match impatient.send(&request(url("/hang"))).await {
            Err(PortError::Unavailable(why)) => assert!(why.contains("300 ms"), "{why}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(started.elapsed() >= timeout);
        assert!(started.elapsed() < Duration::from_secs(10));

        // An allowed host name: resolved, then sent to the addresses checked.
        let by_name = HttpWebhookSender::new(
            Duration::from_secs(20),
            AllowedHosts::parse("localhost").unwrap(),
        );
        let response = by_name
            .send(&request(format!("http://localhost:{}/ok", addr.port())))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
    }
}
