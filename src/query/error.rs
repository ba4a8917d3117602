//! What is wrong with a request's parameters, in Twenty's words.

/// The request parameter a [`QueryError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parameter {
    Limit,
    Depth,
    OrderBy,
    Filter,
    StartingAfter,
    EndingBefore,
    /// The record id of `GET /rest/{plural}/{id}`.
    Id,
}

impl Parameter {
    /// The parameter's name as it appears in the query string.
    pub fn name(self) -> &'static str {
        match self {
            Parameter::Limit => "limit",
            Parameter::Depth => "depth",
            Parameter::OrderBy => "order_by",
            Parameter::Filter => "filter",
            Parameter::StartingAfter => "starting_after",
            Parameter::EndingBefore => "ending_before",
            Parameter::Id => "id",
        }
    }
}

/// A parameter Twenty would answer 400 for. `message` is the text of Twenty's `messages` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub parameter: Parameter,
    pub message: String,
}

impl QueryError {
    pub(crate) fn new(parameter: Parameter, message: impl Into<String>) -> Self {
        QueryError { parameter, message: message.into() }
    }

    pub(crate) fn filter(message: impl Into<String>) -> Self {
        QueryError::new(Parameter::Filter, message)
    }

    /// Twenty's exception code for this kind of error, for the body's `error` field or a log.
    pub fn code(&self) -> &'static str {
        match self.parameter {
            Parameter::Limit => "INVALID_LIMIT_QUERY_PARAM",
            Parameter::Depth => "INVALID_DEPTH_QUERY_PARAM",
            Parameter::OrderBy => "INVALID_ORDER_BY_QUERY_PARAM",
            Parameter::Filter => "INVALID_FILTER_QUERY_PARAM",
            Parameter::StartingAfter | Parameter::EndingBefore => "INVALID_CURSOR",
            Parameter::Id => "INVALID_ID",
        }
    }
}
