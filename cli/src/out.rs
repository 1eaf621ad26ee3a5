//! Standard output with Unix manners: a closed pipe (`talus scan | head`)
//! ends the command quietly with status 141 (128 + SIGPIPE), as the shell's
//! own tools do; any other failure to write (`> /dev/full`) with one
//! `error:` line and status 1. Nothing the reader of our output does makes
//! the tool panic.

use std::fmt;
use std::io::{self, Write};

/// Writes `args` and a newline to stdout (see the module).
pub fn line(args: fmt::Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    // Stdout is line-buffered: the newline sends the line, so a failure
    // shows here and not at exit, where it would be lost.
    if let Err(error) = stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n")) {
        fail(&error);
    }
}

/// Writes `bytes` to stdout as they are, with no newline (see the module).
pub fn bytes(bytes: &[u8]) {
    if let Err(error) = io::stdout().lock().write_all(bytes) {
        fail(&error);
    }
}

/// Sends whatever is buffered (see the module).
pub fn flush() {
    if let Err(error) = io::stdout().flush() {
        fail(&error);
    }
}

fn fail(error: &io::Error) -> ! {
    if error.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    // Stderr may be gone too: nothing more to do then.
    let _ = writeln!(io::stderr(), "error: cannot write the output: {error}");
    std::process::exit(1);
}
