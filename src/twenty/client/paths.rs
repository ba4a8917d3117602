//! The paths of Twenty's API that the client calls, and what an error may say about them.

/// Where current releases serve webhook subscriptions.
pub(super) const METADATA_WEBHOOKS_PATH: &str = "/rest/metadata/webhooks";
/// Where older releases served them (webhooks were records of a workspace object then); tried when
/// the metadata path answers 404.
pub(super) const LEGACY_WEBHOOKS_PATH: &str = "/rest/webhooks";

/// Whether `url` is one of the subscription API's, so that an error can name the right permission.
pub(super) fn is_webhooks_url(url: &str) -> bool {
    url.contains(METADATA_WEBHOOKS_PATH) || url.contains(LEGACY_WEBHOOKS_PATH)
}
