//! `bpfprof top`'s view: it owns the terminal and everything on screen,
//! fed by the capture with what each drain interval added. Each interval
//! is counted once (`interval`) into small sums (`aggregate`) kept as a
//! running sum and a decaying window (`history`), so a refresh never
//! re-reads the whole run; `view` ranks them, `app` holds the state
//! keys change, `draw` and `popup` put it on screen, and `terminal` takes
//! the terminal over and gives it back.

mod aggregate;
mod app;
mod draw;
mod history;
mod interval;
mod popup;
mod terminal;
mod view;

use std::{
    sync::mpsc::{Receiver, TryRecvError},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use crossterm::event::{self, Event};
use ratatui::{Terminal, backend::TestBackend};

use self::{
    app::{App, Flow},
    terminal::Screen,
};
use crate::profile::Profile;

#[derive(Debug, Clone)]
pub(crate) struct TopSettings {
    /// What is profiled, e.g. "all processes".
    pub(crate) target: String,
    pub(crate) freq_hz: u64,
    /// Off-CPU time recorded: `o` cycles modes.
    pub(crate) off_cpu: bool,
    /// One update per interval.
    pub(crate) interval: Duration,
}

pub(crate) struct Update {
    /// What one interval added (drained and symbolized), with its losses.
    pub(crate) profile: Profile,
    /// Since sampling started.
    pub(crate) elapsed: Duration,
}

/// Why the view ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quit {
    /// `q`, Esc or Ctrl-C.
    User,
    /// The capture closed the updates.
    Capture,
}

/// Why the view cannot run here (stdin or stdout is not a terminal), if
/// it cannot.
pub(crate) fn terminal_ok() -> Result<(), String> {
    terminal::check()
}

/// How often keys are looked for while no update comes.
const POLL: Duration = Duration::from_millis(50);
/// Events taken between two draws at most.
const EVENTS_PER_DRAW: usize = 64;

/// Runs the view on the calling thread until the user quits (returns
/// Ok(Quit::User)) or `updates` is closed by the capture (returns
/// Ok(Quit::Capture)). Owns the terminal for its whole life and restores
/// it before returning, on every path.
pub(crate) fn run(settings: TopSettings, updates: Receiver<Update>) -> Result<Quit> {
    let mut app = App::new(settings);
    let mut screen = Screen::take_over().context("cannot take over the terminal")?;
    let quit = event_loop(&mut screen, &mut app, &updates);
    drop(screen);
    quit
}

fn event_loop(screen: &mut Screen, app: &mut App, updates: &Receiver<Update>) -> Result<Quit> {
    let mut redraw = true;
    loop {
        if screen.given_back() {
            bail!("bpfprof top stopped: a thread panicked");
        }
        match take_updates(app, updates) {
            Inbox::Closed => return Ok(Quit::Capture),
            Inbox::Added => redraw = true,
            Inbox::Empty => {}
        }
        if redraw {
            screen.terminal.draw(|frame| draw::draw(frame, app))?;
            redraw = false;
        }
        if !terminal::wait_for_input(POLL)? || !event::poll(Duration::ZERO)? {
            continue;
        }
        // The events waiting, then one redraw. Bounded, and any event
        // redraws: a terminal that hung up reads as events without end,
        // and only the draw that then fails ends the view.
        for _ in 0..EVENTS_PER_DRAW {
            // A resize needs only the redraw: drawing takes the new size.
            if let Event::Key(key) = event::read()?
                && app.handle_key(key) == Flow::Quit
            {
                return Ok(Quit::User);
            }
            redraw = true;
            // crossterm may hold events it has read already: it is asked
            // again, once the terminal is known to be there.
            terminal::wait_for_input(Duration::ZERO)?;
            if !event::poll(Duration::ZERO)? {
                break;
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Inbox {
    Empty,
    Added,
    /// The capture ended (what it sent before is counted).
    Closed,
}

/// Counts every update waiting.
fn take_updates(app: &mut App, updates: &Receiver<Update>) -> Inbox {
    let mut inbox = Inbox::Empty;
    loop {
        match updates.try_recv() {
            Ok(update) => {
                app.add_interval(&update.profile, update.elapsed);
                inbox = Inbox::Added;
            }
            Err(TryRecvError::Empty) => return inbox,
            Err(TryRecvError::Disconnected) => return Inbox::Closed,
        }
    }
}

/// The view's refresh without a terminal, for the benchmarks: one
/// interval's profile counted in, then an 80x24 screen drawn off-screen.
pub struct TopBench {
    app: App,
    terminal: Terminal<TestBackend>,
    elapsed: Duration,
}

impl TopBench {
    /// At `freq_hz`, one interval a second, showing all processes.
    pub fn new(freq_hz: u64) -> TopBench {
        let settings = TopSettings {
            target: "all processes".into(),
            freq_hz,
            off_cpu: false,
            interval: Duration::from_secs(1),
        };
        let Ok(terminal) = Terminal::new(TestBackend::new(80, 24));
        TopBench {
            app: App::new(settings),
            terminal,
            elapsed: Duration::ZERO,
        }
    }

    /// Counts in what one interval added, then draws the screen.
    pub fn refresh(&mut self, interval: &Profile) {
        self.elapsed += self.app.settings.interval;
        self.app.add_interval(interval, self.elapsed);
        let Ok(_) = self.terminal.draw(|frame| draw::draw(frame, &self.app));
    }
}

#[cfg(test)]
mod tests;
