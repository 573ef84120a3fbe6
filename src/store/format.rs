//! The on-disk format of the `visits` file: one decimal number and a newline.
//!
//! The format is deliberately the simplest one an operator can read with
//! `cat visits`. Parsing is strict so that a file someone edited by hand, or
//! one damaged by a tool that writes in place, is refused loudly instead of
//! being silently reset: losing a count is worse than not starting.

use std::fmt;

/// The longest content a valid file can have: `u64::MAX` has 20 digits, and
/// one `\n` makes 21 bytes (a `\r\n` ending is refused, so it adds
/// nothing). Anything longer is refused without reading it all.
pub const MAX_FILE_LEN: u64 = 21;

/// Why the content of a `visits` file is not a count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The file has no content at all.
    Empty,
    /// The file is longer than any count can be.
    TooLong {
        /// The size of the file in bytes.
        len: u64,
    },
    /// The content starts with a minus sign.
    Negative {
        /// An escaped preview of the content.
        preview: String,
    },
    /// The content is digits, but more than `u64::MAX`.
    Overflow {
        /// An escaped preview of the content.
        preview: String,
    },
    /// Anything else that is not `digits` optionally followed by one newline.
    NotANumber {
        /// An escaped preview of the content.
        preview: String,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the file is empty, expected a decimal number"),
            Self::TooLong { len } => write!(
                f,
                "the file is {len} bytes long, longer than any count (at most {MAX_FILE_LEN})"
            ),
            Self::Negative { preview } => {
                write!(f, "the count {preview} is negative")
            }
            Self::Overflow { preview } => {
                write!(f, "the count {preview} is larger than {}", u64::MAX)
            }
            Self::NotANumber { preview } => write!(
                f,
                "the content {preview} is not a decimal number followed by a newline"
            ),
        }
    }
}

impl std::error::Error for FormatError {}

/// Parses the content of a `visits` file.
///
/// Accepts ASCII digits followed by at most one `\n`. A missing trailing
/// newline is tolerated (someone ran `echo -n 5 > visits`), everything else
/// (signs, spaces, a second line, a byte order mark) is refused.
pub fn parse(content: &[u8]) -> Result<u64, FormatError> {
    if content.len() as u64 > MAX_FILE_LEN {
        return Err(FormatError::TooLong {
            len: content.len() as u64,
        });
    }
    let digits = content.strip_suffix(b"\n").unwrap_or(content);
    if digits.is_empty() {
        return Err(FormatError::Empty);
    }
    let preview = || format!("{:?}", String::from_utf8_lossy(content));
    if digits.first() == Some(&b'-')
        && digits.len() > 1
        && digits[1..].iter().all(u8::is_ascii_digit)
    {
        return Err(FormatError::Negative { preview: preview() });
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(FormatError::NotANumber { preview: preview() });
    }
    digits.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| FormatError::Overflow { preview: preview() })
    })
}

/// Renders a count as the file's content: the number and a newline.
pub fn render(count: u64) -> String {
    format!("{count}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_with_a_newline_is_a_count() {
        assert_eq!(parse(b"42\n"), Ok(42));
        assert_eq!(parse(b"0\n"), Ok(0));
    }

    #[test]
    fn a_number_without_a_newline_is_tolerated() {
        assert_eq!(parse(b"7"), Ok(7));
    }

    #[test]
    fn render_and_parse_round_trip_up_to_the_largest_count() {
        for n in [0, 1, 9, 10, 123_456_789, u64::MAX - 1, u64::MAX] {
            assert_eq!(parse(render(n).as_bytes()), Ok(n));
        }
    }

    #[test]
    fn an_empty_file_is_refused() {
        assert_eq!(parse(b""), Err(FormatError::Empty));
        assert_eq!(parse(b"\n"), Err(FormatError::Empty));
    }

    #[test]
    fn a_negative_number_is_refused_as_negative() {
        assert!(matches!(parse(b"-5\n"), Err(FormatError::Negative { .. })));
    }

    #[test]
    fn a_lone_minus_sign_is_not_a_number_rather_than_negative() {
        for bad in [&b"-\n"[..], b"-"] {
            assert!(
                matches!(parse(bad), Err(FormatError::NotANumber { .. })),
                "{bad:?} gave {:?}",
                parse(bad)
            );
        }
    }

    #[test]
    fn the_length_bound_is_exact_at_the_longest_valid_file() {
        let longest = render(u64::MAX);
        assert_eq!(longest.len() as u64, MAX_FILE_LEN);
        assert_eq!(parse(longest.as_bytes()), Ok(u64::MAX));
        let one_more = format!("{}\n", "0".repeat(MAX_FILE_LEN as usize));
        assert_eq!(
            parse(one_more.as_bytes()),
            Err(FormatError::TooLong {
                len: MAX_FILE_LEN + 1
            })
        );
    }

    #[test]
    fn one_more_than_the_largest_count_is_an_overflow() {
        assert!(matches!(
            parse(b"18446744073709551616\n"),
            Err(FormatError::Overflow { .. })
        ));
    }

    #[test]
    fn junk_around_the_number_is_refused() {
        for bad in [
            &b" 5\n"[..],
            b"5 \n",
            b"+5\n",
            b"5\n\n",
            b"5\r\n",
            b"abc\n",
            b"0x10\n",
            b"\xef\xbb\xbf5\n",
            b"1e3\n",
        ] {
            assert!(
                matches!(parse(bad), Err(FormatError::NotANumber { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn a_huge_file_is_refused_by_its_length() {
        let big = vec![b'1'; 4096];
        assert_eq!(parse(&big), Err(FormatError::TooLong { len: 4096 }));
    }

    #[test]
    fn the_error_message_quotes_the_content_escaped() {
        let msg = parse(b"oops\x1b[31m\n").unwrap_err().to_string();
        assert!(msg.contains("\\u{1b}"), "{msg}");
        assert!(!msg.contains('\x1b'));
    }
}
