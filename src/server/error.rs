//! The API's error type: every failure becomes `{"error": {"code", "message"}}` with the
//! status that fits it. Bad input is always a 4xx; 5xx means the server itself failed.

use axum::Json;
use axum::extract::multipart::MultipartError;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::engine::EngineError;
use crate::engine::resample::ResampleError;
use crate::library::LibraryError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A required form field is absent.
    #[error("missing form field `{0}` (send the audio as multipart/form-data field `{0}`)")]
    MissingField(&'static str),
    /// The request is malformed (not multipart, bad query string, bad id, field too long).
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The body is not a form: raw audio, JSON, or no Content-Type at all.
    #[error(
        "expected a multipart/form-data body with the audio in a field named `audio` \
         (curl -F audio=@clip.wav ...); got {sent}"
    )]
    NotAForm {
        /// The Content-Type sent, described.
        sent: String,
    },
    /// The client closed the connection before its body was whole: no one reads the answer;
    /// the status (499, as nginx counts it) only files the request apart in the metrics.
    #[error("the client closed the connection before the end of its upload")]
    ClientClosed,
    /// The client stopped sending the body.
    #[error("the upload stalled: nothing arrived for {secs} s")]
    Stalled {
        /// How long nothing arrived, seconds.
        secs: u64,
    },
    /// The client sends the body, but too slowly to keep a request open for.
    #[error(
        "the upload is too slow: {received} bytes in {secs:.0} s, under the minimum average of {min_bytes_per_sec} bytes/s"
    )]
    TooSlow {
        /// Bytes of the body received.
        received: u64,
        /// Seconds since the body began.
        secs: f64,
        /// The slowest average allowed, bytes per second.
        min_bytes_per_sec: u64,
    },
    /// The body is larger than `MAX_CONTENT_LENGTH`.
    #[error("request body larger than the limit of {limit} bytes (MAX_CONTENT_LENGTH)")]
    TooLarge {
        /// The limit, bytes.
        limit: u64,
    },
    /// No song has this id.
    #[error("no song with id {0}")]
    SongNotFound(i64),
    /// The same content is already indexed.
    #[error("this audio is already indexed as song {song_id}")]
    Duplicate {
        /// The song holding that content.
        song_id: i64,
    },
    /// No route has this path.
    #[error("no such endpoint: {0}")]
    RouteNotFound(String),
    /// The route exists but not with this method.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The audio could not be analysed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The index failed.
    #[error(transparent)]
    Library(LibraryError),
    /// Something broke inside the server (a worker panicked, the runtime is shutting down).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<LibraryError> for ApiError {
    fn from(err: LibraryError) -> Self {
        match err {
            LibraryError::Engine(engine) => ApiError::Engine(engine),
            LibraryError::Index(index) => index.into(),
            other => ApiError::Library(other),
        }
    }
}

impl From<crate::index::IndexError> for ApiError {
    fn from(err: crate::index::IndexError) -> Self {
        match err {
            // Another process (the CLI) stored the same audio between the server's check and
            // its write: the same answer as when the check finds it.
            crate::index::IndexError::DuplicateContent { song_id } => {
                ApiError::Duplicate { song_id }
            }
            other => ApiError::Library(LibraryError::Index(other)),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(err: QueryRejection) -> Self {
        // axum's text starts "Failed to deserialize query string: " and then names the
        // parameter and what is wrong with it, which is the part a client needs.
        let text = err.body_text();
        let detail = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        ApiError::BadRequest {
            code: "invalid_query",
            message: format!(
                "bad query parameter: {detail} (top, limit and offset are whole numbers, q is text)"
            ),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(err: PathRejection) -> Self {
        ApiError::BadRequest {
            code: "invalid_id",
            message: format!("song ids are integers: {}", err.body_text()),
        }
    }
}

/// Not an HTTP status a client ever receives: nginx's 499, for requests whose client left.
const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// Whether reading the body failed because the connection ended before the body did: hyper's
/// body error, caused by an end of file or a reset of the connection.
fn closed_by_client(err: &MultipartError) -> bool {
    use std::io::ErrorKind;
    let mut below_hyper = false;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(hyper_error) = current.downcast_ref::<hyper::Error>() {
            if hyper_error.is_incomplete_message() {
                return true;
            }
            below_hyper = true;
        }
        if below_hyper
            && current.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    ErrorKind::UnexpectedEof
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::BrokenPipe
                )
            })
        {
            return true;
        }
        cause = current.source();
    }
    false
}

impl ApiError {
    /// Maps a multipart read error, which is a 413 when the body limit was hit.
    pub fn from_multipart(err: MultipartError, limit: u64) -> Self {
        if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge { limit }
        } else if closed_by_client(&err) {
            ApiError::ClientClosed
        } else {
            ApiError::BadRequest {
                code: "invalid_multipart",
                message: format!("malformed multipart/form-data body: {}", err.body_text()),
            }
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingField(_) | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Stalled { .. } | ApiError::TooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::ClientClosed => CLIENT_CLOSED_REQUEST,
            ApiError::SongNotFound(_) | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Duplicate { .. } => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAForm { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Engine(err) => match err {
                EngineError::Unsupported { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                EngineError::EmptyFile { .. }
                | EngineError::NoAudioTrack { .. }
                | EngineError::Corrupt { .. }
                | EngineError::Truncated { .. }
                | EngineError::CutShort { .. }
                | EngineError::TooShort { .. }
                | EngineError::Silent { .. }
                | EngineError::BadFormat { .. }
                | EngineError::Resample {
                    source: ResampleError::Rates { .. },
                    ..
                } => StatusCode::BAD_REQUEST,
                EngineError::Io { .. } | EngineError::Resample { .. } | EngineError::Cancelled => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
            ApiError::Library(LibraryError::Postings(_)) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Library(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingField(_) => "missing_field",
            ApiError::BadRequest { code, .. } => code,
            ApiError::NotAForm { .. } => "not_a_form",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::Stalled { .. } => "upload_stalled",
            ApiError::TooSlow { .. } => "upload_too_slow",
            ApiError::ClientClosed => "client_closed",
            ApiError::SongNotFound(_) => "song_not_found",
            ApiError::Duplicate { .. } => "duplicate",
            ApiError::RouteNotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Engine(err) => err.code(),
            ApiError::Library(LibraryError::Engine(err)) => err.code(),
            ApiError::Library(LibraryError::Index(_)) => "index_error",
            ApiError::Library(LibraryError::Postings(_)) => "index_full",
            ApiError::Library(LibraryError::NotLoaded) => "index_not_loaded",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    song_id: Option<i64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!("{}: {self}", self.code());
        } else {
            tracing::debug!("{}: {self}", self.code());
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                song_id: match &self {
                    ApiError::Duplicate { song_id } => Some(*song_id),
                    _ => None,
                },
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is not read: the connection cannot be reused.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store finds the duplicate itself when another process stored the same audio
    /// after the route's own check: still 409 with the song, never a 500.
    #[test]
    fn a_duplicate_found_by_the_store_is_a_conflict() {
        let from_store = ApiError::from(LibraryError::Index(
            crate::index::IndexError::DuplicateContent { song_id: 7 },
        ));
        assert_eq!(from_store.status(), StatusCode::CONFLICT);
        assert!(matches!(from_store, ApiError::Duplicate { song_id: 7 }));
    }
}
