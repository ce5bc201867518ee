//! `ServerError`: every failure of a request, rendered as the SMH JSON error
//! body (API routes) or as COS XML (object routes).

use crate::smh::codes;
use crate::smh::types::ErrorBody;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// SMH API error: `{"code","message","requestId"}`.
    #[error("{status} {code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// Object-store (COS) error: `<Error><Code>..`.
    #[error("COS {status} {code}: {message}")]
    Cos {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// Bug or I/O trouble on our side (500 InternalServerError).
    #[error("internal error: {0}")]
    Internal(String),
}

pub type SResult<T> = Result<T, ServerError>;

impl ServerError {
    pub fn api(status: u16, code: &str, message: impl Into<String>) -> Self {
        ServerError::Api {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.to_string(),
            message: message.into(),
        }
    }

    pub fn cos(status: u16, code: &str, message: impl Into<String>) -> Self {
        ServerError::Cos {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// The HTTP status of the reply.
    pub fn status(&self) -> StatusCode {
        match self {
            ServerError::Api { status, .. } | ServerError::Cos { status, .. } => *status,
            ServerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message of the reply.
    pub fn message(&self) -> String {
        match self {
            ServerError::Api { message, .. } | ServerError::Cos { message, .. } => message.clone(),
            ServerError::Internal(m) => m.clone(),
        }
    }

    /// The API code, for tests and logs.
    pub fn code(&self) -> &str {
        match self {
            ServerError::Api { code, .. } | ServerError::Cos { code, .. } => code,
            ServerError::Internal(_) => codes::INTERNAL_SERVER_ERROR,
        }
    }

    /// Same error, rendered as COS XML (object routes).
    pub fn into_cos(self) -> Self {
        match self {
            ServerError::Api {
                status,
                code,
                message,
            } => ServerError::Cos {
                status,
                code,
                message,
            },
            other => other,
        }
    }

    pub fn conflict() -> Self {
        Self::api(
            409,
            codes::SAME_NAME_DIRECTORY_OR_FILE_EXISTS,
            "a file or directory with the same name already exists",
        )
    }
}

impl From<rusqlite::Error> for ServerError {
    fn from(e: rusqlite::Error) -> Self {
        ServerError::Internal(format!("database: {e}"))
    }
}

impl From<std::io::Error> for ServerError {
    fn from(e: std::io::Error) -> Self {
        ServerError::Internal(format!("I/O: {e}"))
    }
}

impl From<tokio::task::JoinError> for ServerError {
    fn from(e: tokio::task::JoinError) -> Self {
        ServerError::Internal(format!("task: {e}"))
    }
}

/// A fresh request id.
pub fn request_id() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

/// The JSON error body of the API routes.
fn error_body(code: String, message: String, rid: &str) -> String {
    serde_json::to_string(&ErrorBody {
        code,
        message,
        request_id: Some(rid.to_string()),
    })
    .unwrap_or_default()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let rid = request_id();
        let mut resp = match self {
            ServerError::Api {
                status,
                code,
                message,
            } => (
                status,
                [("content-type", "application/json")],
                error_body(code, message, &rid),
            )
                .into_response(),
            ServerError::Internal(message) => {
                tracing::error!("internal error: {message}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [("content-type", "application/json")],
                    error_body(codes::INTERNAL_SERVER_ERROR.into(), message, &rid),
                )
                    .into_response()
            }
            ServerError::Cos {
                status,
                code,
                message,
            } => (
                status,
                [("content-type", "application/xml")],
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>{}</RequestId></Error>",
                    xml_escape(&code),
                    xml_escape(&message),
                    rid
                ),
            )
                .into_response(),
        };
        if let Ok(v) = HeaderValue::from_str(&rid) {
            resp.headers_mut().insert("x-smh-request-id", v.clone());
            resp.headers_mut().insert("x-cos-request-id", v);
        }
        resp
    }
}
