//! Who may use the console: a session cookie that proves a sign-in without holding the token, the
//! CSRF token of its forms, and the same-origin check of its actions.
//!
//! The cookie is `EXPIRY.NONCE.MAC`: the expiry in Unix seconds, 16 random bytes, and an HMAC of
//! both under a key derived from `ADMIN_TOKEN` ([`BearerTokens::derive_key`]). Any instance with the
//! same token accepts it, a restart keeps it, and changing the token signs everyone out. The CSRF
//! token is an HMAC of the cookie under the same key: a page of another site can neither read it
//! nor compute it.

use actix_web::HttpRequest;
use actix_web::http::header;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use url::Url;

use crate::http::tokens::BearerTokens;

pub const COOKIE_NAME: &str = "twenty_mirror_session";

/// How long a sign-in lasts: a working day, after which the operator signs in again.
pub const SESSION_LIFETIME: TimeDelta = TimeDelta::hours(12);

/// The key that signs sessions and CSRF tokens.
pub struct SessionKey([u8; 32]);

/// A verified (or just issued) session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    cookie: String,
    pub expires_at: DateTime<Utc>,
}

impl SessionKey {
    pub fn of(token: &BearerTokens) -> Self {
        SessionKey(token.derive_key(b"twenty-mirror console session"))
    }

    fn mac(&self, purpose: &str, text: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(text.as_bytes());
        mac
    }

    /// A new session, from now until [`SESSION_LIFETIME`] later.
    pub fn issue(&self, now: DateTime<Utc>) -> Result<Session, getrandom::Error> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce)?;
        // The cookie dates its expiry in whole seconds; so does the session.
        let expires_at = now + SESSION_LIFETIME;
        Ok(self.issue_with(
            expires_at - TimeDelta::nanoseconds(expires_at.timestamp_subsec_nanos().into()),
            nonce,
        ))
    }

    fn issue_with(&self, expires_at: DateTime<Utc>, nonce: [u8; 16]) -> Session {
        let signed = format!("{}.{}", expires_at.timestamp(), hex::encode(nonce));
        let mac = hex::encode(self.mac("session", &signed).finalize().into_bytes());
        Session { cookie: format!("{signed}.{mac}"), expires_at }
    }

    /// The session a cookie value proves, if its MAC is ours and it has not expired.
    pub fn verify(&self, cookie: &str, now: DateTime<Utc>) -> Option<Session> {
        let (signed, mac) = cookie.rsplit_once('.')?;
        let (expiry, _nonce) = signed.split_once('.')?;
        let mac = hex::decode(mac).ok()?;
        self.mac("session", signed).verify_slice(&mac).ok()?;
        let expires_at = DateTime::from_timestamp(expiry.parse().ok()?, 0)?;
        (now < expires_at).then(|| Session { cookie: cookie.to_owned(), expires_at })
    }

    /// The CSRF token of a session's forms.
    pub fn csrf_token(&self, session: &Session) -> String {
        hex::encode(self.mac("csrf", &session.cookie).finalize().into_bytes())
    }

    /// Whether `presented` is the session's CSRF token, compared in constant time.
    pub fn check_csrf(&self, session: &Session, presented: &str) -> bool {
        hex::decode(presented).is_ok_and(|mac| self.mac("csrf", &session.cookie).verify_slice(&mac).is_ok())
    }
}

impl Session {
    /// The `Set-Cookie` value that stores the session in the browser: `HttpOnly` (no script reads
    /// it), `SameSite=Strict` (no other site's request carries it), `Secure` over HTTPS.
    pub fn set_cookie(&self, now: DateTime<Utc>, secure: bool) -> String {
        // Rounded up: the expiry is a whole second, `now` is not.
        let max_age = ((self.expires_at - now).num_milliseconds() + 999).div_euclid(1000).max(0);
        let secure = if secure { "; Secure" } else { "" };
        format!("{COOKIE_NAME}={}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}", self.cookie)
    }
}

/// The `Set-Cookie` value that removes the session.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}")
}

/// The session the request's cookie proves.
pub fn of_request(request: &HttpRequest, key: &SessionKey, now: DateTime<Utc>) -> Option<Session> {
    let cookies = request.headers().get(header::COOKIE)?.to_str().ok()?;
    cookies
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE_NAME)
        .find_map(|(_, value)| key.verify(value, now))
}

/// Whether the request came over HTTPS, directly or through a proxy that says so
/// (`X-Forwarded-Proto: https`, or `Forwarded: proto=https`).
pub fn is_https(request: &HttpRequest) -> bool {
    request.connection_info().scheme() == "https"
}

/// Whether the request's `Origin` (or, when a browser sent none, its `Referer`) names the host the
/// request was sent to. The scheme is not compared: behind a proxy that terminates TLS without
/// saying so, the page is `https` and the request `http`, and the same host is the same site.
pub fn is_same_origin(request: &HttpRequest) -> bool {
    let headers = request.headers();
    let Some(source) = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)) else {
        return false;
    };
    let Some(url) = source.to_str().ok().and_then(|text| Url::parse(text).ok()) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    let Some(host) = url.host_str() else { return false };
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    authority.eq_ignore_ascii_case(request.connection_info().host())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use secrecy::SecretString;

    use super::*;

    fn key(token: &str) -> SessionKey {
        SessionKey::of(&BearerTokens::new([&SecretString::from(token.to_owned())]))
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn a_session_verifies_until_it_expires() {
        let key = key("admin");
        let session = key.issue(at(0)).unwrap();
        assert_eq!(session.expires_at, at(12 * 3600));
        assert_eq!(key.verify(&session.cookie, at(0)), Some(session.clone()));
        assert!(key.verify(&session.cookie, at(12 * 3600 - 1)).is_some());
        assert_eq!(key.verify(&session.cookie, at(12 * 3600)), None, "expired at its expiry");
    }

    #[test]
    fn the_cookie_never_holds_the_token() {
        let token = "a-token-of-some-length";
        let session = key(token).issue(at(0)).unwrap();
        assert!(!session.cookie.contains(token));
        assert!(!session.set_cookie(at(0), true).contains(token));
    }

    #[test]
    fn a_forged_or_altered_cookie_is_refused() {
        let key = key("admin");
        let session = key.issue_with(at(100), [7; 16]);
        let (expiry, rest) = session.cookie.split_once('.').unwrap();
        assert_eq!(expiry, at(100).timestamp().to_string());
        // A later expiry with the old MAC.
        assert_eq!(key.verify(&format!("{}.{rest}", at(10_000).timestamp()), at(0)), None);
        // Another token's key.
        assert_eq!(self::key("other").verify(&session.cookie, at(0)), None);
        for garbage in ["", ".", "..", "1.2.3", "x.y.zz", &format!("{}.", session.cookie)] {
            assert_eq!(key.verify(garbage, at(0)), None, "{garbage:?}");
        }
        assert!(key.verify(&session.cookie, at(0)).is_some());
    }

    #[test]
    fn sessions_are_distinct() {
        let key = key("admin");
        assert_ne!(key.issue(at(0)).unwrap().cookie, key.issue(at(0)).unwrap().cookie);
    }

    #[test]
    fn the_csrf_token_belongs_to_its_session() {
        let key = key("admin");
        let session = key.issue_with(at(100), [1; 16]);
        let other = key.issue_with(at(100), [2; 16]);
        let token = key.csrf_token(&session);
        assert!(key.check_csrf(&session, &token));
        assert!(!key.check_csrf(&other, &token), "another session's token");
        assert!(!key.check_csrf(&session, ""));
        assert!(!key.check_csrf(&session, &token[..10]));
        assert!(!key.check_csrf(&session, "not hex"));
        assert!(!self::key("other").check_csrf(&session, &token), "another token's key");
    }

    #[test]
    fn the_cookie_attributes() {
        let session = key("admin").issue_with(at(3600), [1; 16]);
        let plain = session.set_cookie(at(0), false);
        assert!(plain.starts_with(&format!("{COOKIE_NAME}={}; ", session.cookie)), "{plain}");
        assert!(plain.contains("; Max-Age=3600; HttpOnly; SameSite=Strict"), "{plain}");
        assert!(!plain.contains("Secure"));
        assert!(session.set_cookie(at(0), true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }

    #[test]
    fn the_session_is_read_among_other_cookies() {
        let key = key("admin");
        let session = key.issue(Utc::now()).unwrap();
        let request = TestRequest::default()
            .insert_header((header::COOKIE, format!("theme=dark; {COOKIE_NAME}={}; x=y", session.cookie)))
            .to_http_request();
        assert_eq!(of_request(&request, &key, Utc::now()), Some(session));
        let request = TestRequest::default()
            .insert_header((header::COOKIE, format!("{COOKIE_NAME}=forged")))
            .to_http_request();
        assert_eq!(of_request(&request, &key, Utc::now()), None);
        assert_eq!(of_request(&TestRequest::default().to_http_request(), &key, Utc::now()), None);
    }

    fn request(host: &str, headers: &[(&str, &str)]) -> HttpRequest {
        let mut request = TestRequest::default().insert_header((header::HOST, host));
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        request.to_http_request()
    }

    #[test]
    fn actions_must_come_from_the_same_origin() {
        let host = "mirror.example.com:8080";
        assert!(is_same_origin(&request(host, &[("Origin", "http://mirror.example.com:8080")])));
        assert!(is_same_origin(&request(host, &[("Origin", "https://Mirror.Example.com:8080")])));
        assert!(is_same_origin(&request("mirror.example.com", &[("Origin", "https://mirror.example.com")])));
        assert!(is_same_origin(&request(host, &[("Referer", "http://mirror.example.com:8080/runs/3")])));
        for refused in [
            vec![],
            vec![("Origin", "http://evil.example.com:8080")],
            vec![("Origin", "http://mirror.example.com:8081")],
            vec![("Origin", "http://mirror.example.com")],
            vec![("Origin", "null")],
            vec![("Origin", "file:///mirror.example.com:8080")],
            vec![("Referer", "http://evil.example.com/?mirror.example.com:8080")],
            // A foreign Origin is not excused by a same-origin Referer.
            vec![("Origin", "http://evil.example.com"), ("Referer", "http://mirror.example.com:8080/")],
        ] {
            assert!(!is_same_origin(&request(host, &refused)), "{refused:?}");
        }
    }

    #[test]
    fn https_is_seen_through_a_proxy() {
        assert!(!is_https(&request("m", &[])));
        assert!(is_https(&request("m", &[("X-Forwarded-Proto", "https")])));
        assert!(!is_https(&request("m", &[("X-Forwarded-Proto", "http")])));
    }
}
