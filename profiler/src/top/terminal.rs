//! The terminal, owned for the view's life: raw mode, the alternate screen
//! and a hidden cursor while it runs, all given back when it ends however
//! it ends (a return, an error, a panic on any thread); and whether there
//! is a terminal to own at all.

use std::{
    io::{self, IsTerminal, Stdout},
    panic::{self, PanicHookInfo},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

use crossterm::{
    cursor::{Hide, Show},
    execute,
    terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};
use ratatui::{Terminal, backend::CrosstermBackend};

/// Why `bpfprof top` cannot run here, if it cannot.
pub(super) fn check() -> Result<(), String> {
    why_not(io::stdin().is_terminal(), io::stdout().is_terminal())
}

fn why_not(stdin_is_tty: bool, stdout_is_tty: bool) -> Result<(), String> {
    let missing = match (stdin_is_tty, stdout_is_tty) {
        (true, true) => return Ok(()),
        (_, false) => "stdout",
        (false, true) => "stdin",
    };
    Err(format!(
        "bpfprof top needs a terminal: {missing} is not one"
    ))
}

type Hook = dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static;

/// Set once the terminal was given back. After a panic's hook did, drawing
/// on would write over the panic's message, and so would leaving the
/// alternate screen again (it puts the cursor back where it was).
static GIVEN_BACK: AtomicBool = AtomicBool::new(false);

/// Gives the terminal back when dropped, and until then has panics give it
/// back before they print.
struct Guard {
    previous_hook: Arc<Hook>,
}

impl Guard {
    fn install() -> Guard {
        GIVEN_BACK.store(false, Ordering::SeqCst);
        let previous_hook: Arc<Hook> = Arc::from(panic::take_hook());
        let previous = Arc::clone(&previous_hook);
        panic::set_hook(Box::new(move |info| {
            give_back();
            previous(info);
        }));
        Guard { previous_hook }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        give_back();
        // Setting a hook while panicking aborts; the process is ending then.
        if !thread::panicking() {
            let previous = Arc::clone(&self.previous_hook);
            panic::set_hook(Box::new(move |info| previous(info)));
        }
    }
}

/// Once only. Errors are left: there is nothing better to do with a
/// terminal that does not take them, and the rest must still be tried.
fn give_back() {
    if GIVEN_BACK.swap(true, Ordering::SeqCst) {
        return;
    }
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
}

/// The terminal, taken over.
pub(super) struct Screen {
    pub(super) terminal: Terminal<CrosstermBackend<Stdout>>,
    // Dropped after the terminal, which writes when it drops.
    _guard: Guard,
}

impl Screen {
    pub(super) fn take_over() -> io::Result<Screen> {
        // First, so a failure half-way gives back what was taken.
        let guard = Guard::install();
        enable_raw_mode()?;
        execute!(io::stdout(), EnterAlternateScreen, Hide)?;
        let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        Ok(Screen {
            terminal,
            _guard: guard,
        })
    }

    /// True once a panic (on another thread) gave the terminal back.
    pub(super) fn given_back(&self) -> bool {
        GIVEN_BACK.load(Ordering::SeqCst)
    }
}

/// Waits up to `timeout` for the terminal to have input; an error once it
/// has hung up (ssh dropped, the window closed). crossterm is only asked
/// for events after this says there is input: on a terminal that hung up,
/// its reader reads end-of-file without end and never returns.
pub(super) fn wait_for_input(timeout: std::time::Duration) -> io::Result<bool> {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: polls one descriptor we own for the life of the process.
    let ready = unsafe { libc::poll(&mut fd, 1, ms) };
    if ready < 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(err)
        };
    }
    if fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        return Err(io::Error::other("the terminal hung up"));
    }
    Ok(fd.revents & libc::POLLIN != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_terminal_it_says_which_end_is_not_one() {
        assert_eq!(why_not(true, true), Ok(()));
        assert_eq!(
            why_not(true, false),
            Err("bpfprof top needs a terminal: stdout is not one".into())
        );
        assert_eq!(
            why_not(false, true),
            Err("bpfprof top needs a terminal: stdin is not one".into())
        );
    }
}
