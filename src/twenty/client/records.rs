//! Pages of records: `GET /rest/{namePlural}`.

use super::error::{ClientError, unexpected};
use super::wire::{Page, parse_page};
use super::{PAGE_SIZE, TwentyClient};

impl TwentyClient {
    /// One page of records of the object whose plural name is `name_plural` (`people`, `companies`,
    /// custom `websiteProperties`): `GET /rest/{name_plural}?limit=200&depth=0`, with Twenty's
    /// `filter` and `order_by` syntax passed through as given, and `cursor` as `starting_after` (the
    /// previous page's `end_cursor`).
    pub async fn list_page(
        &self,
        name_plural: &str,
        filter: Option<&str>,
        order_by: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Page, ClientError> {
        if name_plural.is_empty() || !name_plural.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ClientError::InvalidObjectName(name_plural.to_owned()));
        }
        let url = self.url(&format!("/rest/{name_plural}"));
        let limit = PAGE_SIZE.to_string();
        let mut query = vec![("limit", limit.as_str()), ("depth", "0")];
        if let Some(filter) = filter {
            query.push(("filter", filter));
        }
        if let Some(order_by) = order_by {
            query.push(("order_by", order_by));
        }
        if let Some(cursor) = cursor {
            query.push(("starting_after", cursor));
        }
        let body = self.transport().get_json(&url, &query).await?;
        parse_page(name_plural, body).map_err(|reason| unexpected(&url, reason))
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::twenty::client::ClientSettings;

    #[tokio::test]
    async fn object_names_cannot_escape_the_rest_path() {
        let settings = ClientSettings::new("http://127.0.0.1:9", SecretString::from("test-key"));
        let client = TwentyClient::new(settings).unwrap();
        for name in ["", "../metadata", "people?x=1", "peo ple", "people/1"] {
            let error = client.list_page(name, None, None, None).await.expect_err(name);
            assert!(matches!(error, ClientError::InvalidObjectName(_)), "{error}");
        }
        assert_eq!(client.stats().total_requests(), 0);
    }
}
