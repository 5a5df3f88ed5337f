//! What a failed poll or download means for its job, once the task exists: retry, stop
//! everything, or give up. A service that does not answer is waited out for as long as
//! it keeps the task; one that answers something wrong (an answer that is not the
//! protocol, a task id that cannot be one, a result URL that is not http(s), an image
//! over the byte limit) gets a bounded number of tries, so that a lie ends the job with
//! its reason instead of being asked again until the task expires. Pure, so that each
//! error and count is a unit test; `follow` and `download` carry the answer out.

use crate::dashscope::{ClientError, ErrorAction};

/// Whether the service answered, but something no client can use.
pub(crate) fn is_wrong_answer(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Protocol(_) | ClientError::WrongAnswer(_)
    )
}

/// What the engine does after a poll of a task failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailedPoll {
    /// Poll again after the schedule's backoff.
    Retry,
    /// The task cannot be followed: the job goes to needs_attention (the task may still
    /// exist at the service), with the reason.
    GiveUp,
    /// Bad key or arrears: the engine stops; the job stays as it is for the next start.
    StopAll,
}

/// What a poll failing with `error` means, when `wrong_answers` polls in a row (this one
/// included) were answered wrong and `max_attempts` are allowed.
pub(crate) fn after_failed_poll(
    error: &ClientError,
    wrong_answers: u32,
    max_attempts: u32,
) -> AfterFailedPoll {
    match error {
        // A task id that cannot be put in a URL never will be.
        ClientError::Invalid(_) => AfterFailedPoll::GiveUp,
        e if e.action() == ErrorAction::StopAll => AfterFailedPoll::StopAll,
        e if is_wrong_answer(e) && wrong_answers >= max_attempts => AfterFailedPoll::GiveUp,
        _ => AfterFailedPoll::Retry,
    }
}

/// What the engine does after a download of a result image failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailedDownload {
    /// Try again after the backoff.
    Retry,
    /// The image is gone at the service: recorded as expired.
    Expired,
    /// The image is recorded as failed with the error.
    Fail,
}

/// What a download failing with `error` on its `attempt`th try means; `before_expiry`
/// while the service still keeps the task's results.
pub(crate) fn after_failed_download(
    error: &ClientError,
    attempt: u32,
    max_attempts: u32,
    before_expiry: bool,
) -> AfterFailedDownload {
    match error {
        ClientError::Api {
            status: 403 | 404 | 410,
            ..
        } => AfterFailedDownload::Expired,
        e if is_wrong_answer(e) && attempt < max_attempts => AfterFailedDownload::Retry,
        e if is_wrong_answer(e) => AfterFailedDownload::Fail,
        // The URL lives as long as the task (24 h): a network or service outage is
        // waited out for that long rather than `max_attempts` tries, so an overnight
        // batch does not lose images to a few minutes without a connection.
        e if e.action() == ErrorAction::RetryLater && before_expiry => AfterFailedDownload::Retry,
        _ => AfterFailedDownload::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashscope::ValidationError;

    const MAX_ATTEMPTS: u32 = 5;

    fn api(status: u16, code: &str) -> ClientError {
        ClientError::Api {
            status,
            code: code.into(),
            message: "the service's words".into(),
            request_id: None,
        }
    }

    fn wrong_answers() -> [ClientError; 4] {
        [
            ClientError::Protocol("unknown variant `DONE`".into()),
            ClientError::Protocol("result URL `file:///etc/passwd` is not http(s)".into()),
            ClientError::WrongAnswer("task id `../x` is not a task id".into()),
            ClientError::Protocol("the image is 60000000 bytes or more, over the limit".into()),
        ]
    }

    #[test]
    fn a_poll_answered_wrong_is_retried_a_bounded_number_of_times_then_given_up() {
        for error in wrong_answers() {
            for in_a_row in 1..MAX_ATTEMPTS {
                assert_eq!(
                    after_failed_poll(&error, in_a_row, MAX_ATTEMPTS),
                    AfterFailedPoll::Retry,
                    "{error}"
                );
            }
            assert_eq!(
                after_failed_poll(&error, MAX_ATTEMPTS, MAX_ATTEMPTS),
                AfterFailedPoll::GiveUp,
                "{error}"
            );
        }
    }

    #[test]
    fn a_poll_not_answered_is_retried_until_the_task_expires() {
        for error in [
            ClientError::Transport("timed out: slow answer".into()),
            ClientError::Unreachable("connection refused".into()),
            api(500, "InternalError"),
            api(429, "Throttling"),
        ] {
            assert_eq!(
                after_failed_poll(&error, 0, MAX_ATTEMPTS),
                AfterFailedPoll::Retry,
                "{error}"
            );
        }
    }

    #[test]
    fn a_task_id_that_cannot_be_polled_gives_up_at_once_and_a_bad_key_stops_all() {
        let invalid = ClientError::Invalid(ValidationError::new("task_id", "`../x`"));
        assert_eq!(
            after_failed_poll(&invalid, 0, MAX_ATTEMPTS),
            AfterFailedPoll::GiveUp
        );
        assert_eq!(
            after_failed_poll(&api(401, "InvalidApiKey"), 0, MAX_ATTEMPTS),
            AfterFailedPoll::StopAll
        );
    }

    #[test]
    fn a_download_answered_wrong_is_tried_max_attempts_times_even_before_expiry() {
        for error in wrong_answers() {
            for attempt in 1..MAX_ATTEMPTS {
                assert_eq!(
                    after_failed_download(&error, attempt, MAX_ATTEMPTS, true),
                    AfterFailedDownload::Retry,
                    "{error}"
                );
            }
            assert_eq!(
                after_failed_download(&error, MAX_ATTEMPTS, MAX_ATTEMPTS, true),
                AfterFailedDownload::Fail,
                "{error}"
            );
        }
    }

    #[test]
    fn a_download_not_answered_is_retried_until_expiry_and_a_gone_image_is_expired() {
        let outage = ClientError::Transport("reset".into());
        assert_eq!(
            after_failed_download(&outage, 50, MAX_ATTEMPTS, true),
            AfterFailedDownload::Retry
        );
        assert_eq!(
            after_failed_download(&outage, 50, MAX_ATTEMPTS, false),
            AfterFailedDownload::Fail
        );
        for status in [403, 404, 410] {
            assert_eq!(
                after_failed_download(&api(status, "Unknown"), 1, MAX_ATTEMPTS, true),
                AfterFailedDownload::Expired
            );
        }
    }
}
