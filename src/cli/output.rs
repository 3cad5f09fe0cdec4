//! Shared output helpers: JSON printing, durations, progress bars.

use std::io::Write as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// `println!` that returns the write's error instead of panicking on it: standard output may
/// be a pipe closed early (`audiofp list | head`), which the binary's edge treats as a normal
/// end.
macro_rules! outln {
    () => {
        std::io::Write::write_all(&mut std::io::stdout(), b"\n")
    };
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(&mut std::io::stdout(), format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// `print!` that returns the write's error (see [`outln`]).
macro_rules! out {
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(&mut std::io::stdout(), format_args!($($arg)*))
    };
}
pub(crate) use out;

/// Prints `value` as pretty JSON on standard output.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    // A failed write is reported as the I/O error it is (a closed pipe ends quietly).
    serde_json::to_writer_pretty(&mut stdout, value).map_err(|err| match err.io_error_kind() {
        Some(kind) => anyhow::Error::from(std::io::Error::new(kind, err)),
        None => err.into(),
    })?;
    writeln!(stdout)?;
    Ok(())
}

pub use crate::calendar::clock;

/// Human byte count.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A progress bar on standard error, drawn only when it is a terminal.
pub fn progress_bar(total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template =
        format!("{{bar:30.cyan/blue}} {{pos}}/{{len}} {unit}  {{rate}}  ETA {{eta}}  {{wide_msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        // indicatif's own {per_sec} prints "7.6051/s".
        let rate = |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            write!(out, "{:.1}/s", state.per_sec()).ok();
        };
        bar.set_style(style.with_key("rate", rate).progress_chars("=> "));
    }
    bar
}

/// `text` (a tag, a file name) as it may go to a terminal: control characters are written as
/// escapes (`\n`, `\t`, `\u{1b}`), so that a tag cannot move the cursor, recolour the
/// terminal or break the one-line-per-item output scripts read.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    std::borrow::Cow::Owned(shown)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            printable("Evil\u{1b}[31mRED\u{1b}[0m\nfake: line\tend"),
            "Evil\\u{1b}[31mRED\\u{1b}[0m\\nfake: line\\tend"
        );
        assert_eq!(printable("Café – 東京"), "Café – 東京");
    }
}
