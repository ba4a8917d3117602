//! Object discovery: `GET /rest/metadata/objects`, following its pages.

use super::error::{ClientError, unexpected};
use super::wire::{ObjectMetadata, PageInfo, parse_objects};
use super::{MAX_METADATA_PAGES, PAGE_SIZE, TwentyClient};

const METADATA_OBJECTS_PATH: &str = "/rest/metadata/objects";

impl TwentyClient {
    /// Every object of the workspace, active or not, system or not, following the metadata API's
    /// pages when it has them. Both response shapes are read: `{"data": {"objects": […]}}` and
    /// `{"data": […]}`.
    pub async fn objects(&self) -> Result<Vec<ObjectMetadata>, ClientError> {
        let limit = PAGE_SIZE.to_string();
        let url = self.url(METADATA_OBJECTS_PATH);
        let mut objects = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_METADATA_PAGES {
            let mut query = vec![("limit", limit.as_str())];
            if let Some(cursor) = &cursor {
                query.push(("starting_after", cursor.as_str()));
            }
            let body = self.transport().get_json(&url, &query).await?;
            let (page, page_info) = parse_objects(body).map_err(|reason| unexpected(&url, reason))?;
            objects.extend(page);
            match page_info {
                Some(PageInfo { has_next_page: true, end_cursor: Some(next) }) => {
                    if cursor.as_deref() == Some(next.as_str()) {
                        return Err(unexpected(&url, "the next page's cursor is the current one".to_owned()));
                    }
                    cursor = Some(next);
                }
                Some(PageInfo { has_next_page: true, end_cursor: None }) => {
                    return Err(unexpected(&url, "pageInfo has a next page but no endCursor".to_owned()));
                }
                _ => return Ok(objects),
            }
        }
        Err(unexpected(&url, format!("more than {MAX_METADATA_PAGES} pages of objects")))
    }
}
