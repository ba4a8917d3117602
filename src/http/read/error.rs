//! What the read API refuses, in Twenty's error shape: `{"statusCode", "error", "messages": [...]}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::mirror::StoreError;
use crate::query::QueryError;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("The read API is off: set READ_API_TOKENS to the bearer tokens its clients may send")]
    Disabled,
    /// Twenty's words for a request without a token.
    #[error("Missing authentication token")]
    MissingToken,
    /// Twenty's words for a token it does not know.
    #[error("Token invalid.")]
    WrongToken,
    #[error("{0}")]
    UnknownObject(String),
    #[error("{0}")]
    BadQuery(#[from] QueryError),
    #[error("the query string cannot be read: {0}")]
    BadQueryString(String),
    #[error("Record {0} not found")]
    NotFound(String),
    #[error("the database is unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl ReadError {
    /// The body's `error`: Twenty's exception names and codes.
    fn name(&self) -> &'static str {
        match self {
            ReadError::Disabled | ReadError::MissingToken => "FORBIDDEN_EXCEPTION",
            ReadError::WrongToken => "UNAUTHENTICATED",
            ReadError::UnknownObject(_) | ReadError::BadQueryString(_) => "BadRequestException",
            ReadError::BadQuery(error) => error.code(),
            ReadError::NotFound(_) => "NotFoundException",
            ReadError::Unavailable => "ServiceUnavailableException",
            ReadError::Internal => "InternalServerErrorException",
        }
    }
}

impl ResponseError for ReadError {
    fn status_code(&self) -> StatusCode {
        match self {
            ReadError::Disabled | ReadError::MissingToken => StatusCode::FORBIDDEN,
            ReadError::WrongToken => StatusCode::UNAUTHORIZED,
            ReadError::UnknownObject(_) | ReadError::BadQuery(_) | ReadError::BadQueryString(_) => {
                StatusCode::BAD_REQUEST
            }
            ReadError::NotFound(_) => StatusCode::NOT_FOUND,
            ReadError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ReadError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        if matches!(self, ReadError::WrongToken) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(json!({
            "statusCode": status.as_u16(),
            "error": self.name(),
            "messages": [self.to_string()],
        }))
    }
}

impl From<StoreError> for ReadError {
    fn from(error: StoreError) -> Self {
        tracing::error!(error = ?error, "a read API request failed in the store");
        if error.is_unavailable() { ReadError::Unavailable } else { ReadError::Internal }
    }
}
