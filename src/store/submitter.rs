//! Who queues a job: `user@host`, recorded with it so that a team sharing one store can
//! tell its jobs apart (`show`, the dashboard's "mine", `list --mine`).

use std::os::unix::fs::MetadataExt;

/// The longest user or host part kept: names are short; anything longer is not a name.
const PART_LIMIT: usize = 64;

/// `user@host` of this process: the user from `$USER` (else `$LOGNAME`, else the uid),
/// the host from the kernel (else `$HOSTNAME`). Read once per store, at open.
pub(super) fn this_process() -> String {
    let var = |name: &str| std::env::var(name).ok();
    let uid = || {
        // The owner of `/proc/self` is this process's user, without a libc call.
        std::fs::metadata("/proc/self")
            .ok()
            .map(|m| m.uid().to_string())
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| var("HOSTNAME"));
    submitter_name(
        [var("USER"), var("LOGNAME"), uid()],
        host.as_deref().unwrap_or_default(),
    )
}

/// The first usable user name and the host, joined as `user@host`. Both come from the
/// environment and reach other people's terminals, so each part is made safe to draw
/// ([`crate::text::sanitize`]), one word, and short; a part with nothing left is `?`.
pub(super) fn submitter_name(users: [Option<String>; 3], host: &str) -> String {
    let user = users
        .iter()
        .flatten()
        .map(|u| clean_part(u))
        .find(|u| !u.is_empty())
        .unwrap_or_else(|| "?".to_string());
    let host = Some(clean_part(host))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "?".to_string());
    format!("{user}@{host}")
}

fn clean_part(text: &str) -> String {
    crate::text::sanitize(text)
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '@')
        .take(PART_LIMIT)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(text: &str) -> Option<String> {
        Some(text.to_string())
    }

    #[test]
    fn the_submitter_is_the_first_usable_user_at_the_host() {
        assert_eq!(
            submitter_name([some("alice"), some("bob"), some("1000")], "box1\n"),
            "alice@box1"
        );
        assert_eq!(
            submitter_name([None, some("bob"), some("1000")], "box1"),
            "bob@box1"
        );
        assert_eq!(
            submitter_name([some(" \t"), None, some("1000")], "box1"),
            "1000@box1"
        );
        assert_eq!(submitter_name([None, None, None], ""), "?@?");
    }

    #[test]
    fn a_hostile_name_is_cleaned_and_cut_short() {
        let name = submitter_name(
            [some("mal\u{1b}]52;c;eA==\u{7}lory@evil"), None, None],
            &format!("box\u{202E}1 {}", "h".repeat(300)),
        );
        assert_eq!(
            name,
            format!("mal]52;c;eA==loryevil@box1{}", "h".repeat(PART_LIMIT - 4))
        );
        assert!(!name.chars().any(char::is_control));
    }
}
