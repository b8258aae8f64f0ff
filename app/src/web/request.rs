//! The context of every request: its correlation id (from a W3C `traceparent`, else
//! `X-Correlation-Id`, else `X-Request-Id`, else new) in the request, the logs and the
//! response, with a `traceparent` that continues the trace; the body size limit; JSON for
//! every error that escaped the typed responses; and the event context the use cases record
//! with what the request changes.

use super::error;
use campus_core::engine::valid_correlation_id;
use campus_ports::EventContext;
use poem::http::HeaderMap;
use poem::{Endpoint, IntoResponse, Request};
use tracing::Instrument;

/// The request's correlation id (see [`TraceContext::of`] for where it comes from).
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

const CORRELATION_HEADER: &str = "x-correlation-id";
const REQUEST_ID_HEADER: &str = "x-request-id";
const TRACEPARENT_HEADER: &str = "traceparent";

/// A W3C trace context (`traceparent`), the parts Campus reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16 bytes, never all zero.
    pub trace_id: u128,
    /// The caller's span (the parent of ours): 8 bytes, never all zero.
    pub parent_id: u64,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header value: `00-<32 hex trace id>-<16 hex parent id>-<2 hex
    /// flags>`, lowercase hex, neither id all zeros. A later version (`01`–`fe`) is read the
    /// same way when its first four fields are (it may append fields after a `-`); only its
    /// sampled flag is kept, since the other bits mean nothing to version 00. `None` for
    /// anything else.
    pub fn parse(raw: &str) -> Option<TraceParent> {
        let raw = raw.trim_matches([' ', '\t']);
        let b = raw.as_bytes();
        let hex = |s: &str| s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
        let field = |from: usize, len: usize| raw.get(from..from + len).filter(|f| hex(f));
        let version = u8::from_str_radix(field(0, 2)?, 16).ok()?;
        let well_formed = match version {
            0 => b.len() == 55,
            0xff => false,
            _ => b.len() == 55 || (b.len() > 55 && b[55] == b'-'),
        };
        if !well_formed || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let trace_id = u128::from_str_radix(field(3, 32)?, 16).ok()?;
        let parent_id = u64::from_str_radix(field(36, 16)?, 16).ok()?;
        let flags = u8::from_str_radix(field(53, 2)?, 16).ok()?;
        if trace_id == 0 || parent_id == 0 {
            return None;
        }
        let flags = if version == 0 { flags } else { flags & 0x01 };
        Some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The header value (version 00).
    pub fn header(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

/// Where a request's correlation id came from, and the trace it continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub correlation_id: String,
    /// The trace id of the `traceparent` answered (the correlation id's own when it is one).
    pub trace_id: u128,
    /// The incoming `traceparent`'s flags, else `01` (sampled).
    pub flags: u8,
}

impl TraceContext {
    /// The correlation id of a request: the trace id of a valid `traceparent` (as 32 lowercase
    /// hex digits), else a well-formed `X-Correlation-Id`, else a well-formed `X-Request-Id`
    /// (letters, digits and `-_.:`, at most 64), else a new UUIDv7. Malformed values are
    /// ignored, never an error.
    pub fn of(headers: &HeaderMap) -> TraceContext {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(parent) = header(TRACEPARENT_HEADER).and_then(TraceParent::parse) {
            return TraceContext {
                correlation_id: format!("{:032x}", parent.trace_id),
                trace_id: parent.trace_id,
                flags: parent.flags,
            };
        }
        let correlation_id = [CORRELATION_HEADER, REQUEST_ID_HEADER]
            .into_iter()
            .filter_map(header)
            .find(|v| valid_correlation_id(v))
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        TraceContext {
            trace_id: trace_id_of(&correlation_id),
            correlation_id,
            flags: 0x01,
        }
    }

    /// The `traceparent` of the response: the same trace, with a new span of ours (random,
    /// never zero) as the parent of whatever follows.
    pub fn response_traceparent(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id,
            parent_id: rand::random::<u64>().max(1),
            flags: self.flags,
        }
    }
}

/// The trace id a correlation id stands for, the same for the same id everywhere: the id
/// itself when it is a UUID or 32 hex digits (and not zero), else its 128-bit FNV-1a hash.
pub fn trace_id_of(correlation_id: &str) -> u128 {
    uuid::Uuid::try_parse(correlation_id)
        .map(|u| u.as_u128())
        .ok()
        .filter(|id| *id != 0)
        .unwrap_or_else(|| fnv1a_128(correlation_id.as_bytes()).max(1))
}

/// 128-bit FNV-1a: stable across releases and platforms (unlike std's hasher), no
/// dependency; not a cryptographic hash, and nothing here needs one.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME))
}

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// Around every request: a correlation id (see [`TraceContext::of`]) in the request, the
/// logs and the response (`X-Correlation-Id`, and a `traceparent` continuing the trace); a
/// body size limit; and JSON for every error that escaped the typed responses.
pub async fn frame<E: Endpoint>(next: E, mut req: Request) -> poem::Result<poem::Response> {
    let trace = TraceContext::of(req.headers());
    let id = trace.correlation_id.clone();
    req.extensions_mut().insert(CorrelationId(id.clone()));
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), correlation_id = %id);
    let mut resp = async {
        let body = req.take_body();
        if !body.is_empty() {
            match body.into_bytes_limit(MAX_BODY).await {
                Ok(bytes) => req.set_body(bytes),
                Err(e) => return error::json_error(e.into()).await,
            }
        }
        match next.call(req).await {
            Ok(r) => r.into_response(),
            // Typed API errors already carry their JSON response.
            Err(e) if e.is_from_response() => e.into_response(),
            Err(e) => error::json_error(e).await,
        }
    }
    .instrument(span)
    .await;
    let headers = resp.headers_mut();
    if let Ok(v) = poem::http::HeaderValue::from_str(&id) {
        headers.insert(CORRELATION_HEADER, v);
    }
    if let Ok(v) = poem::http::HeaderValue::from_str(&trace.response_traceparent().header()) {
        headers.insert(TRACEPARENT_HEADER, v);
    }
    Ok(resp)
}

/// The event context of a request.
pub fn event_context(req: &Request) -> EventContext {
    EventContext {
        correlation_id: req.extensions().get::<CorrelationId>().map(|c| c.0.clone()),
        // Anonymous; see `BearerAuth::context` for a logged-in user's requests.
        actor_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_version_00_traceparent_parses_and_prints_back() {
        let p = TraceParent::parse(VALID).unwrap();
        assert_eq!(
            p,
            TraceParent {
                trace_id: 0x0af7651916cd43dd8448eb211c80319c,
                parent_id: 0xb7ad6b7169203331,
                flags: 1,
            }
        );
        assert_eq!(p.header(), VALID);
        let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        assert_eq!(TraceParent::parse(unsampled).unwrap().flags, 0);
        assert_eq!(TraceParent::parse(&format!(" {VALID}\t")), Some(p));
    }

    #[test]
    fn malformed_or_zero_traceparents_are_ignored() {
        for bad in [
            "",
            "00",
            "garbage",
            // all-zero trace id, all-zero parent id
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            // uppercase hex, a short or long field, wrong separators
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319cc-b7ad6b7169203331-01",
            "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333g-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
            // version 00 has exactly four fields; version ff is invalid
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "0x-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-+af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-é1",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_for_its_first_fields() {
        let future = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03-what-comes";
        let p = TraceParent::parse(future).unwrap();
        assert_eq!(
            (p.trace_id, p.flags),
            (0x0af7651916cd43dd8448eb211c80319c, 1)
        );
        let glued = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03x";
        assert_eq!(TraceParent::parse(glued), None);
    }

    #[test]
    fn the_correlation_id_comes_from_traceparent_then_correlation_then_request_id() {
        let all = headers(&[
            ("traceparent", VALID),
            ("x-correlation-id", "corr-1"),
            ("x-request-id", "req-1"),
        ]);
        let t = TraceContext::of(&all);
        assert_eq!((t.correlation_id.as_str(), t.flags), (TRACE, 1));
        let bad_trace = headers(&[
            ("traceparent", "00-zz-zz-01"),
            ("x-correlation-id", "corr-1"),
            ("x-request-id", "req-1"),
        ]);
        assert_eq!(TraceContext::of(&bad_trace).correlation_id, "corr-1");
        let bad_correlation = headers(&[
            ("x-correlation-id", "has spaces"),
            ("x-request-id", "req-1"),
        ]);
        assert_eq!(TraceContext::of(&bad_correlation).correlation_id, "req-1");
        let long = "r".repeat(65);
        let nothing_usable = headers(&[("x-request-id", &long)]);
        let fresh = TraceContext::of(&nothing_usable);
        let uuid = uuid::Uuid::parse_str(&fresh.correlation_id).expect("a new UUID");
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(fresh.trace_id, uuid.as_u128(), "a UUID is its own trace id");
        assert_eq!(fresh.flags, 1);
    }

    #[test]
    fn the_response_continues_the_trace_with_a_new_span() {
        let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        let t = TraceContext::of(&headers(&[("traceparent", incoming)]));
        let (a, b) = (t.response_traceparent(), t.response_traceparent());
        assert_eq!(
            (a.trace_id, a.flags),
            (0x0af7651916cd43dd8448eb211c80319c, 0)
        );
        assert_ne!(
            a.parent_id, 0xb7ad6b7169203331,
            "our span, not the caller's"
        );
        assert_ne!(a.parent_id, b.parent_id, "a new span each time");
        assert_eq!(TraceParent::parse(&a.header()), Some(a));
    }

    #[test]
    fn other_ids_map_to_a_stable_trace_id() {
        assert_eq!(trace_id_of(TRACE), 0x0af7651916cd43dd8448eb211c80319c);
        let uuid = "0190b2c4-1234-7abc-8def-0123456789ab";
        assert_eq!(trace_id_of(uuid), 0x0190b2c412347abc8def0123456789ab);
        let custom = trace_id_of("req-abc-123");
        assert_eq!(custom, trace_id_of("req-abc-123"), "deterministic");
        assert_ne!(custom, trace_id_of("req-abc-124"));
        assert_ne!(custom, 0);
        // Not hex, or hex of the wrong shape, or zero: hashed.
        assert_eq!(
            trace_id_of(&"0".repeat(32)),
            fnv1a_128("0".repeat(32).as_bytes())
        );
        let dashed = "0af76519-16cd-43dd-8448eb211c80319c";
        assert_eq!(trace_id_of(dashed), fnv1a_128(dashed.as_bytes()));
        // The reference values of FNV-1a 128.
        assert_eq!(fnv1a_128(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }
}
