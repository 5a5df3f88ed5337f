//! What went wrong talking to the service, and what the caller should do about it.

use super::validate::ValidationError;

/// The decision a caller makes from an error; the scheduler acts on this alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorAction {
    /// Throttling, service faults, timeouts, dropped connections: back off and retry.
    RetryLater,
    /// Quota used up, no access, unknown model: stop submitting to this model.
    StopModel,
    /// Bad key or account in arrears: stop submitting anything, tell the user.
    StopAll,
    /// The request itself is wrong or was refused on content: show it, never retry.
    FixInput,
}

impl ErrorAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorAction::RetryLater => "retry_later",
            ErrorAction::StopModel => "stop_model",
            ErrorAction::StopAll => "stop_all",
            ErrorAction::FixInput => "fix_input",
        }
    }
}

/// Maps an HTTP status and service error code to an action (the error tables of API.md
/// and API-CURRENT.md section 3).
pub fn classify(status: u16, code: &str) -> ErrorAction {
    match code {
        "Throttling" | "Throttling.RateQuota" => ErrorAction::RetryLater,
        // FreeTierOnly: the free quota is used up with "Free Quota Only" on; Unpurchased:
        // the model is not activated. Neither passes until the user acts in the console.
        "Throttling.AllocationQuota"
        | "AllocationQuota.FreeTierOnly"
        | "AccessDenied"
        | "AccessDenied.Unpurchased"
        | "Model.AccessDenied"
        | "ModelNotFound"
        | "Model.NotExist" => ErrorAction::StopModel,
        "InvalidApiKey" | "Arrearage" => ErrorAction::StopAll,
        // The input images could not be fetched by the service (a dead link, a host that
        // times out), or a field is missing: the input's fault, sending it again fails again.
        "InvalidParameter"
        | "DataInspectionFailed"
        | "IPInfringementSuspect"
        | "UnsupportedOperation"
        | "BadRequest.InputDownloadFailed"
        | "InternalError.Algo.InvalidParameter"
        | "BadRequest.EmptyInput"
        | "BadRequest.EmptyParameters"
        | "BadRequest.EmptyModel"
        | "InvalidURL" => ErrorAction::FixInput,
        "InternalError"
        | "InternalError.Algo"
        | "InternalError.Timeout"
        | "SystemError"
        | "ModelUnavailable" => ErrorAction::RetryLater,
        _ => match status {
            401 => ErrorAction::StopAll,
            403 | 404 => ErrorAction::StopModel,
            408 | 429 => ErrorAction::RetryLater,
            s if s >= 500 => ErrorAction::RetryLater,
            _ => ErrorAction::FixInput,
        },
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// Refused before sending: the job breaks a documented rule.
    #[error("invalid job: {0}")]
    Invalid(#[from] ValidationError),
    /// The service answered with an error body (or a non-JSON one, as code `Unknown`).
    #[error("{code} (HTTP {status}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// No connection could be made (refused, unreachable, connect timeout): the request
    /// was never sent, so it certainly changed nothing at the service.
    #[error("cannot reach the service: {0}")]
    Unreachable(String),
    /// No answer to a request that may have been sent: reset, timeout.
    #[error("network error: {0}")]
    Transport(String),
    /// An answer that does not follow the protocol.
    #[error("unexpected answer from the service: {0}")]
    Protocol(String),
    /// The service answered, readably, something no client can act on: a create
    /// answered with a task id that cannot be one. Unlike `Protocol`, the answer was
    /// read and a task may exist, so the create must not be sent again.
    #[error("the service answered something wrong: {0}")]
    WrongAnswer(String),
    /// A local file could not be read.
    #[error("{0}")]
    Io(String),
}

impl ClientError {
    pub fn action(&self) -> ErrorAction {
        match self {
            ClientError::Invalid(_) | ClientError::Io(_) => ErrorAction::FixInput,
            ClientError::Api { status, code, .. } => classify(*status, code),
            ClientError::Unreachable(_)
            | ClientError::Transport(_)
            | ClientError::Protocol(_)
            | ClientError::WrongAnswer(_) => ErrorAction::RetryLater,
        }
    }

    /// A 403 AccessDenied "does not support asynchronous calls": the async header went to
    /// the synchronous endpoint. wandash never sends it there, so this is a bug of ours,
    /// logged as one; the action (`StopModel`) keeps it from being repeated.
    pub fn is_async_header_refused(&self) -> bool {
        matches!(self, ClientError::Api { status: 403, code, message, .. }
            if code == "AccessDenied" && message.contains("asynchronous"))
    }

    /// No answer came within the request's time limit (the request may have been sent).
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Transport(message) if message.starts_with(super::client::TIMED_OUT))
    }

    /// The service's error code, or a local stand-in (`InvalidInput`, `Network`...).
    pub fn code(&self) -> &str {
        match self {
            ClientError::Invalid(_) => "InvalidInput",
            ClientError::Api { code, .. } => code,
            ClientError::Unreachable(_) | ClientError::Transport(_) => "Network",
            ClientError::Protocol(_) => "Protocol",
            ClientError::WrongAnswer(_) => "WrongAnswer",
            ClientError::Io(_) => "LocalFile",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_documented_actions() {
        assert_eq!(classify(429, "Throttling"), ErrorAction::RetryLater);
        assert_eq!(
            classify(429, "Throttling.RateQuota"),
            ErrorAction::RetryLater
        );
        assert_eq!(
            classify(429, "Throttling.AllocationQuota"),
            ErrorAction::StopModel
        );
        assert_eq!(classify(403, "Model.AccessDenied"), ErrorAction::StopModel);
        assert_eq!(classify(404, "ModelNotFound"), ErrorAction::StopModel);
        assert_eq!(classify(401, "InvalidApiKey"), ErrorAction::StopAll);
        assert_eq!(classify(400, "Arrearage"), ErrorAction::StopAll);
        assert_eq!(classify(400, "InvalidParameter"), ErrorAction::FixInput);
        assert_eq!(classify(400, "DataInspectionFailed"), ErrorAction::FixInput);
        assert_eq!(classify(500, "InternalError.Algo"), ErrorAction::RetryLater);
        assert_eq!(classify(503, "ModelUnavailable"), ErrorAction::RetryLater);
        assert_eq!(classify(502, "Unknown"), ErrorAction::RetryLater);
        assert_eq!(classify(400, "Unknown"), ErrorAction::FixInput);
    }

    #[test]
    fn the_current_models_codes_map_to_what_the_caller_should_do() {
        for (status, code) in [
            (403, "AllocationQuota.FreeTierOnly"),
            (403, "AccessDenied.Unpurchased"),
            (404, "Model.NotExist"),
        ] {
            assert_eq!(classify(status, code), ErrorAction::StopModel, "{code}");
        }
        for (status, code) in [
            (400, "BadRequest.InputDownloadFailed"),
            (400, "InternalError.Algo.InvalidParameter"),
            (400, "BadRequest.EmptyInput"),
            (400, "InvalidURL"),
            // A FAILED task's code is classified without a status.
            (0, "InternalError.Algo.InvalidParameter"),
            (0, "BadRequest.InputDownloadFailed"),
        ] {
            assert_eq!(classify(status, code), ErrorAction::FixInput, "{code}");
        }
        assert_eq!(
            classify(429, "Throttling.RateQuota"),
            ErrorAction::RetryLater
        );
    }

    #[test]
    fn the_async_header_refused_by_the_sync_endpoint_is_told_apart_and_not_retried() {
        let refused = ClientError::Api {
            status: 403,
            code: "AccessDenied".into(),
            message: "current user api does not support asynchronous calls".into(),
            request_id: None,
        };
        assert!(refused.is_async_header_refused());
        assert_eq!(refused.action(), ErrorAction::StopModel);
        let other = ClientError::Api {
            status: 403,
            code: "AccessDenied".into(),
            message: "Access denied.".into(),
            request_id: None,
        };
        assert!(!other.is_async_header_refused());
    }
}
