//! Webhook subscriptions: list, create and update, on whichever of Twenty's two paths the server
//! serves them.

use reqwest::Method;
use serde_json::Value;

use super::error::{ClientError, unexpected, unexpected_answer};
use super::paths::{LEGACY_WEBHOOKS_PATH, METADATA_WEBHOOKS_PATH};
use super::wire::{PageInfo, Subscription, SubscriptionFields, parse_subscription, parse_subscriptions};
use super::{MAX_METADATA_PAGES, TwentyClient};

impl TwentyClient {
    /// Every webhook subscription of the workspace, the secrets included. Reads a plain list and the
    /// paged `{"data": […], "pageInfo", "totalCount"}` shape, following its pages.
    ///
    /// The subscription API lives under `/rest/metadata/webhooks`; older releases answer 404 there and
    /// serve it under `/rest/webhooks`. The first call finds out which, and the client keeps using it.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, ClientError> {
        let (url, body) = self.webhooks_collection(Method::GET, &[], None).await?;
        let (mut subscriptions, mut page_info) =
            parse_subscriptions(body).map_err(|r| unexpected(&url, r))?;
        let mut cursor: Option<String> = None;
        for _ in 1..MAX_METADATA_PAGES {
            let next = match page_info {
                Some(PageInfo { has_next_page: true, end_cursor: Some(next) }) => next,
                Some(PageInfo { has_next_page: true, end_cursor: None }) => {
                    return Err(unexpected(&url, "pageInfo has a next page but no endCursor".to_owned()));
                }
                _ => return Ok(subscriptions),
            };
            if cursor.as_deref() == Some(next.as_str()) {
                return Err(unexpected(&url, "the next page's cursor is the current one".to_owned()));
            }
            let body = self.transport().get_json(&url, &[("starting_after", next.as_str())]).await?;
            let (page, info) = parse_subscriptions(body).map_err(|r| unexpected(&url, r))?;
            subscriptions.extend(page);
            page_info = info;
            cursor = Some(next);
        }
        match page_info {
            Some(PageInfo { has_next_page: true, .. }) => {
                Err(unexpected(&url, format!("more than {MAX_METADATA_PAGES} pages of subscriptions")))
            }
            _ => Ok(subscriptions),
        }
    }

    /// Creates a subscription (`POST`, answered 201). Not retried once it may have reached Twenty,
    /// since a second POST would add a second subscription: see [`ClientError::NotRetried`].
    pub async fn create_subscription(
        &self,
        fields: &SubscriptionFields,
    ) -> Result<Subscription, ClientError> {
        let (url, body) = self.webhooks_collection(Method::POST, &[], Some(&fields.to_json())).await?;
        parse_subscription(body).map_err(|r| unexpected_answer(Method::POST, &url, 201, r))
    }

    /// Sets every field of `fields` on subscription `id` (`PATCH …/webhooks/{id}`); a `None`
    /// description or secret is left as it is.
    pub async fn update_subscription(
        &self,
        id: &str,
        fields: &SubscriptionFields,
    ) -> Result<Subscription, ClientError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ClientError::InvalidSubscriptionId(id.to_owned()));
        }
        let path = match self.webhooks_path() {
            Some(path) => path,
            None => {
                // A 404 for one subscription may only mean that it does not exist: find the API by
                // its list, which every release serves.
                self.webhooks_collection(Method::GET, &[], None).await?;
                self.webhooks_path().unwrap_or(METADATA_WEBHOOKS_PATH)
            }
        };
        let url = self.url(&format!("{path}/{id}"));
        let body = self.transport().request_json(Method::PATCH, &url, &[], Some(&fields.to_json())).await?;
        parse_subscription(body).map_err(|r| unexpected_answer(Method::PATCH, &url, 200, r))
    }

    /// The path of the subscription API, once a request has found it.
    pub fn webhooks_path(&self) -> Option<&'static str> {
        self.inner.webhooks_path.get().copied()
    }

    /// Sends `method` to the subscription collection: to the path already found, or to the metadata
    /// path and, when that answers 404, to the older one; the path that answers is kept.
    async fn webhooks_collection(
        &self,
        method: Method,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(String, Value), ClientError> {
        let transport = self.transport();
        if let Some(path) = self.webhooks_path() {
            let url = self.url(path);
            let answer = transport.request_json(method, &url, query, body).await?;
            return Ok((url, answer));
        }
        let url = self.url(METADATA_WEBHOOKS_PATH);
        match transport.request_json(method.clone(), &url, query, body).await {
            Ok(answer) => {
                let _ = self.inner.webhooks_path.set(METADATA_WEBHOOKS_PATH);
                Ok((url, answer))
            }
            Err(ClientError::NotFound { .. }) => {
                let legacy = self.url(LEGACY_WEBHOOKS_PATH);
                match transport.request_json(method, &legacy, query, body).await {
                    Ok(answer) => {
                        tracing::debug!(
                            path = LEGACY_WEBHOOKS_PATH,
                            "Twenty serves webhooks at the older path"
                        );
                        let _ = self.inner.webhooks_path.set(LEGACY_WEBHOOKS_PATH);
                        Ok((legacy, answer))
                    }
                    Err(ClientError::NotFound { method, url, message }) => {
                        let also = format!("{METADATA_WEBHOOKS_PATH} answered 404 as well");
                        let message = if message.is_empty() { also } else { format!("{message} ({also})") };
                        Err(ClientError::NotFound { method, url, message })
                    }
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }
}
