//! AWS-shaped identifiers, ARNs and timestamps.

use rand::Rng;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The account every local ARN names.
pub const ACCOUNT: &str = "000000000000";

pub fn rand_hex(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap())
        .collect()
}

fn rand_from(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// `vpc-0a1b…` with 17 hex digits, as EC2 issues them.
pub fn ec2_id(prefix: &str) -> String {
    format!("{prefix}-{}", rand_hex(17))
}

/// Hosted zone ids: `Z` then 20 upper-case alphanumerics.
pub fn zone_id() -> String {
    format!(
        "Z{}",
        rand_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 20)
    )
}

/// Lower-case alphanumerics, like the per-account part of RDS endpoint names.
pub fn rand_lower(n: usize) -> String {
    rand_from(b"abcdefghijklmnopqrstuvwxyz0123456789", n)
}

/// Secrets Manager's 6-character ARN suffix.
pub fn secret_suffix() -> String {
    rand_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 6)
}

pub fn uuid() -> String {
    let h = rand_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A password of `len` characters. Characters that break connection strings, passfiles
/// or shell quoting are never used, as RDS excludes `/`, `@`, `"` and space.
pub fn password(len: usize, punctuation: bool) -> String {
    let mut alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".to_vec();
    if punctuation {
        alphabet.extend_from_slice(b"!#$%&()*+,-.;<=>?[]^_{|}~");
    }
    rand_from(&alphabet, len.clamp(8, 4096))
}

pub fn arn(service: &str, region: &str, rest: &str) -> String {
    format!("arn:aws:{service}:{region}:{ACCOUNT}:{rest}")
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

pub fn now_str() -> String {
    rfc3339(now())
}

pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Seconds since the epoch as f64, for metrics.
pub fn unix_now() -> f64 {
    let t = now();
    t.unix_timestamp() as f64 + f64::from(t.nanosecond()) / 1e9
}

/// Deterministic 64-bit FNV-1a hash (stable across runs, unlike `DefaultHasher`).
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let v = ec2_id("vpc");
        assert_eq!(v.len(), 4 + 17);
        assert!(v[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(zone_id().len(), 21);
        assert_eq!(uuid().len(), 36);
        assert!(parse_time(&now_str()).is_some());
        assert!(!password(32, true).contains(['/', '@', '"', ' ', ':', '\\', '\'']));
    }
}
