//! Bearer tokens, compared in constant time: `ADMIN_TOKEN` for `/admin/*`, `READ_API_TOKENS` for
//! the read API.

use actix_web::HttpRequest;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The accepted tokens, kept only as MACs so that comparing a candidate costs the same time
/// whatever it shares with one of them, its length included.
pub struct BearerTokens {
    macs: Vec<Vec<u8>>,
}

/// The key of those MACs. It hides nothing (the tokens are the secrets); it only makes each
/// comparison a fixed-length, constant-time one.
const COMPARISON_KEY: &[u8] = b"twenty-mirror bearer token";

/// What a request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// No `Authorization: Bearer …` header.
    Missing,
    Wrong,
    Accepted,
}

impl BearerTokens {
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a SecretString>) -> Self {
        let macs = tokens
            .into_iter()
            .map(|token| Self::mac(token.expose_secret().as_bytes()).finalize().into_bytes().to_vec())
            .collect();
        BearerTokens { macs }
    }

    fn mac(candidate: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(COMPARISON_KEY).expect("HMAC takes any key");
        mac.update(candidate);
        mac
    }

    /// Whether `candidate` is one of the tokens. Every token is compared, so the time taken does
    /// not tell which one matched either.
    pub fn matches(&self, candidate: &str) -> bool {
        let candidate = Self::mac(candidate.as_bytes());
        self.macs.iter().fold(false, |found, mac| candidate.clone().verify_slice(mac).is_ok() | found)
    }

    /// A key for `purpose` derived from the (first) token: the same on every instance and after a
    /// restart, and another once the token changes. The console signs its sessions with one
    /// derived from `ADMIN_TOKEN`.
    pub fn derive_key(&self, purpose: &[u8]) -> [u8; 32] {
        let first = self.macs.first().map_or(&[][..], Vec::as_slice);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(first).expect("HMAC takes any key");
        mac.update(purpose);
        mac.finalize().into_bytes().into()
    }

    /// Checks the request's `Authorization: Bearer …` header.
    pub fn check(&self, request: &HttpRequest) -> Presented {
        let presented = request
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty());
        match presented {
            None => Presented::Missing,
            Some(token) if self.matches(token) => Presented::Accepted,
            Some(_) => Presented::Wrong,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_of_the_tokens_matches_and_nothing_else_does() {
        let tokens = BearerTokens::new(&[SecretString::from("first"), SecretString::from("second")]);
        assert!(tokens.matches("first"));
        assert!(tokens.matches("second"));
        for wrong in ["", "firs", "first ", "firstsecond", "SECOND"] {
            assert!(!tokens.matches(wrong), "{wrong:?}");
        }
        assert!(!BearerTokens::new(&[]).matches("first"));
    }

    #[test]
    fn the_header_is_missing_wrong_or_accepted() {
        let tokens = BearerTokens::new(&[SecretString::from("secret")]);
        let with = |value: Option<&str>| {
            let mut request = actix_web::test::TestRequest::default();
            if let Some(value) = value {
                request = request.insert_header(("Authorization", value));
            }
            tokens.check(&request.to_http_request())
        };
        assert_eq!(with(None), Presented::Missing);
        assert_eq!(with(Some("Basic secret")), Presented::Missing);
        assert_eq!(with(Some("Bearer ")), Presented::Missing);
        assert_eq!(with(Some("Bearer wrong")), Presented::Wrong);
        assert_eq!(with(Some("Bearer secret")), Presented::Accepted);
    }
}
